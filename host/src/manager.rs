//! [`TaskManager`]: the embedding API, after multitask's `TaskManager`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::Engine;

use crate::apps::AppStats;
use crate::arena::PoolUsage;
use crate::cluster::Cluster;
use crate::cluster::worker::{self, Taking};
use crate::control::Control;
use crate::engine::{Config, tokio_runtime};
use crate::error::Error;
use crate::ids::TaskKey;
use crate::latency::Latencies;
use crate::program::Program;
use crate::program::engines::Engines;
use crate::program::task::{Payload, Start, spawn};
use crate::shard::{self, Holder, Outcome, Poller};
use crate::shards::Shards;
use crate::supervise::{RestartPolicy, Supervised};

/// How long a host in a cluster waits, as a run ends, for the acks of what
/// its tasks held to reach the server.
const SETTLE: Duration = Duration::from_secs(2);

/// A task added by the embedder, to collect its outcome with
/// [`TaskManager::take_outcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskId(TaskKey);

impl TaskId {
    /// The id the task sees as `current-id`.
    pub fn get(self) -> u64 {
        self.0.id
    }
}

/// Runs tasks: load components, add tasks, then [`run`](Self::run) them, or
/// drive them pass by pass with [`run_next`](Self::run_next).
///
/// ```no_run
/// use mtask_host::{Config, TaskManager};
///
/// let mut manager = TaskManager::new(Config::default())?;
/// let program = manager.load("printer.wasm")?;
/// let main = manager.add(&program, "main", Vec::new())?;
/// manager.run()?;
/// match manager.take_outcome(main) {
///     Some(Ok(_bytes)) => println!("main succeeded"),
///     Some(Err(error)) => println!("main {error}"),
///     None => unreachable!("run() returns once every task has ended"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TaskManager {
    /// Compile components (and tick their epochs), with the host's
    /// imports linked for each, and own the instance pool; shared with
    /// every [`Control`].
    engines: Arc<Engines>,
    /// The settings it was made with.
    config: Config,
    /// The scheduler shards and the state they share.
    shards: Arc<Shards>,
    /// Where each shard waits for I/O, by index: lent to the thread that
    /// runs it.
    pollers: Vec<Poller>,
}

/// Stops a [`TaskManager::run`] from any thread; see [`TaskManager::stop_handle`].
#[derive(Clone)]
pub struct StopHandle(Arc<Shards>);

impl StopHandle {
    /// Cancels every task and makes `run` return.
    pub fn stop(&self) {
        self.0.request_stop();
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopping(&self) -> bool {
        self.0.stop_requested()
    }

    /// Lists the live tasks on stderr at the next pass.
    pub fn list_tasks(&self) {
        self.0.all()[0].remote.request_dump();
    }
}

/// Reads how the apps fare from any thread, while [`TaskManager::run`]
/// runs; see [`TaskManager::stats_handle`].
#[derive(Clone)]
pub struct StatsHandle {
    /// The shards' counters.
    shards: Arc<Shards>,
    /// The pool their tasks take slots of.
    engines: Arc<Engines>,
}

impl StatsHandle {
    /// How the tasks of `program` have fared so far, and what they hold now.
    pub fn stats(&self, program: &Program) -> AppStats {
        self.shards.stats(program.app())
    }

    /// The live tasks of every app.
    pub fn live_tasks(&self) -> usize {
        self.shards.live()
    }

    /// Scheduler passes begun so far, over every shard.
    pub fn passes(&self) -> u64 {
        self.shards.passes()
    }

    /// Tasks queued to run in their shard's next pass, over every shard.
    pub fn queued_tasks(&self) -> usize {
        self.shards.queued()
    }

    /// How long tasks waited between being woken and being polled, over
    /// every shard, as of each one's last pass.
    pub fn wake_latencies(&self) -> Latencies {
        self.shards.wake_latencies()
    }

    /// How much of the task pool is taken now.
    pub fn pool(&self) -> PoolUsage {
        self.engines.pool()
    }
}

impl TaskManager {
    /// A manager with an engine sized by `config`.
    pub fn new(config: Config) -> Result<Self, Error> {
        config
            .check(|key| format!("Config::{key}"))
            .map_err(Error::Config)?;
        let engines = Arc::new(Engines::new(&config)?);
        let cluster = config.cluster.as_ref().map(Cluster::connect).transpose()?;
        let (shards, pollers) = Shards::new(&config, config.threads, cluster)
            .map_err(|e| Error::Host(e.to_string()))?;
        Ok(Self {
            engines,
            config,
            shards,
            pollers,
        })
    }

