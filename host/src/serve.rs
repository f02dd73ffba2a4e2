//! `mtask-host serve tenants.toml`: several apps (tenants) in one host.
//!
//! Each tenant is its own app: its component, entry, args, env, memory
//! limit and capabilities (listen, connect, directories). Apps share no
//! queues and no handles, and one tenant's traps and limits end only its own
//! tasks. The `[host]` table sets what the whole host shares (the time
//! slice) and the defaults of each tenant's own limits, which a tenant can
//! override.
//!
//! A tenant's limits are reservations: the instance pool is sized to the
//! sum of the tenants' `max_tasks`, and the open files the process may have
//! to the sum of their sockets (and directory handles, one per granted
//! directory per task), so what one tenant does cannot make another's
//! spawn or bind fail. A tenant without a `max_tasks` gets a share of
//! `[host] max_tasks` (what the others leave, split evenly) or 1000; one
//! without `max_sockets` a share of the open files the others leave, up to
//! 10000; one without `max_app_memory` a share of the machine's memory
//! that the others leave. A file whose reservations do not fit is refused
//! at start.
//!
//! ```toml
//! [host]                      # optional; every key optional
//! max_tasks = 10000           # the pool the tenants share out
//! time_slice = "10ms"
//! cpu_budget = "30s"          # per task, for every tenant
//! max_sockets = 1000          # per tenant
//! max_queue_bytes = "16MiB"   # per tenant
//! max_app_memory = "4GiB"     # per tenant
//!
//! [[tenant]]
//! name = "echo"               # required, unique
//! app = "echo_server.wasm"    # required; relative to this file's folder
//! entry = "main"              # default "main"
//! args = ["127.0.0.1:7878"]
//! env = { GREETING = "hi" }
//! listen = ["127.0.0.1:7878"] # network rules, as for `run --listen`
//! connect = []
//! dirs = ["data::/data"]      # read-only, as for `run --dir`
//! dirs_rw = []
//! max_memory = "64MiB"        # per task of this tenant
//! max_app_memory = "2GiB"     # all its tasks' memory, reserved for it
//! max_tasks = 1000            # live tasks of this tenant, reserved for it
//! max_sockets = 100           # these three override [host]'s
//! max_queue_bytes = "1MiB"
//! cpu_budget = "2s"           # per task of this tenant
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

use crate::net_policy::{NetPolicy, NetRule};
use crate::units::{parse_duration, parse_size};
use crate::{AppLimits, CacheNote, Config, DirGrant, Program, TaskError, TaskId, TaskManager};

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
}

/// One `[[tenant]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantTable {
    name: String,
    app: PathBuf,
    #[serde(default = "main_entry")]
    entry: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    listen: Vec<String>,
    #[serde(default)]
    connect: Vec<String>,
    #[serde(default)]
    dirs: Vec<String>,
    #[serde(default)]
    dirs_rw: Vec<String>,
    max_memory: Option<String>,
    max_app_memory: Option<String>,
    max_tasks: Option<usize>,
    max_sockets: Option<usize>,
    max_queue_bytes: Option<String>,
    cpu_budget: Option<String>,
}

fn main_entry() -> String {
    "main".to_string()
}

/// A tenant, checked and ready to load.
struct Tenant {
    table: TenantTable,
    net: NetPolicy,
    dirs: Vec<DirGrant>,
    max_memory: Option<u64>,
    /// Its own `max_app_memory`, if it has one.
    max_app_memory: Option<u64>,
    limits: AppLimits,
}

impl Tenant {
    fn label(&self) -> String {
        format!("tenant `{}`", self.table.name)
    }
}

/// The whole file, checked: the host's settings and the tenants.
struct TenantsFile {
    config: Config,
    tenants: Vec<Tenant>,
}

/// Tasks a tenant may have alive when neither it nor `[host]` says.
const DEFAULT_TENANT_TASKS: usize = 1000;

/// What the tenants share out: the process's limit on open files, the
/// machine's memory.
#[derive(Clone, Copy)]
struct Budget {
    open_files: u64,
    memory: u64,
}

