//! The tenants file: its `[host]` and `[[tenant]]` tables, read and
//! checked, each error naming the tenant and the key.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::shares::{reserve_files, reserve_memory, reserve_tasks};
use super::tenant::{Tenant, TenantTable};
use crate::cli::units::{parse_duration, parse_size, parse_threads};
use crate::net_policy::{NetPolicy, NetRule};
use crate::{AppLimits, ClusterConfig, Config, DirGrant};

/// The `[host]` table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HostTable {
    max_tasks: Option<u32>,
    time_slice: Option<String>,
    cpu_budget: Option<String>,
    max_sockets: Option<usize>,
    max_queue_bytes: Option<String>,
    max_app_memory: Option<String>,
    threads: Option<usize>,
    metrics: Option<String>,
}

/// The `[cluster]` table (docs/design.md §10).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterTable {
    url: String,
    creds: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    lease: Option<String>,
    jobs: Option<usize>,
}

impl ClusterTable {
    /// How the host joins; paths are relative to the file's folder `dir`.
    fn config(self, dir: &Path) -> Result<ClusterConfig, String> {
        let mut config = ClusterConfig::new(self.url);
        config.creds = self.creds.map(|p| dir.join(p));
        config.tls_ca = self.tls_ca.map(|p| dir.join(p));
        config.jobs = self.jobs;
        if let Some(lease) = &self.lease {
            config.lease = parse_duration(lease).map_err(|e| format!("[cluster] `lease`: {e}"))?;
        }
        Ok(config)
    }
}

/// The whole file, checked: the host's settings and the tenants.
pub(super) struct TenantsFile {
    pub(super) config: Config,
    pub(super) tenants: Vec<Tenant>,
    /// Where to serve `GET /metrics` (`[host] metrics`).
    pub(super) metrics: Option<std::net::SocketAddr>,
    /// `[host]` and `[cluster]` as written: a reload may not change them.
    pub(super) fixed: toml::Table,
}

impl TenantsFile {
    /// The most files the tenants may hold open at once: their sockets and
    /// a handle per granted directory per task.
    pub(super) fn files(&self) -> u64 {
        self.tenants
            .iter()
            .map(|t| t.limits.max_sockets as u64 + t.dir_files())
            .sum()
    }
}

/// What the tenants share out: the process's limit on open files, the
/// machine's memory.
#[derive(Clone, Copy)]
pub(super) struct Budget {
    pub(super) open_files: u64,
    pub(super) memory: u64,
}