    /// Loads the component at `path` (from the compiled-code cache when it
    /// was compiled before).
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Program, Error> {
        Program::from_file(&self.engines, path.as_ref())
    }

    /// Loads a component from bytes; `name` stands for it in messages.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<Program, Error> {
        Program::from_bytes(&self.engines, name, bytes)
    }

    /// How many components compile in the background ([`Tiering`]):
    /// queued, under way, or (when detached) waited for.
    ///
    /// [`Tiering`]: crate::engine::Tiering
    pub fn background_compiles(&self) -> usize {
        self.engines.background.pending()
    }

    /// Waits until the background compiles ([`Tiering`]) have ended: their
    /// code is in the cache, and the tasks added from now on run it.
    /// Dropping the manager does not wait: a compile cut short leaves
    /// nothing in the cache, and the next load compiles again.
    ///
    /// [`Tiering`]: crate::engine::Tiering
    pub fn wait_for_background_compiles(&self) {
        self.engines.background.wait();
    }

    /// Adds a task that runs `entry` of `program` with `payload`; it first
    /// runs in the next pass. Its outcome is kept for [`take_outcome`](Self::take_outcome).
    pub fn add(
        &mut self,
        program: &Program,
        entry: &str,
        payload: Vec<u8>,
    ) -> Result<TaskId, Error> {
        self.add_task(program, entry, Payload::Native(payload))
    }

    /// Like [`add`](Self::add), with the argument as JSON text (`null` for
    /// none), which the component's SDK turns into the entry's argument;
    /// the outcome's value is the result as JSON text. Only for a
    /// component built by an SDK of WIT 0.1.2 or later
    /// ([`Program::takes_json`]); else [`Error::NoJson`].
    pub fn add_json(&mut self, program: &Program, entry: &str, arg: &str) -> Result<TaskId, Error> {
        if !program.takes_json() {
            return Err(Error::NoJson {
                name: program.name().to_string(),
                command: program.is_command(),
            });
        }
        self.add_task(program, entry, Payload::Json(arg.to_string()))
    }

    /// Adds `entry` of `program` as a main task that a supervisor starts
    /// again, with the same payload, when it ends as `policy` says (after
    /// a back-off; not once too many restarts came within the policy's
    /// window, nor when the run is stopped). `label` names it in the
    /// messages on stderr that say so. While the supervisor may start it
    /// again, [`run`](Self::run) goes on even with no task alive.
    pub fn add_supervised(
        &mut self,
        program: &Program,
        entry: &str,
        payload: Vec<u8>,
        label: &str,
        policy: RestartPolicy,
    ) -> Result<Supervised, Error> {
        self.control()
            .add_supervised(program, entry, payload, label, policy)
    }

    /// A handle that loads components and adds, replaces and retires apps
    /// from any thread, while [`run`](Self::run) runs (what `serve`'s
    /// reload does; docs/design.md §13).
    pub fn control(&self) -> Control {
        Control {
            engines: self.engines.clone(),
            shards: self.shards.clone(),
        }
    }

    fn add_task(
        &mut self,
        program: &Program,
        entry: &str,
        payload: Payload,
    ) -> Result<TaskId, Error> {
        self.register(program, entry)?;
        let shards = &self.shards;
        shards.apps().reserve(program.app()).map_err(Error::Limit)?;
        let shard = shards.place_new();
        let start = Start::new(entry.into(), payload, Holder::Embedder);
        shards.apps().main_added();
        let cell = spawn(shards, shard, program, start);
        Ok(TaskId(cell.key()))
    }

    /// Checks that `program` has `entry`, and registers its app (its name
    /// for listings, its limits).
    fn register(&mut self, program: &Program, entry: &str) -> Result<(), Error> {
        self.control().register(program, entry)
    }

    /// Runs, besides its own tasks, the tasks that hosts of the cluster
    /// (docs/design.md §10) spawn anywhere from `program`'s component, for
    /// its tenant: at most `ClusterConfig::jobs` at once. With `for_good`,
    /// until the run stops (see [`keep_running`](Self::keep_running));
    /// else only while a task this manager added is alive. Nothing outside
    /// cluster mode.
    pub fn take_remote_spawns(&mut self, program: &Program, for_good: bool) {
        let Some(cluster) = &self.config.cluster else {
            return;
        };
        self.control().register_app(program);
        let slots = cluster.jobs.unwrap_or(self.config.threads);
        let taking = if for_good {
            Taking::UntilStopped
        } else {
            Taking::WhileMainsRun
        };
        worker::start(self.shards.clone(), program.clone(), slots, taking);
    }

