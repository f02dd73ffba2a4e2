//! `mtask-host serve tenants.toml`: several apps (tenants) in one host.
//!
//! Each tenant is its own app: its component, entry, args, env, memory
//! limit and capabilities (listen, connect, directories). Apps share no
//! queues and no handles, and one tenant's traps and limits end only its own
//! tasks. The `[host]` table sets what the whole host shares (the task pool,
//! the time slice) and the defaults of each tenant's own limits (CPU
//! budget, sockets, queue bytes), which a tenant can override.
//!
//! ```toml
//! [host]                      # optional; every key optional
//! max_tasks = 10000
//! time_slice = "10ms"
//! cpu_budget = "30s"
//! max_sockets = 1000          # per tenant
//! max_queue_bytes = "16MiB"   # per tenant
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
//! max_tasks = 1000            # live tasks of this tenant
//! max_sockets = 100           # these three override [host]'s
//! max_queue_bytes = "1MiB"
//! cpu_budget = "2s"           # per task of this tenant
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

use crate::cli::{parse_duration, parse_size};
use crate::net_policy::{NetPolicy, NetRule};
use crate::{AppLimits, Config, DirGrant, Program, TaskError, TaskId, TaskManager};

/// The `[host]` table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HostTable {
    max_tasks: Option<u32>,
    time_slice: Option<String>,
    cpu_budget: Option<String>,
    max_sockets: Option<usize>,
    max_queue_bytes: Option<String>,
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
    limits: AppLimits,
}

/// The whole file, checked: the host's settings and the tenants.
struct TenantsFile {
    config: Config,
    tenants: Vec<Tenant>,
}

/// Parses `text`; an error names the tenant and the key.
fn parse(text: &str) -> Result<TenantsFile, String> {
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
    if let Some(n) = host.max_tasks {
        config.max_tasks = n;
    }
    if let Some(t) = &host.time_slice {
        config.time_slice = in_host("time_slice", parse_duration(t))?;
    }
    if let Some(t) = &host.cpu_budget {
        config.cpu_budget = Some(in_host("cpu_budget", parse_duration(t))?);
    }
    if let Some(n) = host.max_sockets {
        config.max_sockets = n;
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
        let rules = |key: &str, list: &[String]| -> Result<Vec<NetRule>, String> {
            list.iter()
                .map(|r| r.parse().map_err(|e| format!("{label}: `{key}`: {e}")))
                .collect()
        };
        let net = NetPolicy::new(
            &rules("listen", &table.listen)?,
            &rules("connect", &table.connect)?,
        );
        let grants =
            |key: &str, list: &[String], writable: bool| -> Result<Vec<DirGrant>, String> {
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
        let max_memory = match &table.max_memory {
            Some(s) => Some(parse_size(s).map_err(|e| format!("{label}: `max_memory`: {e}"))?),
            None => None,
        };
        let mut limits = AppLimits::from(&config);
        if let Some(n) = table.max_tasks {
            limits.max_tasks = n;
        }
        if let Some(n) = table.max_sockets {
            limits.max_sockets = n;
        }
        if let Some(s) = &table.max_queue_bytes {
            limits.max_queue_bytes =
                parse_size(s).map_err(|e| format!("{label}: `max_queue_bytes`: {e}"))? as usize;
        }
        if let Some(t) = &table.cpu_budget {
            limits.cpu_budget =
                Some(parse_duration(t).map_err(|e| format!("{label}: `cpu_budget`: {e}"))?);
        }
        checked.push(Tenant {
            table,
            net,
            dirs,
            max_memory,
            limits,
        });
    }
    // The pool's slots must fit the largest tenant.
    if let Some(max) = checked.iter().filter_map(|t| t.max_memory).max() {
        config.max_memory = config.max_memory.max(max);
    }
    Ok(TenantsFile {
        config,
        tenants: checked,
    })
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
    let file = match parse(&text) {
        Ok(file) => file,
        Err(e) => return fail(format!("{shown}: {e}")),
    };
    let mut manager = match TaskManager::new(file.config) {
        Ok(m) => m,
        Err(e) => return fail(e.to_string()),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut running = Vec::new();
    for tenant in file.tenants {
        match start(&mut manager, dir, tenant) {
            Ok(started) => running.push(started),
            Err(e) => return fail(format!("{shown}: {e}")),
        }
    }
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
        parse(text).err().expect("the file is refused")
    }

    #[test]
    fn errors_name_the_tenant_and_the_key() {
        let one = "[[tenant]]\nname = \"a\"\napp = \"a.wasm\"\n";
        assert!(parse(one).is_ok());
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
