//! Reload (docs/design.md §13): on SIGHUP, or when `--watch` sees the
//! tenants file or an app change, the file is read again and the host
//! made to match it. New tenants start; removed ones are retired (their
//! listeners shut, their tasks drained, then cancelled after their
//! `drain_grace`); a tenant whose table or app bytes changed starts its new
//! version, which takes over the old one's listeners, while the old one's
//! tasks finish what they serve. Tenants that did not change are left as
//! they are.
//!
//! A file that does not parse, whose apps do not load, or that changes
//! `[host]` or `[cluster]` (fixed at start) or needs more task slots or
//! open files than the host reserved at start is refused whole, with one
//! line naming why; the running tenants go on untouched.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, SystemTime};

use super::launch::{Launcher, Prepared, app_hash};
use super::tenant::{Roster, TenantTable};
use super::tenants::{Budget, parse};
use crate::shard::lock;
use crate::{Retire, StopHandle};

/// How often `--watch` looks at the files.
const WATCH_EVERY: Duration = Duration::from_millis(300);

/// What the host was started with that a reload cannot change.
pub(super) struct Started {
    /// `[host]` and `[cluster]` as written.
    pub(super) fixed: toml::Table,
    /// The task slots of the instance pool.
    pub(super) pool: u32,
}

/// Everything a reload reads and changes.
pub(super) struct Reloader {
    /// The tenants file.
    pub(super) path: PathBuf,
    /// What the tenants share out.
    pub(super) budget: Budget,
    /// What the host was started with.
    pub(super) started: Started,
    /// Loads apps and adds them while the host runs.
    pub(super) launcher: Launcher,
    /// The tenants served.
    pub(super) roster: Roster,
    /// Whether the host is stopping (then nothing is reloaded).
    pub(super) stop: StopHandle,
    /// A cluster worker: not reloaded (yet).
    pub(super) clustered: bool,
}

/// Runs reloads on a thread of their own, one at a time, each when `asked`
/// says (a SIGHUP), or, given `watching`, when a file changes.
pub(super) fn start(reloader: Reloader, asked: Receiver<()>, watching: Option<Sender<()>>) {
    if let Some(tell) = watching {
        let (path, roster) = (reloader.path.clone(), reloader.roster.clone());
        std::thread::spawn(move || watch(&path, &roster, &tell));
    }
    std::thread::spawn(move || {
        while asked.recv().is_ok() {
            // Asks that came during the last reload are answered by this one.
            while asked.try_recv().is_ok() {}
            if reloader.stop.is_stopping() {
                return;
            }
            let shown = reloader.path.display();
            match reloader.reload() {
                Ok(done) => tracing::info!("reloaded {shown}: {done}"),
                Err(e) => {
                    tracing::error!("reload of {shown} refused: {e}; the running tenants go on")
                }
            }
        }
    });
}

