//! `mtask-host run`: one app's main task, and every task it starts, to the end.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::units::{parse_duration, parse_size, parse_threads};
use crate::net_policy::{NetPolicy, NetRule};
use crate::{CacheNote, CodeOrigin, Config, DirGrant, TaskError, TaskManager};

#[derive(clap::Args, Debug)]
pub(super) struct RunArgs {
    /// The component to run (a .wasm file built with the mtask SDK).
    app: PathBuf,

    /// The entry the main task runs.
    #[arg(long, default_value = "main", value_name = "NAME")]
    entry: String,

    /// The main task's argument, as JSON (`7`, `'"text"'`, `'[1, 2]'`),
    /// which the component's SDK turns into the entry's argument. The main
    /// task's result, unless `null`, is printed on stdout as JSON.
    /// [default: null]
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    arg: Option<String>,

    /// The most tasks alive at once [default: 100000, or as many as the
    /// address space holds with --max-memory].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_tasks: Option<u32>,

    /// The most linear memory per task, in bytes or with a KiB/MiB/GiB suffix.
    #[arg(long, default_value = "64MiB", value_name = "SIZE", value_parser = parse_size)]
    max_memory: u64,

    /// The most linear memory the app's tasks may have in all, in bytes or
    /// with a KiB/MiB/GiB suffix; a growth past it fails, and the task
    /// that asked ends with `limit`. [default: the machine's memory]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_app_memory: Option<u64>,

    /// The most bytes the queues of the app may hold, in bytes or with a
    /// KiB/MiB/GiB suffix; a put past it fails with `limit`.
    #[arg(long, default_value = "64MiB", value_name = "SIZE", value_parser = parse_size)]
    max_queue_bytes: u64,

    /// The most sockets the app's tasks may have open at once; past it,
    /// bind, connect and accept fail with `limit`. At most what the
    /// open-file limit allows (`ulimit -Hn`, less 64 for the host).
    /// [default: 10000, or that if less]
    #[arg(long, value_name = "N")]
    max_sockets: Option<usize>,

    /// How long a task may run without waiting before it is preempted and
    /// the others run (`10ms`, `500us`, `1s`).
    #[arg(long, default_value = "10ms", value_name = "TIME", value_parser = parse_duration)]
    time_slice: Duration,

    /// How many scheduler threads run the tasks. With 1, tasks step in
    /// multitask's exact order. [default: one per available core]
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    threads: Option<usize>,

    /// Never preempt: a task runs until it waits. Slightly faster code, but
    /// a task that loops holds every other task up. Not with --cpu-budget,
    /// which needs preemption.
    #[arg(long, conflicts_with = "cpu_budget")]
    no_preempt: bool,

    /// End any task that has used this much CPU time, with a `limit` error
    /// (`250ms`, `2s`). Default: no budget.
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    cpu_budget: Option<Duration>,

    /// Let tasks read the host directory HOST_PATH, which they see at
    /// GUEST_PATH (default: the same path). Read-only; repeatable. `..`,
    /// absolute paths and symlinks cannot leave it.
    #[arg(long = "dir", value_name = "HOST_PATH[::GUEST_PATH]")]
    dirs: Vec<DirGrant>,

    /// Like --dir, and let tasks create, change and delete files there.
    #[arg(long = "dir-rw", value_name = "HOST_PATH[::GUEST_PATH]")]
    dirs_rw: Vec<DirGrant>,

    /// Give tasks the environment variable NAME, set to VALUE; NAME alone
    /// passes on mtask-host's own value. Repeatable; tasks see no other.
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    env: Vec<(String, Option<String>)>,

    /// Give tasks mtask-host's own value of NAME (like `--env NAME`). Repeatable.
    #[arg(long = "env-inherit", value_name = "NAME", value_parser = parse_env_name)]
    env_inherit: Vec<String>,

    /// Let tasks bind (TCP listen, UDP bind) to addresses this rule grants:
    /// `IP[/PREFIX]:PORTS`, IPv6 in brackets, PORTS one port, `A-B` or `*`
    /// (e.g. `127.0.0.1:8080`, `10.0.0.0/8:*`, `[::1]:9000-9010`). Repeatable;
    /// with none, every bind is denied.
    #[arg(long, value_name = "RULE", value_parser = parse_rule)]
    listen: Vec<NetRule>,

    /// Let tasks connect (TCP connect, UDP send) to addresses this rule
    /// grants; same syntax as --listen. Repeatable; with none, every connect
    /// is denied.
    #[arg(long, value_name = "RULE", value_parser = parse_rule)]
    connect: Vec<NetRule>,

