//! A shard: one scheduler thread's tasks, run queue, reactor and timers
//! (docs/design.md §3). `pass` runs one pass of it; `reactor` is where its
//! suspended tasks wait for time and I/O.
//!
//! Passes follow multitask 0.2.0 (docs/design.md §4 rows 1–2): a pass runs the
//! tasks that were runnable when it started, each once, in FIFO order; a
//! task woken or spawned during the pass runs in the next one. Between
//! passes the [`Reactor`] collects timers and I/O, so nothing starves.
//!
//! The [`Core`] sits behind a mutex that only its shard's thread takes on
//! the hot path: around each poll, and in the host calls of its own tasks
//! (which run on that thread, inside the poll, while the shard holds no
//! lock). Another shard takes it only to place a task here or to reach one
//! of these tasks (join, cancel, a handle let go of). Wakes from elsewhere
//! go through the lock-light [`Remote`].

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;

mod lifecycle;
pub(crate) use lifecycle::Watched;
mod pass;
pub(crate) mod reactor;
mod share;
mod steal;

pub(crate) use pass::run_pass;
pub(crate) use reactor::Remote;
pub(crate) use steal::{call_for_help, steal};

use crate::apps::Apps;
use crate::ids::{AppId, TaskCell, TaskKey};
use crate::latency::Tally;
pub(crate) use crate::outcome::Outcome;
use crate::say::debug_in;
use crate::watch::{Directory, Lineage, Watcher};
use reactor::TaskWaker;
pub(crate) use reactor::{Poller, Reactor};

/// A task's whole life as one future: instantiate, then run the entry.
pub(crate) type TaskFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// One scheduler: its state, and the half other threads use to wake it.
pub(crate) struct Shard {
    /// The scheduler state (see the module docs for who locks it).
    core: Mutex<Core>,
    /// Wakes and requests from other threads; also inside `core`'s reactor.
    pub(crate) remote: Arc<Remote>,
}

impl Shard {
    /// A shard at `index` whose wakes of other shards' tasks go to `peers`.
    /// Its [`Poller`] stays with the thread that runs it.
    pub(crate) fn new(
        index: usize,
        reactor: Reactor,
        peers: Arc<[Arc<Remote>]>,
        apps: Arc<Mutex<Apps>>,
        directory: Arc<Directory>,
        time_slice: Duration,
    ) -> Self {
        let remote = reactor.remote().clone();
        let core = Core::new(index, reactor, peers, apps, directory, time_slice);
        Self {
            core: Mutex::new(core),
            remote,
        }
    }

    /// Its scheduler state. Never held across a poll, nor while taking
    /// another shard's.
    pub(crate) fn core(&self) -> MutexGuard<'_, Core> {
        lock(&self.core)
    }

    /// Ends `key` (a task of this shard) with `cancelled` now; its store,
    /// and the handles in it, drop here with no lock held. For a caller on
    /// no task's fiber: the embedder, or the shard's own loop.
    pub(crate) fn cancel_now(&self, key: TaskKey) {
        let doomed = {
            let mut core = self.core();
            core.cancel(key);
            core.take_doomed()
        };
        drop(doomed);
    }

    /// Ends every task of `app` on this shard with `cancelled` now, as
    /// [`Shard::cancel_now`] does one (an app drained, docs/design.md §13).
    pub(crate) fn cancel_app(&self, app: AppId) {
        let doomed = {
            let mut core = self.core();
            for (key, _, _) in core.live_tasks().into_iter().filter(|t| t.2 == app) {
                core.cancel(key);
            }
            core.take_doomed()
        };
        drop(doomed);
    }
}

/// Who will receive a task's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A guest task holds a handle and may join.
    Handle,
    /// The embedder added it and collects the outcome from the manager.
    Embedder,
    /// A main task that a supervisor starts again when it ends: its
    /// outcome goes to the supervisor (`supervise`), from its future.
    Supervisor,
    /// Nobody: a failure is reported on stderr.
    Nobody,
    /// This host runs it for a parent placed anywhere in the cluster: its
    /// outcome goes there, from its future (docs/design.md §10). `own`: the
    /// parent is on this host, whose handle holds the child's place among
    /// the app's tasks already.
    Cluster { own: bool },
}