/// Parses `text`, a file in the folder `dir`; an error names the tenant
/// and the key.
pub(super) fn parse(text: &str, dir: &Path, budget: Budget) -> Result<TenantsFile, String> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| one_line(&e.to_string()))?;
    let mut fixed = toml::Table::new();
    for key in ["host", "cluster"] {
        if let Some(value) = table.get(key) {
            fixed.insert(key.to_string(), value.clone());
        }
    }
    let host: HostTable = match table.remove("host") {
        Some(value) => value
            .try_into()
            .map_err(|e: toml::de::Error| format!("[host]: {}", one_line(&e.to_string())))?,
        None => HostTable::default(),
    };
    let cluster: Option<ClusterTable> =
        match table.remove("cluster") {
            Some(value) => Some(value.try_into().map_err(|e: toml::de::Error| {
                format!("[cluster]: {}", one_line(&e.to_string()))
            })?),
            None => None,
        };
    let tenants = match table.remove("tenant") {
        Some(toml::Value::Array(tenants)) => tenants,
        Some(_) => return Err("`tenant` must be an array of tables ([[tenant]])".into()),
        None => return Err("no [[tenant]] is defined".into()),
    };
    if let Some(key) = table.keys().next() {
        return Err(format!(
            "unknown key `{key}` (expected [host], [cluster] or [[tenant]])"
        ));
    }
    let mut config = Config {
        cluster: cluster.map(|c| c.config(dir)).transpose()?,
        ..Config::default()
    };
    if let Some(t) = &host.time_slice {
        config.time_slice = in_host("time_slice", parse_duration(t))?;
    }
    if let Some(t) = &host.cpu_budget {
        config.cpu_budget = Some(in_host("cpu_budget", parse_duration(t))?);
    }
    if let Some(n) = host.threads {
        config.threads = in_host("threads", parse_threads(&n.to_string()))?;
    }
    if let Some(s) = &host.max_queue_bytes {
        config.max_queue_bytes = in_host("max_queue_bytes", parse_size(s))? as usize;
    }
    let metrics = match &host.metrics {
        Some(addr) => Some(in_host(
            "metrics",
            addr.parse()
                .map_err(|_| format!("`{addr}` is not an address like 127.0.0.1:9100")),
        )?),
        None => None,
    };
    let mut names = HashSet::new();
    let mut checked = Vec::new();
    for (i, value) in tenants.into_iter().enumerate() {
        let label = value
            .get("name")
            .and_then(|n| n.as_str())
            .map_or(format!("tenant #{}", i + 1), |n| format!("tenant `{n}`"));
        let table: TenantTable = value
            .try_into()
            .map_err(|e: toml::de::Error| format!("{label}: {}", one_line(&e.to_string())))?;
        if !names.insert(table.name.clone()) {
            return Err(format!("{label}: the name is used twice"));
        }
        checked.push(check_tenant(table, &label, &config, dir)?);
    }
    let host_app_memory = match &host.max_app_memory {
        Some(s) => Some(in_host("max_app_memory", parse_size(s))?),
        None => None,
    };
    config.max_tasks = reserve_tasks(host.max_tasks, &mut checked)?;
    reserve_files(host.max_sockets, &mut checked, budget.open_files)?;
    reserve_memory(host_app_memory, &mut checked, budget.memory)?;
    // The pool's slots must fit the largest tenant.
    if let Some(max) = checked.iter().filter_map(|t| t.max_memory).max() {
        config.max_memory = config.max_memory.max(max);
    }
    config.check(|key| match key {
        "max_tasks" if host.max_tasks.is_some() => "[host] `max_tasks`".into(),
        "max_tasks" => "the tenants' `max_tasks` in all".into(),
        "max_memory" => "the largest `max_memory`".into(),
        key => format!("[host] `{key}`"),
    })?;
    Ok(TenantsFile {
        config,
        tenants: checked,
        metrics,
        fixed,
    })
}

/// Checks the keys of one tenant (its task and socket shares come later,
/// from all the tenants together); its relative paths are in the folder `dir`.
fn check_tenant(
    table: TenantTable,
    label: &str,
    config: &Config,
    dir: &Path,
) -> Result<Tenant, String> {
    let rules = |key: &str, list: &[String]| -> Result<Vec<NetRule>, String> {
        list.iter()
            .map(|r| r.parse().map_err(|e| format!("{label}: `{key}`: {e}")))
            .collect()
    };
    let net = NetPolicy::new(
        &rules("listen", &table.listen)?,
        &rules("connect", &table.connect)?,
    )
    .with_name_lookup(table.name_lookup);
    let grants = |key: &str, list: &[String], writable: bool| -> Result<Vec<DirGrant>, String> {
        list.iter()
            .map(|d| {
                // Relative to the file's folder, like `app`: the file
                // means the same wherever serve is started from.
                d.parse::<DirGrant>()
                    .map(|g| DirGrant {
                        host: dir.join(g.host),
                        writable,
                        ..g
                    })
                    .map_err(|e| format!("{label}: `{key}`: {e}"))
            })
            .collect()
    };
    let mut dirs = grants("dirs", &table.dirs, false)?;
    dirs.extend(grants("dirs_rw", &table.dirs_rw, true)?);
    let in_tenant = |key: &str| format!("{label}: `{key}`");
    let max_memory = match &table.max_memory {
        Some(s) => {
            let bytes = parse_size(s).map_err(|e| format!("{}: {e}", in_tenant("max_memory")))?;
            let alone = Config {
                max_memory: bytes,
                max_tasks: 1,
                ..Config::default()
            };
            alone.check(in_tenant)?;
            Some(bytes)
        }
        None => None,
    };
    let max_app_memory = match &table.max_app_memory {
        Some(s) => {
            Some(parse_size(s).map_err(|e| format!("{}: {e}", in_tenant("max_app_memory")))?)
        }
        None => None,
    };
    if table.max_tasks == Some(0) {
        return Err(format!("{} must be at least 1", in_tenant("max_tasks")));
    }
    let mut limits = AppLimits::from(config);
    if let Some(s) = &table.max_queue_bytes {
        limits.max_queue_bytes =
            parse_size(s).map_err(|e| format!("{}: {e}", in_tenant("max_queue_bytes")))? as usize;
    }
    if let Some(t) = &table.cpu_budget {
        limits.cpu_budget =
            Some(parse_duration(t).map_err(|e| format!("{}: {e}", in_tenant("cpu_budget")))?);
    }
    if let Some(t) = &table.time_slice {
        limits.time_slice =
            Some(parse_duration(t).map_err(|e| format!("{}: {e}", in_tenant("time_slice")))?);
    }
    if let Some(share) = table.share {
        if !(1..=MAX_SHARE).contains(&share) {
            return Err(format!(
                "{}: {share} is not a share from 1 to {MAX_SHARE}",
                in_tenant("share")
            ));
        }
        limits.share = share;
    }
    let restart = table.restart_policy(label)?;
    let grace = match &table.drain_grace {
        Some(t) => parse_duration(t).map_err(|e| format!("{}: {e}", in_tenant("drain_grace")))?,
        None => DEFAULT_GRACE,
    };
    Ok(Tenant {
        grace,
        table,
        net,
        dirs,
        max_memory,
        max_app_memory,
        limits,
        restart,
    })
}

