//! Runs a host's shards, one thread each, until every task has ended, a
//! stop is asked for, or the tasks left can never run again
//! (docs/design.md §3).
//!
//! The calling thread runs shard 0 and answers requests to list the tasks;
//! the others get a thread each for the length of the run. A shard whose
//! tasks all wait on other shards parks in its poll; the last to park
//! sees that every shard is parked, which is a deadlock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::engine::tokio_runtime;
use crate::error::Error;
use crate::ids::TaskKey;
use crate::say::say;
use crate::shard::{self, Poller, Shard, lock};
use crate::shards::Shards;

/// What the shards of one run share.
struct Run<'a> {
    /// The shards.
    shards: &'a Shards,
    /// Set when the run is over, for every shard's loop.
    over: AtomicBool,
    /// Why it is over, if that is an error.
    error: Mutex<Option<Error>>,
}

impl Run<'_> {
    /// Ends the run (with `error`, unless one is recorded already) and
    /// wakes every shard to see it.
    fn end(&self, error: Option<Error>) {
        if let Some(error) = error {
            lock(&self.error).get_or_insert(error);
        }
        self.over.store(true, Ordering::SeqCst);
        for shard in self.shards.all() {
            shard.remote.interrupt();
        }
    }
}

/// Runs every shard until the run ends.
pub(crate) fn run(shards: &Shards, pollers: &mut [Poller]) -> Result<(), Error> {
    let run = Run {
        shards,
        over: AtomicBool::new(false),
        error: Mutex::new(None),
    };
    let (first, rest) = pollers.split_first_mut().expect("a host has a shard");
    std::thread::scope(|scope| {
        let mut threads = Vec::new();
        for (i, poller) in rest.iter_mut().enumerate() {
            let run = &run;
            let spawned = std::thread::Builder::new()
                .name(format!("mtask-shard-{}", i + 1))
                .spawn_scoped(scope, move || {
                    let _tokio = tokio_runtime().enter();
                    // A panic ended the run; the thread just ends.
                    let _ = guarded(run, || run_shard(run, i + 1, poller));
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    run.end(Some(Error::Host(format!(
                        "cannot start a shard thread: {e}"
                    ))));
                    break;
                }
            }
        }
        let panic = guarded(&run, || run_shard(&run, 0, first));
        for thread in threads {
            // Its panic, if any, ended the run already.
            let _ = thread.join();
        }
        if let Err(panic) = panic {
            std::panic::resume_unwind(panic);
        }
    });
    // A task a busy shard placed on one that had already stopped.
    for shard in shards.all() {
        cancel_all(shard);
    }
    match lock(&run.error).take() {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Runs `f` (a shard's loop); if it panics (a bug in the host), ends the
/// run so that the other shards stop too, rather than wait for it forever.
fn guarded(run: &Run<'_>, f: impl FnOnce()) -> std::thread::Result<()> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    if result.is_err() {
        run.end(Some(Error::Host("a scheduler thread panicked".into())));
    }
    result
}

/// The loop of shard `index`; shard 0 also lists the tasks when asked.
fn run_shard(run: &Run<'_>, index: usize, poller: &mut Poller) {
    let shard = &run.shards.all()[index];
    loop {
        if index == 0 && shard.remote.take_dump_request() {
            dump_tasks(run.shards);
        }
        if run.over.load(Ordering::SeqCst) {
            return;
        }
        if run.shards.live() == 0 && !run.shards.kept_open() {
            return run.end(None);
        }
        if shard.remote.stop_requested() {
            cancel_all(shard);
            return;
        }
        let several = run.shards.all().len() > 1;
        if several && !shard.core().has_runnable() && shard::steal(run.shards.all(), index) > 0 {
            continue;
        }
        if shard.core().park_if_stuck() && run.shards.deadlocked() {
            let live = run.shards.live();
            let why = format!("deadlock: {live} tasks wait on each other");
            return run.end(Some(Error::Host(why)));
        }
        if let Err(e) = shard::run_pass(shard, poller, None) {
            return run.end(Some(Error::Host(e.to_string())));
        }
        if several {
            shard::call_for_help(run.shards.all(), index);
        }
    }
}

/// Ends every live task of `shard` with `cancelled`; their stores (and
/// sockets) drop, one at a time with no lock held.
pub(crate) fn cancel_all(shard: &Shard) {
    let keys: Vec<TaskKey> = shard
        .core()
        .live_tasks()
        .into_iter()
        .map(|(key, _, _)| key)
        .collect();
    for key in keys {
        shard.cancel_now(key);
    }
}

/// Writes one line per live task to stderr.
fn dump_tasks(shards: &Shards) {
    let tasks: Vec<_> = shards
        .all()
        .iter()
        .flat_map(|shard| shard.core().live_tasks())
        .collect();
    say!(info, {}, "{} live tasks", tasks.len());
    let names = shards.names().clone();
    for (key, entry, app) in tasks {
        let app = names.get(&app).map_or("?", String::as_str);
        say!(info, { task = key.id, app = %app, }, "  task {} `{entry}` of {app}", key.id);
    }
}