impl Holder {
    /// Whether the task's outcome stays in the table for its holder.
    pub(crate) fn keeps_outcome(self) -> bool {
        matches!(self, Holder::Handle | Holder::Embedder)
    }

    /// Whether it is a main task: one the embedder added, itself or
    /// through a supervisor.
    pub(crate) fn is_main(self) -> bool {
        matches!(self, Holder::Embedder | Holder::Supervisor)
    }

    /// Whether the task counts among its app's live tasks (see `Cluster`).
    pub(crate) fn counted(self) -> bool {
        self != Holder::Cluster { own: true }
    }
}

/// What a suspended task is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Nothing: it is in the run queue, or running.
    Runnable,
    /// A timer of the reactor (sleep).
    Timer,
    /// Another task's end.
    Join,
    /// Room in a queue, or an item.
    Queue,
    /// Something outside the scheduler: I/O, or a WASI pollable.
    Io,
}

/// A task to add to a shard's table ([`Core::spawn`]).
pub(crate) struct NewTask {
    /// Where it is (its key names a vacant slot of this shard).
    pub(crate) cell: Arc<TaskCell>,
    /// Its app.
    pub(crate) app: AppId,
    /// The entry it runs.
    pub(crate) entry: Arc<str>,
    /// Who takes its outcome.
    pub(crate) holder: Holder,
    /// Its whole life.
    pub(crate) future: TaskFuture,
    /// Who started it.
    pub(crate) lineage: Lineage,
    /// Its log span.
    pub(crate) span: tracing::Span,
}

/// One task in the table.
struct Entry {
    /// Unique id, never reused.
    id: u64,
    /// Where the task is: changed when it moves to another shard.
    cell: Arc<TaskCell>,
    /// The entry function it runs, for messages.
    entry: Arc<str>,
    /// The task's future; `None` while it is being polled and after it ended.
    future: Option<TaskFuture>,
    /// The waker given to its future; it pushes this task to the run queue.
    waker: Waker,
    /// Already in the run queue: a second wake adds nothing.
    queued: bool,
    /// When it was last queued, for its wake latency (see `latency`).
    woken: Instant,
    /// What it waits for while suspended.
    wait: Wait,
    /// Set once it ended, until someone takes it.
    outcome: Option<Outcome>,
    /// Who takes the outcome.
    holder: Holder,
    /// The task blocked joining this one (on this shard or another).
    joiner: Option<TaskKey>,
    /// Cancelled while it was being polled (from another shard, or by
    /// its own `link`): it ends when the poll returns, and starts nothing
    /// more meanwhile.
    cancelled: bool,
    /// Time it has run so far, over all its polls.
    cpu: Duration,
    /// The most CPU time it may use (its app's budget, kept here so that
    /// the check on every poll looks at nothing else).
    cpu_budget: Option<Duration>,
    /// How long it runs before it is preempted: its app's slice, or the
    /// host's.
    time_slice: Duration,
    /// Its first poll (instantiation, start-up) has run.
    started: bool,
    /// Its last poll ended in a yield or a preemption, not a wait: it wants
    /// CPU, and may move to an idle shard. (A task woken by a queue or a
    /// socket stays with the tasks it talks to.)
    hungry: bool,
    /// The app it belongs to.
    app: AppId,
    /// Its app's weight in the shard's fair share (see `share`).
    share: u32,
    /// Who started it, and who started them (for `cancel-tree`).
    lineage: Lineage,
    /// Who hears of its end: monitors and linked tasks.
    watchers: Vec<Watcher>,
    /// Its log span (disabled when nobody logs): what is said of it after
    /// it ended is said in it.
    span: tracing::Span,
}

impl Entry {
    fn ended(&self) -> bool {
        self.future.is_none() && self.outcome.is_some()
    }
}

