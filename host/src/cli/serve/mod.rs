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
//! Every key of the file is in [`REFERENCE`], which `serve --help`
//! prints (a test holds it to what the parser accepts).
//!
//! `tenants` reads and checks the file (`tenant`: one tenant's table);
//! `shares` reserves each tenant's share of the host; `metrics` serves
//! their figures to Prometheus; this file loads the tenants and runs them.

/// Every key a tenants file may have, with its meaning: printed by
/// `mtask-host serve --help`, and checked against the parser by a test.
pub(crate) const REFERENCE: &str = r#"The tenants file (TOML), every key:

[host]                      # optional; every key optional
max_tasks = 10000           # the pool the tenants share out
time_slice = "10ms"         # a busy task is preempted after this
threads = 4                 # scheduler threads; default one per core
cpu_budget = "30s"          # per task, for every tenant
max_sockets = 1000          # per tenant
max_queue_bytes = "16MiB"   # per tenant
max_app_memory = "4GiB"     # per tenant
metrics = "127.0.0.1:9100"  # serve GET /metrics here (as --metrics)

[[tenant]]
name = "echo"               # required, unique
app = "echo_server.wasm"    # required; relative to this file's folder
entry = "main"              # default "main"
args = ["127.0.0.1:7878"]   # the guest's arguments after its name
env = { GREETING = "hi" }   # its environment variables (no others)
listen = ["127.0.0.1:7878"] # network rules, as for `run --listen`
connect = []                # as for `run --connect`
name_lookup = false         # as for `run --name-lookup`
dirs = ["data::/data"]      # read-only, as for `run --dir`; relative to this file's folder
dirs_rw = []                # writable, as for `run --dir-rw`; the same
max_memory = "64MiB"        # per task of this tenant
max_app_memory = "2GiB"     # all its tasks' memory, reserved for it
max_tasks = 1000            # live tasks of this tenant, reserved for it
max_sockets = 100           # these three override [host]'s
max_queue_bytes = "1MiB"
cpu_budget = "2s"           # per task of this tenant
time_slice = "5ms"          # its tasks are preempted after this; default [host]'s
share = 2                   # its weight when several tenants want CPU (1 to 100, default 1)
restart = "on-failure"      # start main again when it ends: "never" (default), "on-failure", "always"
max_restarts = 5            # at most this many restarts within restart_window, then it stays down
restart_window = "60s"
restart_delay = "100ms"     # the wait before a restart, doubled for each restart within the window
max_restart_delay = "30s"   # the longest wait
drain_grace = "10s"         # after a reload replaced or removed it, its old tasks run on this long

[cluster]                   # optional: join a cluster; serve then runs until stopped
url = "nats://127.0.0.1:4222" # required: a NATS server with JetStream
creds = "host.creds"        # a NATS credentials file; relative to this file's folder
tls_ca = "ca.pem"           # a root certificate (PEM); TLS is then required
lease = "30s"               # what a dead host held goes to another after this
jobs = 4                    # remote spawns this host runs at once; default one per thread
"#;

mod launch;
mod metrics;
mod reload;
mod shares;
mod tenant;
mod tenants;

use std::path::Path;
use std::process::ExitCode;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

use super::logs::LogFormat;
use crate::shard::lock;
use crate::{CacheNote, Finish, TaskError, TaskManager};
use launch::Launcher;
use reload::{Reloader, Started};
use tenant::Roster;
use tenants::{Budget, parse};

/// What the command line adds to the tenants file.
pub(crate) struct Options {
    /// `--summary`: a line per tenant at exit.
    pub(crate) summary: bool,
    /// `--threads`, over `[host] threads`.
    pub(crate) threads: Option<usize>,
    /// How a component missing from the cache is compiled.
    pub(crate) tiering: crate::Tiering,
    /// `--metrics`, over `[host] metrics`.
    pub(crate) metrics: Option<std::net::SocketAddr>,
    /// `--watch`: reload when a file changes.
    pub(crate) watch: bool,
    /// `--log-format`: in JSON, the tenants' output lines are events.
    pub(crate) log_format: LogFormat,
}