    /// Let tasks' standard-library sockets look host names up through the
    /// host's resolver (a lookup leaves the sandbox: off by default; address
    /// literals and `localhost` resolve without it). Connects still need
    /// --connect.
    #[arg(long)]
    name_lookup: bool,

    /// Where compiled code is cached between runs
    /// [default: $MTASK_CACHE_DIR, else $XDG_CACHE_HOME/mtask, else ~/.cache/mtask].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,

    /// Compile the component even if a cached copy exists, and keep none.
    #[arg(long)]
    no_cache: bool,

    #[command(flatten)]
    tiering: super::TieringArg,

    /// Say on stderr how the component was loaded and how long the run took.
    #[arg(short, long)]
    verbose: bool,

    #[command(flatten)]
    cluster: super::cluster::ClusterArgs,

    /// Arguments for the guest: its `std::env::args()` after the app name.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

fn parse_rule(text: &str) -> Result<NetRule, String> {
    text.parse()
}

/// `NAME=VALUE`, or `NAME` for the host's own value.
fn parse_env(text: &str) -> Result<(String, Option<String>), String> {
    match text.split_once('=') {
        Some((name, value)) => Ok((parse_env_name(name)?, Some(value.to_string()))),
        None => Ok((parse_env_name(text)?, None)),
    }
}

/// A variable's name: not empty, no `=` (it would end the name).
fn parse_env_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("a variable's name cannot be empty".into());
    }
    if name.contains('=') {
        return Err(format!("`{name}`: a variable's name cannot contain `=`"));
    }
    Ok(name.to_string())
}

/// The variables tasks get: those given, the host's values looked up, in
/// the order given; a name given twice keeps its last value. A name to
/// inherit that the host does not have (or not as UTF-8) is an error: the
/// task would otherwise start without what it was promised.
fn guest_env(
    given: Vec<(String, Option<String>)>,
    inherit: Vec<String>,
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let inherited = inherit.into_iter().map(|name| (name, None));
    for (name, value) in given.into_iter().chain(inherited) {
        let value = match value {
            Some(value) => value,
            None => std::env::var(&name).map_err(|e| match e {
                std::env::VarError::NotPresent => {
                    format!("--env {name}: mtask-host's environment has no `{name}` to pass on")
                }
                std::env::VarError::NotUnicode(_) => {
                    format!("--env {name}: mtask-host's value of `{name}` is not UTF-8")
                }
            })?,
        };
        env.retain(|(known, _)| *known != name);
        env.push((name, value));
    }
    Ok(env)
}

