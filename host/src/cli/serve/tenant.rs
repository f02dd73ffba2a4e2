//! One tenant: its `[[tenant]]` table as written, and as checked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::units::parse_duration;
use crate::net_policy::NetPolicy;
use crate::{AppLimits, DirGrant, Program, Restart, RestartPolicy, Supervised};

/// One `[[tenant]]` table.
#[derive(Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantTable {
    pub(super) name: String,
    pub(super) app: PathBuf,
    #[serde(default = "main_entry")]
    pub(super) entry: String,
    #[serde(default)]
    pub(super) args: Vec<String>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) listen: Vec<String>,
    #[serde(default)]
    pub(super) connect: Vec<String>,
    #[serde(default)]
    pub(super) name_lookup: bool,
    #[serde(default)]
    pub(super) dirs: Vec<String>,
    #[serde(default)]
    pub(super) dirs_rw: Vec<String>,
    pub(super) max_memory: Option<String>,
    pub(super) max_app_memory: Option<String>,
    pub(super) max_tasks: Option<usize>,
    pub(super) max_sockets: Option<usize>,
    pub(super) max_queue_bytes: Option<String>,
    pub(super) cpu_budget: Option<String>,
    pub(super) time_slice: Option<String>,
    pub(super) share: Option<u32>,
    pub(super) restart: Option<String>,
    pub(super) max_restarts: Option<u32>,
    pub(super) restart_window: Option<String>,
    pub(super) restart_delay: Option<String>,
    pub(super) max_restart_delay: Option<String>,
    pub(super) drain_grace: Option<String>,
}

fn main_entry() -> String {
    "main".to_string()
}

impl TenantTable {
    /// Its `restart` and the keys that go with it.
    pub(super) fn restart_policy(&self, label: &str) -> Result<RestartPolicy, String> {
        let table = self;
        let mut policy = RestartPolicy::default();
        let time = |key: &str, value: &Option<String>, into: &mut std::time::Duration| {
            if let Some(text) = value {
                *into = parse_duration(text).map_err(|e| format!("{label}: `{key}`: {e}"))?;
            }
            Ok::<(), String>(())
        };
        policy.restart = match table.restart.as_deref() {
            None | Some("never") => Restart::Never,
            Some("on-failure") => Restart::OnFailure,
            Some("always") => Restart::Always,
            Some(other) => {
                return Err(format!(
                    "{label}: `restart`: `{other}` is not one of \"never\", \"on-failure\", \"always\""
                ));
            }
        };
        if let Some(n) = table.max_restarts {
            policy.max_restarts = n;
        }
        time("restart_window", &table.restart_window, &mut policy.within)?;
        time("restart_delay", &table.restart_delay, &mut policy.backoff)?;
        time(
            "max_restart_delay",
            &table.max_restart_delay,
            &mut policy.max_backoff,
        )?;
        if policy.max_backoff < policy.backoff {
            return Err(format!(
                "{label}: `max_restart_delay` ({:?}) is shorter than `restart_delay` ({:?})",
                policy.max_backoff, policy.backoff
            ));
        }
        Ok(policy)
    }
}

/// A tenant, checked and ready to load.
pub(super) struct Tenant {
    /// Its table as written.
    pub(super) table: TenantTable,
    /// Its `listen` and `connect` rules.
    pub(super) net: NetPolicy,
    /// Its `dirs` and `dirs_rw`.
    pub(super) dirs: Vec<DirGrant>,
    /// Its own `max_memory` (per task), if it has one.
    pub(super) max_memory: Option<u64>,
    /// Its own `max_app_memory`, if it has one.
    pub(super) max_app_memory: Option<u64>,
    pub(super) limits: AppLimits,
    /// When its main task is started again.
    pub(super) restart: RestartPolicy,
    /// How long its tasks run on once a reload replaced or removed it.
    pub(super) grace: Duration,
}

/// A tenant being served: what a reload compares with the file, and
/// changes.
pub(super) struct Served {
    /// Its table, as its current version was loaded.
    pub(super) table: TenantTable,
    /// The BLAKE3 hash of its app's bytes, as loaded.
    pub(super) app_hash: blake3::Hash,
    /// Its current version.
    pub(super) program: Program,
    /// The supervisor of that version's main task.
    pub(super) main: Supervised,
    /// How long that version's tasks run on once replaced or removed.
    pub(super) grace: Duration,
    /// A reload removed it; its figures stay for the summary and metrics.
    pub(super) removed: bool,
}

/// The tenants served (the removed ones too), shared by the reloads, the
/// metrics and the summary at exit.
pub(super) type Roster = Arc<Mutex<Vec<Served>>>;

impl Tenant {
    /// The directory handles its tasks may hold: each task opens its own
    /// handle on each granted directory.
    pub(super) fn dir_files(&self) -> u64 {
        self.limits.max_tasks.saturating_mul(self.dirs.len()) as u64
    }

    /// "tenant `NAME`", for messages.
    pub(super) fn label(&self) -> String {
        format!("tenant `{}`", self.table.name)
    }
}
