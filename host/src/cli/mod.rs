//! The `mtask-host` command: `run` (one app, `cli::run`), `serve`
//! (tenants, `cli::serve`) and `compile` (fill the cache, `cli::compile`);
//! `cli::units` parses the durations, sizes and thread counts they take;
//! `cli::progress` says on stderr that a slow compile is under way.
//!
//! Exit status: 0 when the main task succeeded, 1 when it failed, 2 for a
//! usage error or a component that cannot be used.

mod cluster;
mod compile;
pub(crate) mod logs;
mod progress;
mod run;
pub(crate) mod serve;
pub(crate) mod units;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use compile::CompileArgs;
use logs::LogFormat;
use run::RunArgs;
use units::parse_threads;

/// Run WebAssembly components as cooperative, sandboxed tasks.
#[derive(Parser, Debug)]
#[command(name = "mtask-host", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How the host writes its messages: `text`, a line each on stderr
    /// (`mtask-host: ...`), or `json`, an object each (with level, target,
    /// timestamp, and the tenant and task it concerns), and in `serve`
    /// the tenants' output lines as objects too. RUST_LOG filters them
    /// (default `mtask=info`; `RUST_LOG=mtask=debug` adds each task's start and
    /// end and each refused address).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a component's main task, and every task it starts, to the end.
    ///
    /// The main task reads mtask-host's stdin (a read waits in that task
    /// only); the tasks it starts read nothing. Exits 0 when the main task
    /// succeeded, 1 when it failed (its error and wasm backtrace go to
    /// stderr), 2 when the component cannot be used.
    Run(Box<RunArgs>),

    /// Run several apps (tenants) in one host, as a tenants.toml file
    /// describes (every key: `serve --help`; an example:
    /// examples/tenants.toml).
    ///
    /// Tenants share nothing but the host: no queues, no handles; one's
    /// traps and limits end only its own tasks. Each tenant's limits are
    /// reserved for it: the task pool, the open files and the machine's
    /// memory are shared out at start, and a file whose shares do not fit
    /// is refused. What tasks print goes out in whole lines, each after its
    /// tenant's name (`[echo] ...`). SIGINT or SIGTERM cancels every task, closes every
    /// socket, and exits 0; SIGUSR1 lists the live tasks on stderr (both
    /// are handled from the start, also while tenants load). SIGHUP reloads
    /// the file: new tenants start, removed ones drain and stop, changed
    /// ones start their new version, which takes over the listening
    /// sockets (no connection refused); a bad file is refused whole.
    #[command(after_long_help = serve::REFERENCE)]
    Serve {
        /// The tenants file.
        config: PathBuf,
        /// At exit, print a line per tenant: tasks started, succeeded,
        /// failed, trapped, over a limit, cancelled.
        #[arg(long)]
        summary: bool,
        /// How many scheduler threads run the tasks; overrides `threads`
        /// under [host]. [default: one per available core]
        #[arg(long, value_name = "N", value_parser = parse_threads)]
        threads: Option<usize>,
        #[command(flatten)]
        tiering: TieringArg,
        /// Serve the host's and each tenant's figures at GET /metrics on
        /// this address, for Prometheus; overrides `metrics` under [host].
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// Reload when the tenants file or a tenant's app changes, as on
        /// SIGHUP.
        #[arg(long)]
        watch: bool,
    },

    /// Compile a component into the cache ahead of its first run.
    ///
    /// Compiled code depends on --max-memory and --no-preempt: give the
    /// values the runs will use. Exits 2 when the component cannot be used
    /// or its code cannot be kept.
    Compile(CompileArgs),
}

/// How `run` and `serve` compile a component missing from the cache.
#[derive(clap::Args, Debug)]
struct TieringArg {
    /// Compile a component missing from the cache with Cranelift before it
    /// runs, as `compile` does. Without it, Winch (wasmtime's baseline
    /// compiler) compiles it in a fraction of the time and it starts at
    /// once, on code about 1.7 times slower, while a detached,
    /// low-priority `mtask-host compile` fills the cache with Cranelift's
    /// code: for the next run, and for the tasks started once it is done.
    #[arg(
        long,
        env = "MTASK_NO_TIERING",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    no_tiering: bool,
}

impl TieringArg {
    fn tiering(&self) -> crate::Tiering {
        if self.no_tiering {
            return crate::Tiering::Off;
        }
        // Without a path to this executable, the compile runs in a thread.
        std::env::current_exe().map_or(crate::Tiering::Background, crate::Tiering::Detached)
    }
}

/// The command-line flag that sets `Config`'s field `key` (`--max-tasks`),
/// to name it in an error.
fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// Runs the command line; returns the process's exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logs::init(cli.log_format) {
        eprintln!("mtask-host: {e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Serve {
            config,
            summary,
            threads,
            tiering,
            metrics,
            watch,
        } => serve::serve(
            &config,
            serve::Options {
                summary,
                threads,
                tiering: tiering.tiering(),
                metrics,
                watch,
                log_format: cli.log_format,
            },
        ),
        Command::Compile(args) => compile::compile(args),
    }
}