/// A shard's scheduler state.
pub(crate) struct Core {
    /// Its shard's index, the `shard` of every key it hands out.
    index: usize,
    /// Every task that has not ended, or whose outcome is still held.
    tasks: Slab<Entry>,
    /// Tasks to run in the next pass, in order.
    run_queue: VecDeque<TaskKey>,
    /// The tasks of the pass being run that have not run yet (here, not
    /// in the pass's own variable, so that an idle shard can take some).
    batch: VecDeque<TaskKey>,
    /// Buffer for keys woken from the reactor's remote half.
    woken: Vec<TaskKey>,
    /// Timers and I/O.
    pub(crate) reactor: Reactor,
    /// Every shard's remote half, by index: wakes of their tasks go there.
    peers: Arc<[Arc<Remote>]>,
    /// Each app's limits, counts and statistics, shared by every shard.
    apps: Arc<Mutex<Apps>>,
    /// Every shard's tasks by id: an entry leaving the table leaves it.
    directory: Arc<Directory>,
    /// A buffer that socket reads fill before their bytes go to the guest.
    pub(crate) scratch: Vec<u8>,
    /// The task being polled.
    current: Option<TaskKey>,
    /// What the current task registered to wait for, set by host futures.
    pending_wait: Option<Wait>,
    /// Futures of tasks cancelled during the current poll, to drop after it.
    doomed: Vec<TaskFuture>,
    /// Tasks of this shard not yet ended.
    live: usize,
    /// Of those, how many each app has: with more than one app, a pass
    /// takes the apps' tasks in turn.
    app_tasks: HashMap<AppId, usize>,
    /// Of those apps, the CPU time each used here, divided by its share:
    /// who is ahead in the fair share (see `share`).
    served: HashMap<AppId, u64>,
    /// Tasks whose first poll has not run yet.
    unstarted: usize,
    /// Live tasks waiting on `Wait::Io`.
    io_waits: usize,
    /// When the current poll began, for the CPU budget.
    poll_started: Instant,
    /// When the last poll of this pass ended, which stands for the start of
    /// the next one: one clock read per poll instead of two.
    last_poll_end: Option<Instant>,
    /// When the current task's slice began: the poll's start, or the end
    /// of its start-up if that came later in the poll.
    slice_started: Instant,
    /// How long a task may run before it is preempted.
    time_slice: Duration,
    /// Time this pass spent on tasks' first polls (their start-ups).
    start_time: Duration,
    /// The task being polled is being polled for the first time.
    first_poll: bool,
    /// The task being polled yielded or was preempted (see `Entry::hungry`).
    yielded: bool,
    /// Hungry tasks queued for the next pass during this one: what a
    /// thief may take, published at the pass's end.
    hungry_queued: usize,
    /// Tasks were woken from another thread since the last wait: the next
    /// idle wait spins a little before it sleeps (see `reactor::SPIN`).
    talking: bool,
    /// When the last wait for events ended: the stamp of what it woke.
    events_at: Instant,
    /// Between the end of a wait for events and the end of its pass.
    in_pass: bool,
    /// Wake latencies of this shard's polls, not yet published.
    latency: Tally,
    /// Linked tasks to cancel, found by `tell`: taken one at a time by
    /// the outermost end, so that a chain of links cannot recurse.
    linked_doomed: Vec<Arc<TaskCell>>,
    /// An end is cancelling `linked_doomed` now.
    telling: bool,
}

impl Core {
    fn new(
        index: usize,
        reactor: Reactor,
        peers: Arc<[Arc<Remote>]>,
        apps: Arc<Mutex<Apps>>,
        directory: Arc<Directory>,
        time_slice: Duration,
    ) -> Self {
        Self {
            index,
            directory,
            tasks: Slab::new(),
            run_queue: VecDeque::new(),
            batch: VecDeque::new(),
            woken: Vec::new(),
            reactor,
            peers,
            apps,
            scratch: Vec::new(),
            current: None,
            pending_wait: None,
            doomed: Vec::new(),
            live: 0,
            app_tasks: HashMap::new(),
            served: HashMap::new(),
            unstarted: 0,
            io_waits: 0,
            poll_started: Instant::now(),
            last_poll_end: None,
            slice_started: Instant::now(),
            time_slice,
            start_time: Duration::ZERO,
            first_poll: false,
            yielded: false,
            hungry_queued: 0,
            talking: false,
            events_at: Instant::now(),
            in_pass: false,
            latency: Tally::default(),
            linked_doomed: Vec::new(),
            telling: false,
        }
    }

