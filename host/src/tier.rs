//! The background half of tiered compilation (docs/design.md §11): where
//! Cranelift compiles a component that already runs on Winch's code.
//!
//! Two ways, after [`Tiering`](crate::engine::Tiering):
//! - [`Background`]: one low-priority thread of this process takes compile
//!   jobs in order, each compiled on a low-priority pool of threads, so that
//!   the tasks running meanwhile keep the CPU they need, and one component
//!   at a time is compiled (a host that starts many new ones does not
//!   compile them all at once);
//! - [`spawn_detached`]: a `compile --background` run of this executable,
//!   in a process group of its own, that outlives this process: a short
//!   run exits without waiting for the optimized code.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use crate::engine::{Config, default_threads};
use crate::say::say;

/// A compile job: compiles, stores, and hands the code on.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// A low-priority thread that runs compile jobs one after the other.
#[derive(Default)]
pub(crate) struct Background {
    /// Where jobs go; made with the thread, on the first job.
    jobs: Mutex<Option<Sender<Job>>>,
    /// Jobs submitted and not yet done.
    pending: Arc<Pending>,
}

/// A count of jobs not done, and the condition that it fell to zero.
#[derive(Default)]
struct Pending {
    count: Mutex<usize>,
    done: Condvar,
}

impl Pending {
    fn count(&self) -> MutexGuard<'_, usize> {
        self.count.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Background {
    /// Queues `job` behind the ones submitted before.
    pub(crate) fn submit(&self, job: Job) {
        *self.pending.count() += 1;
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let sender = jobs.get_or_insert_with(|| {
            let (sender, receiver) = channel::<Job>();
            let pending = self.pending.clone();
            let started = std::thread::Builder::new()
                .name("mtask-compile".into())
                .spawn(move || {
                    lower_priority();
                    for job in receiver {
                        // A panic in a compile loses that job only.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            pool().install(job)
                        }));
                        let mut count = pending.count();
                        *count -= 1;
                        if *count == 0 {
                            pending.done.notify_all();
                        }
                    }
                });
            if started.is_err() {
                say!(warn, {}, "cannot start the background compile thread");
            }
            sender
        });
        if let Err(lost) = sender.send(job) {
            // No thread to run it (it could not start): run it here.
            drop(jobs);
            (lost.0)();
            *self.pending.count() -= 1;
        }
    }

    /// How many jobs are queued or under way.
    pub(crate) fn pending(&self) -> usize {
        *self.pending.count()
    }

    /// Waits until every job submitted has ended.
    pub(crate) fn wait(&self) {
        let mut count = self.pending.count();
        while *count > 0 {
            count = self
                .pending
                .done
                .wait(count)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The threads background compiles run on (wasmtime compiles a
/// component's functions in parallel on the rayon pool it is called in):
/// one per core, at a low priority.
fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(default_threads())
            .thread_name(|i| format!("mtask-compile-{i}"))
            .start_handler(|_| lower_priority())
            .build()
            .expect("cannot start the background compile threads")
    })
}

/// How much lower than the tasks' a background compile's priority is (a
/// nice value, 0–19).
const NICENESS: i32 = 10;

/// Lowers the calling thread's priority; threads it starts inherit it
/// (Linux keeps a nice value per thread).
pub(crate) fn lower_priority() {
    // The thread's own priority (who 0): nothing to undo if it fails.
    let _ = rustix::process::setpriority_process(None, NICENESS);
}

/// Starts `exe compile --background` on the component at `app` with the
/// settings of `config` that shape compiled code (so that it fills the
/// very entry a run with `config` looks up), detached: no terminal, no
/// inherited pipes (a caller reading this process's output to its end
/// would wait for the compile), a process group of its own (a Ctrl-C
/// meant for this process does not stop it).
pub(crate) fn spawn_detached(
    exe: &Path,
    app: &Path,
    cache_dir: &Path,
    config: &Config,
) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(exe);
    command
        .arg("compile")
        .arg("--background")
        .arg("--max-memory")
        .arg(config.max_memory.to_string())
        .arg("--cache-dir")
        .arg(cache_dir);
    if !config.preempt {
        command.arg("--no-preempt");
    }
    command
        .arg("--")
        .arg(app)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
}