/// Parses `text`; an error names the tenant and the key.
fn parse(text: &str, budget: Budget) -> Result<TenantsFile, String> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| one_line(&e.to_string()))?;
    let host: HostTable = match table.remove("host") {
        Some(value) => value
            .try_into()
            .map_err(|e: toml::de::Error| format!("[host]: {}", one_line(&e.to_string())))?,
        None => HostTable::default(),
    };
    let tenants = match table.remove("tenant") {
        Some(toml::Value::Array(tenants)) => tenants,
        Some(_) => return Err("`tenant` must be an array of tables ([[tenant]])".into()),
        None => return Err("no [[tenant]] is defined".into()),
    };
    if let Some(key) = table.keys().next() {
        return Err(format!(
            "unknown key `{key}` (expected [host] or [[tenant]])"
        ));
    }
    let mut config = Config::default();
    if let Some(t) = &host.time_slice {
        config.time_slice = in_host("time_slice", parse_duration(t))?;
    }
    if let Some(t) = &host.cpu_budget {
        config.cpu_budget = Some(in_host("cpu_budget", parse_duration(t))?);
    }
    if let Some(s) = &host.max_queue_bytes {
        config.max_queue_bytes = in_host("max_queue_bytes", parse_size(s))? as usize;
    }
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
        checked.push(check_tenant(table, &label, &config)?);
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
    })
}