    /// The key the next [`Core::spawn`] will hand out, for a task whose
    /// state must know its own key before it exists.
    pub(crate) fn next_key(&self, id: u64) -> TaskKey {
        TaskKey {
            shard: self.index,
            slot: self.tasks.vacant_key(),
            id,
        }
    }

    /// Adds `task` under its cell's key (from [`Core::next_key`], with the
    /// app's place reserved in [`Apps::reserve`]); it first runs in the
    /// next pass.
    pub(crate) fn spawn(&mut self, task: NewTask) {
        let NewTask {
            cell,
            app,
            entry,
            holder,
            future,
            lineage,
            span,
        } = task;
        let key = cell.key();
        debug_in!(span, { task = key.id, }, "task {} (`{entry}`) started", key.id);
        // The clock, not a stamp: a spawn may come from another shard's
        // task, whose poll this shard's clocks know nothing of.
        let woken = Instant::now();
        let vacant = self.tasks.vacant_entry();
        assert_eq!(vacant.key(), key.slot, "spawned under a stale key");
        let waker = Waker::from(Arc::new(TaskWaker {
            task: cell.clone(),
            peers: self.peers.clone(),
        }));
        let limits = lock(&self.apps).limits(app);
        let (cpu_budget, time_slice, share) = (limits.cpu_budget, limits.time_slice, limits.share);
        vacant.insert(Entry {
            id: key.id,
            cell,
            entry,
            future: Some(future),
            waker,
            queued: true,
            woken,
            wait: Wait::Runnable,
            outcome: None,
            holder,
            joiner: None,
            cancelled: false,
            cpu: Duration::ZERO,
            cpu_budget,
            time_slice: time_slice.unwrap_or(self.time_slice),
            started: false,
            hungry: false,
            app,
            share,
            lineage,
            watchers: Vec::new(),
            span,
        });
        self.live += 1;
        *self.app_tasks.entry(app).or_default() += 1;
        self.unstarted += 1;
        self.publish_load();
        self.run_queue.push_back(key);
    }

    /// No task runnable or being polled, and no timer or I/O that could
    /// wake one (or no task at all): only another shard can give this one
    /// work.
    pub(crate) fn stuck_now(&self) -> bool {
        self.current.is_none()
            && !self.has_runnable()
            && !self.has_timeouts()
            && !self.has_io_waits()
    }

    /// Lets other shards see how many tasks this one has, to place theirs.
    fn publish_load(&self) {
        let load = &self.reactor.remote().load;
        load.store(self.live, std::sync::atomic::Ordering::Relaxed);
    }

    /// Publishes [`Core::stuck_now`] for the deadlock check.
    pub(crate) fn park_if_stuck(&self) -> bool {
        let stuck = self.stuck_now();
        let remote = self.reactor.remote();
        remote
            .parked_stuck
            .store(stuck, std::sync::atomic::Ordering::SeqCst);
        stuck
    }

    fn entry(&mut self, key: TaskKey) -> Option<&mut Entry> {
        debug_assert_eq!(key.shard, self.index, "a key of another shard");
        self.tasks.get_mut(key.slot).filter(|e| e.id == key.id)
    }

    /// Its shard's index.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The task being polled.
    pub(crate) fn current(&self) -> TaskKey {
        self.current.expect("no task is running")
    }