/// Runs `mtask-host serve`.
pub(crate) fn serve(path: &Path, options: Options) -> ExitCode {
    let Options {
        summary,
        threads,
        tiering,
        metrics,
        watch,
        log_format,
    } = options;
    let fail = |message: String| {
        tracing::error!("{message}");
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
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = match parse(&text, dir, budget) {
        Ok(file) => file,
        Err(e) => return fail(format!("{shown}: {e}")),
    };
    if let Some(threads) = threads {
        file.config.threads = threads;
    }
    file.config.tiering = tiering;
    // Bound before the (slow) loads, so a bad address fails at once.
    let metrics = match metrics.or(file.metrics).map(std::net::TcpListener::bind) {
        Some(Ok(listener)) => Some(listener),
        Some(Err(e)) => return fail(format!("cannot serve metrics: {e}")),
        None => None,
    };
    if let Some(Ok(addr)) = metrics.as_ref().map(|l| l.local_addr()) {
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
    }
    let files = (file.files() + crate::files::HOST_FILES).min(budget.open_files);
    crate::files::reserve_table(files);
    let clustered = file.config.cluster.is_some();
    let started = Started {
        fixed: file.fixed.clone(),
        pool: file.config.max_tasks,
    };
    let mut manager = match TaskManager::new(file.config) {
        Ok(m) => m,
        Err(e) => return fail(e.to_string()),
    };
    // Signals are handled from before the first (slow) load: one that
    // comes while tenants load is acted on, never fatal.
    let (reloads, asked) = std::sync::mpsc::channel();
    let handle = manager.stop_handle();
    let on_hup = reloads.clone();
    match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1, SIGHUP]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                for signal in signals.forever() {
                    match signal {
                        SIGUSR1 => handle.list_tasks(),
                        SIGHUP => drop(on_hup.send(())),
                        _ => handle.stop(),
                    }
                }
            });
        }
        Err(e) => return fail(format!("cannot handle signals: {e}")),
    }
    let stop = manager.stop_handle();
    if clustered {
        // Remote spawns may come at any time: serve runs until stopped.
        manager.keep_running();
    }
    let control = manager.control();
    let launcher = Launcher {
        control: control.clone(),
        dir: dir.to_path_buf(),
        output_events: log_format == LogFormat::Json,
    };
    let roster: Roster = Default::default();
    let mut warned = false;
    for tenant in file.tenants {
        if stop.is_stopping() {
            break; // `run` below cancels what started and returns
        }
        let served = launcher.prepare(tenant).and_then(|p| launcher.launch(p));
        match served {
            Ok(served) => {
                // Said once: every tenant shares the one cache.
                if let Some(note @ CacheNote::Unsafe(_)) = served.program.cache_note()
                    && !std::mem::replace(&mut warned, true)
                {
                    tracing::warn!("{note}");
                }
                // In cluster mode (else nothing): the tenant's remote
                // spawns of this component may run here.
                manager.take_remote_spawns(&served.program, true);
                lock(&roster).push(served);
            }
            Err(e) => return fail(format!("{shown}: {e}")),
        }
    }
    if let Some(listener) = metrics {
        metrics::serve(listener, manager.stats_handle(), roster.clone());
    }
    let reloader = Reloader {
        path: path.to_path_buf(),
        budget,
        started,
        launcher,
        roster: roster.clone(),
        stop: manager.stop_handle(),
        clustered,
    };
    reload::start(reloader, asked, watch.then_some(reloads));
    if let Err(e) = manager.run() {
        tracing::error!("{e}");
        return ExitCode::from(1);
    }
    for served in lock(&roster).iter() {
        let name = &served.table.name;
        // A supervisor that gave up said so, with the error; a version
        // retired by a reload ended as it was told to.
        if let Some(Finish {
            outcome: Err(error),
            gave_up: false,
        }) = served.main.finish()
            && error != TaskError::Cancelled
            && !served.main.is_retired()
        {
            tracing::error!(tenant = %name, outcome = error.kind(), "tenant `{name}`: main task {error}");
        }
        if summary {
            let s = manager.stats(&served.program);
            tracing::info!(
                tenant = %name,
                started = s.started,
                succeeded = s.succeeded,
                failed = s.failed,
                trapped = s.trapped,
                limit = s.limited,
                cancelled = s.cancelled,
                restarts = s.restarts,
                peak_memory = s.peak_memory,
                "tenant `{name}`: {} tasks started, {} succeeded, {} failed, {} trapped, {} over a limit, {} cancelled, {} restarts; peak memory {} KiB",
                s.started,
                s.succeeded,
                s.failed,
                s.trapped,
                s.limited,
                s.cancelled,
                s.restarts,
                s.peak_memory >> 10
            );
        }
    }
    ExitCode::SUCCESS
}