/// Runs one app to its end; returns the process's exit status.
pub(super) fn run(args: RunArgs) -> ExitCode {
    let fail = |message: String, code: u8| {
        tracing::error!("{message}");
        ExitCode::from(code)
    };
    let open_files = crate::files::raise_limit();
    let file_budget = crate::files::for_apps(open_files);
    let max_sockets = match args.max_sockets {
        Some(n) if n > file_budget => {
            return fail(
                format!(
                    "--max-sockets {n} is more than the open-file limit allows ({open_files}, \
                     less {} for the host): lower it, or raise the limit (ulimit -Hn)",
                    crate::files::HOST_FILES
                ),
                2,
            );
        }
        Some(n) => n,
        None => Config::default().max_sockets.min(file_budget),
    };
    let max_tasks = args
        .max_tasks
        .unwrap_or_else(|| crate::engine::default_max_tasks(args.max_memory));
    let dir_files = u64::from(max_tasks) * (args.dirs.len() + args.dirs_rw.len()) as u64;
    crate::files::reserve_table(
        (max_sockets as u64 + dir_files + crate::files::HOST_FILES).min(open_files),
    );
    let config = Config {
        max_tasks,
        max_memory: args.max_memory,
        max_app_memory: args
            .max_app_memory
            .unwrap_or_else(crate::engine::physical_memory),
        max_queue_bytes: args.max_queue_bytes as usize,
        max_sockets,
        time_slice: args.time_slice,
        preempt: !args.no_preempt,
        threads: args.threads.unwrap_or_else(crate::engine::default_threads),
        cpu_budget: args.cpu_budget,
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir.or_else(crate::cache::default_dir)
        },
        cluster: args.cluster.config(),
        tiering: args.tiering.tiering(),
    };
    if let Err(e) = config.check(super::flag) {
        return fail(e, 2);
    }
    let env = match guest_env(args.env, args.env_inherit) {
        Ok(env) => env,
        Err(e) => return fail(e, 2),
    };
    let start = Instant::now();
    let mut manager = match TaskManager::new(config) {
        Ok(m) => m,
        Err(e) => return fail(e.to_string(), 2),
    };
    let loading = format!("compiling {}", args.app.display());
    let program = match super::progress::while_slow(&loading, || manager.load(&args.app)) {
        Ok(p) => p
            .with_args(args.args)
            .with_env(env)
            .with_stdin(true)
            .with_tenant(args.cluster.tenant.clone())
            .with_network(
                NetPolicy::new(&args.listen, &args.connect).with_name_lookup(args.name_lookup),
            ),
        Err(e) => return fail(e.to_string(), 2),
    };
    let writable = args.dirs_rw.into_iter().map(|d| DirGrant {
        writable: true,
        ..d
    });
    let program = match program.with_dirs(args.dirs.into_iter().chain(writable).collect()) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string(), 2),
    };
    match program.cache_note() {
        // A cache others could write is a hazard to hear of on every run.
        Some(note @ CacheNote::Unsafe(_)) => tracing::warn!("{note}"),
        Some(note) if args.verbose => tracing::info!("{note}"),
        _ => {}
    }
    if args.verbose {
        let how = match program.origin() {
            CodeOrigin::Compiled => "compiled",
            CodeOrigin::Cached => "loaded from the cache",
            CodeOrigin::Baseline => {
                "compiled by Winch (Cranelift compiles it for the cache in the background)"
            }
        };
        tracing::info!(
            "{} {how} in {:.1} ms",
            program.name(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    if args.cluster.cluster.is_some() {
        // A cluster host hands back the remote spawns it runs when stopped,
        // for another host to run at once.
        if let Err(e) = stop_on_signals(manager.stop_handle()) {
            return fail(format!("cannot handle signals: {e}"), 2);
        }
    }
    if args.cluster.worker {
        manager.keep_running();
        manager.take_remote_spawns(&program, true);
        return match manager.run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e.to_string(), 1),
        };
    }
    // A component of WIT 0.1.2 takes the main task's argument as JSON
    // (`null` if none) and gives its result back as JSON; older ones and
    // commands take no argument.
    let json = args.arg.is_some() || program.takes_json();
    let added = match &args.arg {
        _ if !json => manager.add(&program, &args.entry, Vec::new()),
        arg => manager.add_json(&program, &args.entry, arg.as_deref().unwrap_or("null")),
    };
    let main = match added {
        Ok(id) => id,
        Err(e) => return fail(e.to_string(), 2),
    };
    manager.take_remote_spawns(&program, false);
    // The run's own time: the load (and any compile) was said above.
    let running = Instant::now();
    if let Err(e) = manager.run() {
        // The main task may have failed before the others stalled: its
        // error is what the user needs first (a main task that was still
        // waiting was cancelled by the stall, which says nothing new).
        match manager.take_outcome(main) {
            Some(Err(TaskError::Cancelled)) | Some(Ok(_)) | None => {}
            Some(Err(error)) => tracing::error!(
                outcome = error.kind(),
                "main task (`{}`) {error}",
                args.entry
            ),
        }
        return fail(e.to_string(), 1);
    }
    if args.verbose {
        tracing::info!("ran in {:.1} ms", running.elapsed().as_secs_f64() * 1e3);
    }
    match manager.take_outcome(main) {
        Some(Ok(value)) => {
            if json && !value.is_empty() && value != b"null" {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&value).and_then(|()| out.write_all(b"\n"));
            }
            ExitCode::SUCCESS
        }
        // A command's status is its own to give (it said why, if it had
        // to); one past 255 still reads as a failure.
        Some(Err(TaskError::Exited(status))) => ExitCode::from(status.clamp(1, 255) as u8),
        Some(Err(error)) => fail(format!("main task (`{}`) {}", args.entry, error), 1),
        None => fail("the main task did not end".to_string(), 1),
    }
}

/// A JSON text, checked here so that a typo is the command line's error.
fn parse_json(text: &str) -> Result<String, String> {
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Ok(_) => Ok(text.to_string()),
        Err(e) => Err(format!("not JSON ({e}); a text is quoted: '\"hello\"'")),
    }
}

/// Stops the run on SIGINT or SIGTERM: every task is cancelled, and the
/// remote spawns this host runs go back to the cluster.
fn stop_on_signals(stop: crate::StopHandle) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("mtask-signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                stop.stop();
            }
        })?;
    Ok(())
}