    /// Called by the running task's store at each epoch tick: preempts it
    /// once its slice is used (docs/design.md §4 row 15), ends it past its budget.
    pub(crate) fn on_epoch(&mut self) -> wasmtime::Result<wasmtime::UpdateDeadline> {
        // A task resumed in a later tick than its deadline was set in comes
        // here at its first check, so this runs often at 10,000 tasks: one
        // clock read.
        let now = Instant::now();
        let ran = now - self.poll_started;
        let sliced = now - self.slice_started;
        let current = self
            .current
            .and_then(|k| self.tasks.get(k.slot))
            .map(|e| (e.cpu, e.cpu_budget, e.time_slice));
        if let Some((cpu, Some(budget), _)) = current {
            let used = cpu + ran;
            if used > budget {
                return Err(wasmtime::Error::new(crate::outcome::OverLimit::cpu_budget(
                    budget,
                )));
            }
        }
        let slice = current.map_or(self.time_slice, |(_, _, slice)| slice);
        if sliced >= slice {
            // Woken at once, so it goes to the back of the run queue.
            self.pending_wait = Some(Wait::Runnable);
            self.yielded = true;
            Ok(wasmtime::UpdateDeadline::Yield(1))
        } else {
            Ok(wasmtime::UpdateDeadline::Continue(1))
        }
    }

    /// Starts the running task's slice afresh: its start-up, which is not
    /// preempted, does not use up the slice of its first steps.
    pub(crate) fn restart_slice(&mut self) {
        self.slice_started = Instant::now();
    }

    /// Every task that has not ended, in no particular order.
    pub(crate) fn live_tasks(&self) -> Vec<(TaskKey, Arc<str>, AppId)> {
        self.tasks
            .iter()
            .filter(|(_, e)| e.outcome.is_none())
            .map(|(slot, e)| {
                let key = TaskKey {
                    shard: self.index,
                    slot,
                    id: e.id,
                };
                (key, e.entry.clone(), e.app)
            })
            .collect()
    }

    /// Tells the scheduler what the current task's pending host call waits for.
    pub(crate) fn set_pending_wait(&mut self, wait: Wait) {
        self.pending_wait = Some(wait);
    }

    /// Puts the running task at the back of the run queue, for
    /// `yield-now` (which marks it hungry for CPU, see `Entry::hungry`).
    pub(crate) fn yield_current(&mut self) {
        self.yielded = true;
        self.requeue_current();
    }

    /// Puts the running task at the back of the run queue.
    pub(crate) fn requeue_current(&mut self) {
        let key = self.current();
        self.pending_wait = Some(Wait::Runnable);
        if let Some(e) = self.entry(key)
            && !e.queued
        {
            e.queued = true;
            self.run_queue.push_back(key);
        }
    }

    fn set_wait(&mut self, key: TaskKey, wait: Wait) {
        let Some(e) = self.entry(key) else { return };
        let old = std::mem::replace(&mut e.wait, wait);
        if old == Wait::Io {
            self.io_waits -= 1;
        }
        if wait == Wait::Io {
            self.io_waits += 1;
        }
    }

    /// Queues a woken task for the next pass, once. Wakes made by the
    /// scheduler itself come here directly, so the woken run in wake order;
    /// a task of another shard is woken through that shard's remote half.
    pub(crate) fn schedule(&mut self, key: TaskKey) {
        if key.shard != self.index {
            self.peers[key.shard].wake(key);
            return;
        }
        let stamp = self.wake_stamp();
        let Some(e) = self.entry(key) else { return };
        if e.queued || e.future.is_none() {
            return;
        }
        e.queued = true;
        e.woken = stamp;
        self.set_wait(key, Wait::Runnable);
        self.run_queue.push_back(key);
    }
}

/// Takes `mutex` whatever a panic left in it: a panic while the lock was
/// held (a bug) leaves the state as the panic found it, and the host
/// carries on rather than every task trap.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What [`Core::poll_join`] found.
pub(crate) enum JoinState {
    /// The task ended; here is its outcome.
    Ended(Outcome),
    /// Still running; the joiner is recorded.
    Running,
    /// Not in the table: its outcome was taken already.
    Gone,
}