/// Checks the keys of one tenant (its task and socket shares come later,
/// from all the tenants together).
fn check_tenant(table: TenantTable, label: &str, config: &Config) -> Result<Tenant, String> {
    let rules = |key: &str, list: &[String]| -> Result<Vec<NetRule>, String> {
        list.iter()
            .map(|r| r.parse().map_err(|e| format!("{label}: `{key}`: {e}")))
            .collect()
    };
    let net = NetPolicy::new(
        &rules("listen", &table.listen)?,
        &rules("connect", &table.connect)?,
    );
    let grants = |key: &str, list: &[String], writable: bool| -> Result<Vec<DirGrant>, String> {
        list.iter()
            .map(|d| {
                d.parse::<DirGrant>()
                    .map(|g| DirGrant { writable, ..g })
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
    Ok(Tenant {
        table,
        net,
        dirs,
        max_memory,
        max_app_memory,
        limits,
    })
}

/// `` `a` 10, `b` 500 ``: what each tenant takes.
fn list(tenants: &[Tenant], amounts: impl Iterator<Item = impl std::fmt::Display>) -> String {
    let items: Vec<String> = tenants
        .iter()
        .zip(amounts)
        .map(|(t, n)| format!("`{}` {n}", t.table.name))
        .collect();
    items.join(", ")
}

/// Gives each tenant its own share of the task pool and sizes the pool to
/// their sum, so that a tenant's spawns within its share always find a
/// free slot, whatever the others do. A tenant's `max_tasks` is reserved
/// for it; tenants without one share what `[host] max_tasks` leaves, or
/// get [`DEFAULT_TENANT_TASKS`] each where `[host]` does not set it.
fn reserve_tasks(host: Option<u32>, tenants: &mut [Tenant]) -> Result<u32, String> {
    let reserved: usize = tenants.iter().filter_map(|t| t.table.max_tasks).sum();
    let sharing = tenants.iter().filter(|t| t.table.max_tasks.is_none());
    let share = match host {
        None => DEFAULT_TENANT_TASKS,
        Some(pool) => {
            let pool = pool as usize;
            if reserved > pool {
                return Err(format!(
                    "[host]: `max_tasks` = {pool} is less than the {reserved} tasks the \
                     tenants reserve ({})",
                    list(
                        tenants,
                        tenants.iter().map(|t| t.table.max_tasks.unwrap_or(0))
                    )
                ));
            }
            let count = sharing.clone().count();
            let share = (pool - reserved) / count.max(1);
            if let Some(first) = sharing.clone().next()
                && share == 0
            {
                return Err(format!(
                    "[host]: `max_tasks` = {pool} leaves no task for {} (the others \
                     reserve {reserved}): raise it, or give each tenant a `max_tasks`",
                    first.label()
                ));
            }
            share
        }
    };
    for tenant in tenants.iter_mut() {
        tenant.limits.max_tasks = tenant.table.max_tasks.unwrap_or(share);
    }
    let total: usize = tenants.iter().map(|t| t.limits.max_tasks).sum();
    let pool = match host {
        Some(pool) => pool as usize,
        None => total,
    };
    u32::try_from(pool).map_err(|_| {
        format!("the tenants' `max_tasks` add up to {pool}, more than one host can hold")
    })
}

/// The most sockets a tenant gets when neither it nor `[host]` says, if
/// the open-file limit allows as many.
const DEFAULT_TENANT_SOCKETS: u64 = 10_000;

/// Why a budget cannot be shared out.
enum Shortfall {
    /// The claims add up to more than the budget.
    Over(u64),
    /// Tenant N would get nothing of what the others leave (they claim this much).
    Nothing(usize, u64),
}

/// Shares `budget` out among tenants, each claiming `(own, extra)`: `own`
/// its own amount, or `None` for an even share of what the others leave
/// (at most `cap`); `extra` a fixed amount it needs besides. Gives each
/// tenant's own amount or share.
fn share_out(budget: u64, claims: &[(Option<u64>, u64)], cap: u64) -> Result<Vec<u64>, Shortfall> {
    let claimed = claims
        .iter()
        .map(|(own, extra)| own.unwrap_or(0).saturating_add(*extra))
        .fold(0, u64::saturating_add);
    if claimed > budget {
        return Err(Shortfall::Over(claimed));
    }
    let sharing = claims.iter().filter(|(own, _)| own.is_none()).count() as u64;
    let share = ((budget - claimed) / sharing.max(1)).min(cap);
    claims
        .iter()
        .enumerate()
        .map(|(i, (own, _))| match own {
            Some(n) => Ok(*n),
            None if share == 0 => Err(Shortfall::Nothing(i, claimed)),
            None => Ok(share),
        })
        .collect()
}

/// Gives each tenant its own share of the process's open files: its
/// sockets (`max_sockets`, its own or `[host]`'s) and one per granted
/// directory per task (each task holds its own handle on each). Tenants
/// with no socket limit share what the others leave, up to
/// [`DEFAULT_TENANT_SOCKETS`] each. A file whose tenants could hold more
/// than the limit allows is refused: one tenant could then make another's
/// binds fail.
fn reserve_files(
    host_sockets: Option<usize>,
    tenants: &mut [Tenant],
    open_files: u64,
) -> Result<(), String> {
    let claims: Vec<(Option<u64>, u64)> = tenants
        .iter()
        .map(|t| {
            let own = t.table.max_sockets.or(host_sockets).map(|n| n as u64);
            (own, t.limits.max_tasks.saturating_mul(t.dirs.len()) as u64)
        })
        .collect();
    let budget = crate::files::for_apps(open_files) as u64;
    let too_many = |what: String| {
        format!(
            "{what}, more than the open-file limit allows ({open_files}, less {} for the \
             host): lower their `max_sockets` or `max_tasks`, or raise the limit (ulimit -Hn)",
            crate::files::HOST_FILES
        )
    };
    match share_out(budget, &claims, DEFAULT_TENANT_SOCKETS) {
        Ok(shares) => {
            for (tenant, share) in tenants.iter_mut().zip(shares) {
                tenant.limits.max_sockets = share as usize;
            }
            Ok(())
        }
        Err(Shortfall::Over(claimed)) => {
            let listed = claims.iter().map(|(own, extra)| own.unwrap_or(0) + extra);
            Err(too_many(format!(
                "the tenants may hold {claimed} open files (sockets, and a handle per granted \
                 directory per task: {})",
                list(tenants, listed)
            )))
        }
        Err(Shortfall::Nothing(i, claimed)) => Err(too_many(format!(
            "{} gets no sockets: the others may hold {claimed} open files",
            tenants[i].label()
        ))),
    }
}

/// Gives each tenant its own share of the machine's memory for its tasks'
/// linear memory: its `max_app_memory` (its own or `[host]`'s), or an even
/// share of what the others leave.
fn reserve_memory(host: Option<u64>, tenants: &mut [Tenant], memory: u64) -> Result<(), String> {
    let claims: Vec<(Option<u64>, u64)> = tenants
        .iter()
        .map(|t| (t.max_app_memory.or(host), 0))
        .collect();
    let mib = |n: u64| n >> 20;
    match share_out(memory, &claims, u64::MAX) {
        Ok(shares) => {
            for (tenant, share) in tenants.iter_mut().zip(shares) {
                tenant.limits.max_app_memory = share;
            }
            Ok(())
        }
        Err(Shortfall::Over(claimed)) => Err(format!(
            "the tenants' `max_app_memory` add up to {} MiB ({}), more than the machine's \
             {} MiB: lower them",
            mib(claimed),
            list(tenants, claims.iter().map(|(own, _)| mib(own.unwrap_or(0)))),
            mib(memory)
        )),
        Err(Shortfall::Nothing(i, claimed)) => Err(format!(
            "{} gets no memory: the others' `max_app_memory` take {} of the machine's {} MiB",
            tenants[i].label(),
            mib(claimed),
            mib(memory)
        )),
    }
}

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

/// Loads a checked tenant into `manager` and starts its main task.
fn start(
    manager: &mut TaskManager,
    dir: &Path,
    tenant: Tenant,
) -> Result<(String, Program, TaskId), String> {
    let name = tenant.table.name.clone();
    let label = format!("tenant `{name}`");
    let program = manager
        .load(dir.join(&tenant.table.app))
        .map_err(|e| format!("{label}: {e}"))?;
    let mut program = program
        .with_name(name.clone())
        .with_args(tenant.table.args)
        .with_env(tenant.table.env)
        .with_network(tenant.net)
        .with_dirs(tenant.dirs)
        .map_err(|e| format!("{label}: {e}"))?
        .with_limits(tenant.limits);
    if let Some(max) = tenant.max_memory {
        program = program.with_max_memory(max as usize);
    }
    let id = manager
        .add(&program, &tenant.table.entry, Vec::new())
        .map_err(|e| format!("{label}: {e}"))?;
    Ok((name, program, id))
}

/// Runs `mtask-host serve`.
pub(crate) fn serve(path: &Path, summary: bool) -> ExitCode {
    let fail = |message: String| {
        eprintln!("mtask-host: {message}");
        ExitCode::from(2)
    };
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return fail(format!("cannot read {shown}: {e}")),
    };
    let budget = Budget {
        open_files: crate::files::raise_limit(),
        memory: crate::engine::physical_memory(),
    };
    let file = match parse(&text, budget) {
        Ok(file) => file,
        Err(e) => return fail(format!("{shown}: {e}")),
    };
    let mut manager = match TaskManager::new(file.config) {
        Ok(m) => m,
        Err(e) => return fail(e.to_string()),
    };
    // Signals are handled from before the first (slow) load: one that
    // comes while tenants load is acted on, never fatal.
    let handle = manager.stop_handle();
    match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                for signal in signals.forever() {
                    if signal == SIGUSR1 {
                        handle.list_tasks();
                    } else {
                        handle.stop();
                    }
                }
            });
        }
        Err(e) => return fail(format!("cannot handle signals: {e}")),
    }
    let stop = manager.stop_handle();
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut running = Vec::new();
    let mut warned = false;
    for tenant in file.tenants {
        if stop.is_stopping() {
            break; // `run` below cancels what started and returns
        }
        match start(&mut manager, dir, tenant) {
            Ok(started) => {
                // Said once: every tenant shares the one cache.
                if let Some(note @ CacheNote::Unsafe(_)) = started.1.cache_note()
                    && !std::mem::replace(&mut warned, true)
                {
                    eprintln!("mtask-host: {note}");
                }
                running.push(started);
            }
            Err(e) => return fail(format!("{shown}: {e}")),
        }
    }
    if let Err(e) = manager.run() {
        eprintln!("mtask-host: {e}");
        return ExitCode::from(1);
    }
    for (name, program, id) in &running {
        if let Some(Err(error)) = manager.take_outcome(*id)
            && error != TaskError::Cancelled
        {
            eprintln!("mtask-host: tenant `{name}`: main task {error}");
        }
        if summary {
            let s = manager.stats(program);
            eprintln!(
                "mtask-host: tenant `{name}`: {} tasks started, {} succeeded, {} failed, {} trapped, {} over a limit, {} cancelled; peak memory {} KiB",
                s.started,
                s.succeeded,
                s.failed,
                s.trapped,
                s.limited,
                s.cancelled,
                s.peak_memory >> 10
            );
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse(text, BIG).err().expect("the file is refused")
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
        let file = parse(text, budget).unwrap();
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
            parse(&over, files(1064)).err().unwrap(),
            "the tenants may hold 1100 open files (sockets, and a handle per granted directory \
             per task: `a` 600, `b` 500), more than the open-file limit allows (1064, less 64 \
             for the host): lower their `max_sockets` or `max_tasks`, or raise the limit \
             (ulimit -Hn)"
        );
        let full = tenant("a", "max_sockets = 1000") + &tenant("b", "");
        assert!(
            parse(&full, files(1064))
                .err()
                .unwrap()
                .starts_with("tenant `b` gets no sockets: the others may hold 1000 open files")
        );
    }

    #[test]
    fn tenants_share_the_machines_memory() {
        let three = tenant("a", "max_app_memory = \"8GiB\"") + &tenant("b", "") + &tenant("c", "");
        let memory = |text: &str, budget| -> Vec<u64> {
            let file = parse(text, budget).unwrap();
            file.tenants
                .iter()
                .map(|t| t.limits.max_app_memory >> 30)
                .collect()
        };
        let machine = Budget {
            memory: 24 << 30,
            ..BIG
        };
        assert_eq!(memory(&three, machine), [8, 8, 8]);
        let over =
            tenant("a", "max_app_memory = \"20GiB\"") + &tenant("b", "max_app_memory = \"8GiB\"");
        assert_eq!(
            parse(&over, machine).err().unwrap(),
            "the tenants' `max_app_memory` add up to 28672 MiB (`a` 20480, `b` 8192), more than \
             the machine's 24576 MiB: lower them"
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
                 need 517 PiB of address space; the pool may reserve at most 64 TiB"
            ),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_tenant_and_the_key() {
        let one = "[[tenant]]\nname = \"a\"\napp = \"a.wasm\"\n";
        assert!(parse(one, BIG).is_ok());
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
            "unknown key `other` (expected [host] or [[tenant]])"
        );
    }
}
