//! `mtask-host compile`: fills the compiled-code cache ahead of a run, as
//! `wasmtime compile` does, so that the first `run` starts from the cache.
//!
//! Compiled code depends on the settings that shape it: `--max-memory`
//! (how memory accesses are checked) and `--no-preempt` (no epoch checks).
//! A `run` with other values compiles again; `compile` takes the same flags.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use crate::cli::units::parse_size;
use crate::{CacheNote, CodeOrigin, Config, TaskManager};

#[derive(Args, Debug)]
pub(crate) struct CompileArgs {
    /// The component (.wasm) to compile.
    app: PathBuf,

    /// The --max-memory the component will run with (compiled code
    /// depends on it).
    #[arg(long, default_value = "64MiB", value_name = "SIZE", value_parser = parse_size)]
    max_memory: u64,

    /// Compile for runs with --no-preempt.
    #[arg(long)]
    no_preempt: bool,

    /// Run at a low priority and print nothing: how `run` and `serve` have
    /// a component compiled behind its first run.
    #[arg(long, hide = true)]
    background: bool,

    /// Where compiled code is kept: the directory `run` reads.
    /// [default: $MTASK_CACHE_DIR, else $XDG_CACHE_HOME/mtask, else ~/.cache/mtask]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

/// Compiles `args.app` into the cache; returns the exit status (2 when the
/// component cannot be used or the cache cannot take it).
pub(super) fn compile(args: CompileArgs) -> ExitCode {
    if args.background {
        crate::tier::lower_priority();
    }
    let fail = |message: String| {
        tracing::error!("{message}");
        ExitCode::from(2)
    };
    let Some(cache_dir) = args.cache_dir.or_else(crate::cache::default_dir) else {
        return fail("no cache directory: give --cache-dir, or set MTASK_CACHE_DIR".into());
    };
    let config = Config {
        // One task's room is enough to list the component's entries.
        max_tasks: 1,
        max_memory: args.max_memory,
        preempt: !args.no_preempt,
        threads: 1,
        cache_dir: Some(cache_dir.clone()),
        ..Config::default()
    };
    if let Err(e) = config.check(super::flag) {
        return fail(e);
    }
    let manager = match TaskManager::new(config) {
        Ok(m) => m,
        Err(e) => return fail(e.to_string()),
    };
    let start = Instant::now();
    let name = args.app.display().to_string();
    let loaded =
        super::progress::while_slow(&format!("compiling {name}"), || manager.load(&args.app));
    let program = match loaded {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    match (program.origin(), program.cache_note()) {
        // The code was compiled but not kept: the next run compiles again.
        (_, Some(note @ (CacheNote::Unsafe(_) | CacheNote::NotStored(_)))) => {
            fail(note.to_string())
        }
        (CodeOrigin::Cached, _) => {
            println!("{name}: already in the cache ({})", cache_dir.display());
            ExitCode::SUCCESS
        }
        // `compile` does not tier: Cranelift compiled it.
        (CodeOrigin::Compiled | CodeOrigin::Baseline, note) => {
            if let Some(note) = note {
                tracing::warn!("{note}");
            }
            println!(
                "{name}: compiled into the cache ({}) in {:.1} s",
                cache_dir.display(),
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
    }
}