    /// Makes [`run`](Self::run) go on when no task is alive, until
    /// stopped ([`StopHandle::stop`]): for a host that waits for work from
    /// its cluster.
    pub fn keep_running(&mut self) {
        self.shards.keep_open();
    }

    /// Runs passes until every task has ended.
    ///
    /// Fails if the tasks that are left can never run again (each waits on
    /// another, and no timer or I/O can wake any of them).
    pub fn run(&mut self) -> Result<(), Error> {
        let _tokio = tokio_runtime().enter();
        let ran = crate::runner::run(&self.shards, &mut self.pollers);
        if let Some(cluster) = self.shards.cluster() {
            // The acks (and hand-backs) of what the ended tasks held.
            cluster.settle(SETTLE);
        }
        ran
    }

    /// A handle that stops [`run`](Self::run) from another thread (a signal
    /// handler's): every task is cancelled, its sockets closed, and `run`
    /// returns. It can also ask for the live tasks to be listed on stderr.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.shards.clone())
    }

    /// A handle that reads the apps' [`stats`](Self::stats) from another
    /// thread (a metrics endpoint's) while `run` runs.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            shards: self.shards.clone(),
            engines: self.engines.clone(),
        }
    }

    /// How the tasks of `program` have fared so far, and what they hold now.
    pub fn stats(&self, program: &Program) -> AppStats {
        self.shards.stats(program.app())
    }

    /// Runs one pass: collects timers and I/O (waiting up to `timeout` if
    /// no task is runnable; `None` waits as long as needed), then runs each
    /// runnable task once.
    pub fn run_next(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        let _tokio = tokio_runtime().enter();
        for (shard, poller) in self.shards.all().iter().zip(&mut self.pollers) {
            shard::run_pass(shard, poller, timeout).map_err(|e| Error::Host(e.to_string()))?;
        }
        Ok(())
    }

    /// Whether some task will run in the next pass.
    pub fn has_runnable(&self) -> bool {
        self.any(|core| core.has_runnable())
    }

    /// Whether some task waits for I/O or another host event.
    pub fn has_io_waits(&self) -> bool {
        self.any(|core| core.has_io_waits())
    }

    /// Whether some task waits for a timer (a sleep or an operation's deadline).
    pub fn has_timeouts(&self) -> bool {
        self.any(|core| core.has_timeouts())
    }

    /// Tasks that have not ended.
    pub fn live_tasks(&self) -> usize {
        self.shards.live()
    }

    /// The live tasks of each scheduler shard, by shard: how the placement
    /// rule (docs/design.md §3) spread them.
    pub fn shard_loads(&self) -> Vec<usize> {
        self.shards.loads()
    }

    /// How many times a task moved from a busy shard to an idle one
    /// (docs/design.md §3), so far.
    pub fn moved_tasks(&self) -> u64 {
        self.shards.moved()
    }

    /// Tasks that have not run yet: a pass gives at most a few milliseconds
    /// to start-ups (instantiating a task and running it to its first
    /// wait), so after a burst of spawns some wait for later passes.
    pub fn unstarted_tasks(&self) -> usize {
        let shards = self.shards.all().iter();
        shards.map(|shard| shard.core().unstarted()).sum()
    }

    /// The outcome of a task added with [`add`](Self::add), once it has
    /// ended; it can be taken once.
    pub fn take_outcome(&mut self, task: TaskId) -> Option<Outcome> {
        self.shards.of(task.0).core().take_outcome(task.0)
    }

    /// Ends a task added with [`add`](Self::add) with `cancelled`.
    pub fn cancel(&mut self, task: TaskId) {
        let _tokio = tokio_runtime().enter();
        // The task's store drops here, and with it the handles it held.
        self.shards.of(task.0).cancel_now(task.0);
    }

    /// The engine (Cranelift's, whose code the cache keeps), to share
    /// compiled modules or inspect settings.
    pub fn engine(&self) -> &Engine {
        &self.engines.optimized.engine
    }

    /// Whether `test` holds for the state of some shard.
    fn any(&self, test: impl Fn(&shard::Core) -> bool) -> bool {
        self.shards.all().iter().any(|shard| test(&shard.core()))
    }
}

impl Drop for TaskManager {
    /// The tasks' stores hold the shards (their host calls reach them
    /// through it), so the futures are taken out and dropped here, each
    /// with no lock held, for the shards to go too.
    fn drop(&mut self) {
        let _tokio = tokio_runtime().enter();
        // No more remote spawns taken for a manager that is going.
        self.shards.request_stop();
        for shard in self.shards.all() {
            let futures = shard.core().take_all_futures();
            drop(futures);
        }
        if let Some(cluster) = self.shards.cluster() {
            cluster.settle(SETTLE);
        }
    }
}