/// Asks for a reload each time the tenants file or a served app changes
/// (its modification time or length). An app first seen (a reload
/// started it) is only noted.
fn watch(path: &Path, roster: &Roster, tell: &Sender<()>) {
    let dir = path.parent().unwrap_or(Path::new("."));
    let stamp = |f: &Path| {
        let meta = std::fs::metadata(f).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    let mut seen: HashMap<PathBuf, Option<(SystemTime, u64)>> = HashMap::new();
    loop {
        let mut files = vec![path.to_path_buf()];
        let served = lock(roster);
        let apps = served.iter().filter(|s| !s.removed);
        files.extend(apps.map(|s| dir.join(&s.table.app)));
        drop(served);
        let mut changed = false;
        for file in files {
            let now = stamp(&file);
            if let Some(before) = seen.insert(file, now) {
                changed |= before != now;
            }
        }
        if changed && tell.send(()).is_err() {
            return;
        }
        std::thread::sleep(WATCH_EVERY);
    }
}

impl Reloader {
    /// Makes the host match the tenants file; says what changed.
    fn reload(&self) -> Result<String, String> {
        if self.clustered {
            return Err("a host in a [cluster] is not reloaded yet: restart it".into());
        }
        let shown = self.path.display();
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let file = parse(&text, dir, self.budget).map_err(|e| format!("{shown}: {e}"))?;
        for key in ["host", "cluster"] {
            if file.fixed.get(key) != self.started.fixed.get(key) {
                return Err(format!(
                    "[{key}] changed, and it is fixed at start: restart serve to change it"
                ));
            }
        }
        if file.config.max_tasks > self.started.pool {
            return Err(format!(
                "the tenants need {} task slots and the host has {} (set [host] `max_tasks` \
                 with room to spare, and restart serve)",
                file.config.max_tasks, self.started.pool
            ));
        }
        let names = file.tenants.iter().map(|t| t.table.name.clone()).collect();
        // Every changed or new tenant is loaded before anything changes.
        let mut unchanged = 0;
        let mut loaded: Vec<Prepared> = Vec::new();
        // What runs now, by name; the roster is not held while apps load
        // (the metrics read it meanwhile). Only this thread changes it.
        let current: HashMap<String, (TenantTable, blake3::Hash)> = lock(&self.roster)
            .iter()
            .filter(|s| !s.removed)
            .map(|s| (s.table.name.clone(), (s.table.clone(), s.app_hash)))
            .collect();
        for tenant in file.tenants {
            if let Some((table, hash)) = current.get(&tenant.table.name)
                && *table == tenant.table
                && app_hash(&dir.join(&tenant.table.app)).ok() == Some(*hash)
            {
                unchanged += 1;
                continue;
            }
            loaded.push(self.launcher.prepare(tenant)?);
        }
        Ok(self.apply(loaded, unchanged, &names))
    }

    /// Retires the tenants the file no longer has, and starts the
    /// `loaded` ones (each a new tenant or a new version of one).
    fn apply(&self, loaded: Vec<Prepared>, unchanged: usize, kept: &HashSet<String>) -> String {
        let mut served = lock(&self.roster);
        let mut said = Vec::new();
        let mut removed = Vec::new();
        for old in served.iter_mut().filter(|s| !s.removed) {
            if !kept.contains(&old.table.name) {
                let label = format!("tenant `{}`", old.table.name);
                let c = &self.launcher.control;
                c.retire(&old.program, &old.main, Retire::Shut, old.grace, &label);
                old.removed = true;
                removed.push(old.table.name.clone());
            }
        }
        let (mut started, mut replaced) = (Vec::new(), Vec::new());
        for prepared in loaded {
            let name = prepared.tenant.table.name.clone();
            let label = prepared.tenant.label();
            // A tenant removed earlier and back now goes on from its figures.
            let at = served.iter().position(|s| s.table.name == name);
            let replacing = at.filter(|&at| !served[at].removed);
            if let Some(at) = at {
                let old = &served[at];
                self.launcher
                    .control
                    .succeed(&prepared.program, &old.program);
                if replacing.is_some() {
                    let c = &self.launcher.control;
                    c.retire(&old.program, &old.main, Retire::HandOver, old.grace, &label);
                }
            }
            match self.launcher.launch(prepared) {
                Ok(new) => {
                    match at {
                        Some(at) => served[at] = new,
                        None => served.push(new),
                    }
                    match replacing {
                        Some(_) => replaced.push(name),
                        None => started.push(name),
                    }
                }
                Err(e) => said.push(format!("{e}: it is down")),
            }
        }
        let list = |what: &str, names: &[String]| {
            (!names.is_empty()).then(|| format!("{what} {}", names.join(", ")))
        };
        let mut parts: Vec<String> = [
            list("started", &started),
            list("replaced", &replaced),
            list("removed", &removed),
        ]
        .into_iter()
        .flatten()
        .collect();
        parts.push(format!("{unchanged} unchanged"));
        parts.extend(said);
        parts.join("; ")
    }
}