/// How long a tenant's old version's tasks run on after a reload replaced
/// or removed it, unless its `drain_grace` says otherwise.
const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The largest `share` a tenant may have: past a hundred to one, a busy
/// tenant of share 1 would wait over a second between its 10 ms slices.
const MAX_SHARE: u32 = 100;

/// Says which `[host]` key an error is about.
fn in_host<T>(key: &str, result: Result<T, String>) -> Result<T, String> {
    result.map_err(|e| format!("[host]: `{key}`: {e}"))
}

/// The first line of a parser's message, for a one-line error.
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // toml's messages put the position first and the reason last.
    lines.last().copied().unwrap_or_default().to_string()
        + &lines
            .first()
            .filter(|_| lines.len() > 1)
            .map(|l| format!(" ({l})"))
            .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Restart, RestartPolicy};
    use std::time::Duration;

    /// The keys a table type accepts, as serde's refusal of an unknown
    /// one lists them.
    fn accepted<T: serde::de::DeserializeOwned>(required: &str) -> Vec<String> {
        let refusal = match toml::from_str::<T>(&format!("{required}\nno_such_key = 1")) {
            Ok(_) => panic!("an unknown key was accepted"),
            Err(e) => e.to_string(),
        };
        let listed = refusal
            .split_once("expected one of ")
            .unwrap_or_else(|| panic!("{refusal}"))
            .1;
        let mut keys: Vec<String> = listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    }

    /// The keys of `table` in the reference.
    fn documented(table: &toml::Value) -> Vec<String> {
        let mut keys: Vec<String> = table.as_table().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    #[test]
    fn the_reference_lists_every_key_the_parser_accepts() {
        let text = crate::cli::serve::REFERENCE.split_once("\n\n").unwrap().1;
        let reference: toml::Table = text.parse().expect("the reference is TOML");
        assert_eq!(documented(&reference["host"]), accepted::<HostTable>(""));
        assert_eq!(
            documented(&reference["tenant"][0]),
            accepted::<TenantTable>("name = \"a\"\napp = \"a.wasm\"")
        );
        assert_eq!(
            documented(&reference["cluster"]),
            accepted::<ClusterTable>("url = \"nats://h:4222\"")
        );
        // And the reference itself is a file the parser takes.
        let parsed = parse(text, Path::new("."), BIG);
        assert!(parsed.is_ok(), "{:?}", parsed.err());
    }

    fn error(text: &str) -> String {
        parse(text, Path::new("."), BIG)
            .err()
            .expect("the file is refused")
    }

    /// A tenant named `name` with `keys` (TOML lines).
    fn tenant(name: &str, keys: &str) -> String {
        format!("[[tenant]]\nname = \"{name}\"\napp = \"a.wasm\"\n{keys}\n")
    }

    /// Plenty of open files and memory.
    const BIG: Budget = Budget {
        open_files: 1 << 20,
        memory: 1 << 40,
    };

    /// A budget of `open_files` and plenty of memory.
    fn files(open_files: u64) -> Budget {
        Budget { open_files, ..BIG }
    }

    /// Each tenant's (max_tasks, max_sockets), and the pool size.
    fn shares(text: &str, budget: Budget) -> (Vec<(usize, usize)>, u32) {
        let file = parse(text, Path::new("."), budget).unwrap();
        let shares = file
            .tenants
            .iter()
            .map(|t| (t.limits.max_tasks, t.limits.max_sockets))
            .collect();
        (shares, file.config.max_tasks)
    }

    #[test]
    fn the_pool_is_the_sum_of_the_tenants_shares() {
        let two = tenant("a", "max_tasks = 10") + &tenant("b", "");
        // No [host] max_tasks: a tenant without its own gets 1000.
        assert_eq!(
            shares(&two, BIG),
            (vec![(10, 10_000), (1000, 10_000)], 1010)
        );
        // With one, the tenants without their own split what is left.
        let three = format!("[host]\nmax_tasks = 2010\n{two}{}", tenant("c", ""));
        assert_eq!(shares(&three, BIG).0[1..], [(1000, 10_000), (1000, 10_000)]);
        assert_eq!(shares(&three, BIG).1, 2010);
        assert_eq!(
            error(&format!("[host]\nmax_tasks = 5\n{two}")),
            "[host]: `max_tasks` = 5 is less than the 10 tasks the tenants reserve (`a` 10, `b` 0)"
        );
        assert_eq!(
            error(&format!("[host]\nmax_tasks = 10\n{two}")),
            "[host]: `max_tasks` = 10 leaves no task for tenant `b` (the others reserve 10): \
             raise it, or give each tenant a `max_tasks`"
        );
        assert_eq!(
            error(&tenant("z", "max_tasks = 0")),
            "tenant `z`: `max_tasks` must be at least 1"
        );
    }

    #[test]
    fn sockets_and_directory_handles_must_fit_the_open_file_limit() {
        // 1064 open files: 1000 for the tenants.
        let two = tenant("a", "max_sockets = 600") + &tenant("b", "max_tasks = 10");
        assert_eq!(shares(&two, files(1064)).0, [(1000, 600), (10, 400)]);
        let dirs =
            tenant("a", "max_sockets = 600") + &tenant("b", "max_tasks = 10\ndirs = [\"x\"]");
        assert_eq!(shares(&dirs, files(1064)).0, [(1000, 600), (10, 390)]);
        let over = tenant("a", "max_sockets = 600") + &tenant("b", "max_sockets = 500");
        assert_eq!(
            parse(&over, Path::new("."), files(1064)).err().unwrap(),
            "the tenants may hold 1100 open files (sockets, and a handle per granted directory \
             per task: `a` 600, `b` 500), more than the open-file limit allows (1064, less 64 \
             for the host): lower their `max_sockets` or `max_tasks`, or raise the limit \
             (ulimit -Hn)"
        );
        let full = tenant("a", "max_sockets = 1000") + &tenant("b", "");
        assert!(
            parse(&full, Path::new("."), files(1064))
                .err()
                .unwrap()
                .starts_with("tenant `b` gets no sockets: the others may hold 1000 open files")
        );
    }

    #[test]
    fn tenants_share_the_machines_memory() {
        let machine = Budget {
            memory: 24 << 30,
            ..BIG
        };
        let memory_mib = |text: &str| -> Vec<u64> {
            let file = parse(text, Path::new("."), machine).unwrap();
            file.tenants
                .iter()
                .map(|t| t.limits.max_app_memory >> 20)
                .collect()
        };
        // Each tenant's queues may hold 64 MiB (the default) besides.
        let three = tenant("a", "max_app_memory = \"8GiB\"") + &tenant("b", "") + &tenant("c", "");
        let left = (24 << 10) - (8 << 10) - 3 * 64;
        assert_eq!(memory_mib(&three), [8 << 10, left / 2, left / 2]);
        let over =
            tenant("a", "max_app_memory = \"20GiB\"") + &tenant("b", "max_app_memory = \"4GiB\"");
        assert_eq!(
            parse(&over, Path::new("."), machine).err().unwrap(),
            "the tenants' `max_app_memory` and `max_queue_bytes` add up to 24704 MiB (`a` 20544, \
             `b` 4160), more than the machine's 24576 MiB: lower them"
        );
    }

    #[test]
    fn absurd_sizes_name_the_tenant_and_the_key() {
        assert_eq!(
            error(&tenant("big", "max_memory = \"1000000GiB\"")),
            "tenant `big`: `max_memory` 976 TiB is more than a wasm32 task can address (4 GiB)"
        );
        let e = error(&format!(
            "[host]\nmax_tasks = 4294967295\n{}",
            tenant("a", "")
        ));
        assert!(
            e.starts_with(
                "[host] `max_tasks` 4294967295 tasks with the largest `max_memory` 64 MiB each \
                 need 516 PiB of address space; the pool may reserve at most 64 TiB"
            ),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_tenant_and_the_key() {
        let one = "[[tenant]]\nname = \"a\"\napp = \"a.wasm\"\n";
        assert!(parse(one, Path::new("."), BIG).is_ok());
        assert!(
            error("[[tenant]]\nname = \"a\"\napp = \"a.wasm\"\ncolour = 1\n")
                .starts_with("tenant `a`: unknown field `colour`")
        );
        assert!(
            error("[[tenant]]\nname = \"b\"\napp = \"a.wasm\"\nmax_memory = \"lots\"\n")
                .starts_with("tenant `b`: `max_memory`: `lots` is not a size")
        );
        assert!(
            error("[[tenant]]\nname = \"c\"\napp = \"a.wasm\"\nlisten = [\"nowhere\"]\n")
                .starts_with("tenant `c`: `listen`: `nowhere` is not a network rule")
        );
        assert!(
            error("[[tenant]]\napp = \"a.wasm\"\n").starts_with("tenant #1: missing field `name`")
        );
        assert_eq!(
            error(&format!("{one}{one}")),
            "tenant `a`: the name is used twice"
        );
        assert_eq!(error("[host]\nmax_tasks = 5\n"), "no [[tenant]] is defined");
        assert!(
            error(&format!("[host]\ntime_slice = \"fast\"\n{one}"))
                .starts_with("[host]: `time_slice`: `fast` is not a time")
        );
        assert_eq!(
            error(&format!("{one}[other]\n")),
            "unknown key `other` (expected [host], [cluster] or [[tenant]])"
        );
    }

    #[test]
    fn restart_keys_are_checked() {
        assert_eq!(
            error(&tenant("r", "restart = \"sometimes\"")),
            "tenant `r`: `restart`: `sometimes` is not one of \"never\", \"on-failure\", \"always\""
        );
        assert!(
            error(&tenant("r", "restart_delay = \"soon\""))
                .starts_with("tenant `r`: `restart_delay`: "),
        );
        assert_eq!(
            error(&tenant(
                "r",
                "restart_delay = \"2s\"\nmax_restart_delay = \"1s\""
            )),
            "tenant `r`: `max_restart_delay` (1s) is shorter than `restart_delay` (2s)"
        );
        let file = parse(
            &tenant(
                "r",
                "restart = \"always\"\nmax_restarts = 2\nrestart_window = \"5s\"",
            ),
            Path::new("."),
            BIG,
        )
        .unwrap();
        let policy = file.tenants[0].restart;
        assert_eq!(policy.restart, Restart::Always);
        assert_eq!(
            (policy.max_restarts, policy.within),
            (2, Duration::from_secs(5))
        );
        // Unset: the defaults.
        assert_eq!(policy.backoff, RestartPolicy::default().backoff);
    }

    #[test]
    fn a_share_is_from_1_to_100() {
        for bad in ["0", "101"] {
            assert_eq!(
                error(&tenant("s", &format!("share = {bad}"))),
                format!("tenant `s`: `share`: {bad} is not a share from 1 to 100")
            );
        }
        let share = |text: &str| {
            let file = parse(&tenant("s", text), Path::new("."), BIG).unwrap();
            file.tenants[0].limits.share
        };
        assert_eq!(share("share = 100"), 100);
        assert_eq!(share(""), 1);
    }
}
