//! The scheduler: the task table, the FIFO run queue, and (in `pass`) one
//! pass of it.
//!
//! Passes follow multitask 0.2.0 (docs/design.md §4 rows 1–2): a pass runs the
//! tasks that were runnable when it started, each once, in FIFO order; a
//! task woken or spawned during the pass runs in the next one. Between
//! passes the [`Reactor`] collects timers and I/O, so nothing starves.
//!
//! The [`Core`] lives in a thread local while a pass runs, so that host
//! imports, which run on the guest's fiber on this same thread, reach it
//! without locks. Borrows of it are short and never held across a poll.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;

mod pass;
pub(crate) use pass::run_pass;

use crate::apps::{AppStats, Apps};
use crate::engine::AppLimits;
use crate::ids::AppId;
pub(crate) use crate::ids::TaskKey;
pub(crate) use crate::outcome::Outcome;
use crate::outcome::TaskError;
use crate::queue::Queues;
use crate::reactor::{Reactor, TaskWaker};

/// A task's whole life as one future: instantiate, then run the entry.
pub(crate) type TaskFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Who will receive a task's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// A guest task holds a handle and may join.
    Handle,
    /// The embedder added it and collects the outcome from the manager.
    Embedder,
    /// Nobody: a failure is reported on stderr.
    Nobody,
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

/// One task in the table.
struct Entry {
    /// Unique id, never reused.
    id: u64,
    /// The entry function it runs, for messages.
    entry: Arc<str>,
    /// The task's future; `None` while it is being polled and after it ended.
    future: Option<TaskFuture>,
    /// The waker given to its future; it pushes this task to the run queue.
    waker: Waker,
    /// Already in the run queue: a second wake adds nothing.
    queued: bool,
    /// What it waits for while suspended.
    wait: Wait,
    /// Set once it ended, until someone takes it.
    outcome: Option<Outcome>,
    /// Who takes the outcome.
    holder: Holder,
    /// The task blocked joining this one.
    joiner: Option<TaskKey>,
    /// Time it has run so far, over all its polls.
    cpu: Duration,
    /// The most CPU time it may use (its app's budget, kept here so that
    /// the check on every poll looks at nothing else).
    cpu_budget: Option<Duration>,
    /// Its first poll (instantiation, start-up) has run.
    started: bool,
    /// The app it belongs to.
    app: AppId,
}

impl Entry {
    fn ended(&self) -> bool {
        self.future.is_none() && self.outcome.is_some()
    }
}

/// Scheduler state reachable from host imports.
pub(crate) struct Core {
    /// Every task that has not ended, or whose outcome is still held.
    tasks: Slab<Entry>,
    /// Tasks to run in the next pass, in order.
    run_queue: VecDeque<TaskKey>,
    /// The queue of the pass being run (kept to reuse its allocation).
    spare_queue: VecDeque<TaskKey>,
    /// Buffer for keys woken from the reactor's remote half.
    woken: Vec<TaskKey>,
    /// Timers and I/O.
    pub(crate) reactor: Reactor,
    /// The queues of every app.
    pub(crate) queues: Queues,
    /// A buffer that socket reads fill before their bytes go to the guest.
    pub(crate) scratch: Vec<u8>,
    /// Each app's limits, counts and statistics.
    pub(crate) apps: Apps,
    /// The task being polled.
    current: Option<TaskKey>,
    /// What the current task registered to wait for, set by host futures.
    pending_wait: Option<Wait>,
    /// Futures of tasks cancelled during the current poll, to drop after it.
    doomed: Vec<TaskFuture>,
    /// The id of the next task.
    next_id: u64,
    /// Tasks not yet ended.
    live: usize,
    /// Tasks whose first poll has not run yet.
    unstarted: usize,
    /// Live tasks waiting on `Wait::Io`.
    io_waits: usize,
    /// The most tasks that may be alive at once.
    max_live: usize,
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
}

thread_local! {
    /// The core of the scheduler whose pass runs on this thread.
    static CORE: RefCell<Option<Box<Core>>> = const { RefCell::new(None) };
}

/// Runs `f` on the core of the pass running on this thread.
///
/// Panics outside a pass: host imports only run inside one.
pub(crate) fn with_core<R>(f: impl FnOnce(&mut Core) -> R) -> R {
    CORE.with(|c| {
        f(c.borrow_mut()
            .as_mut()
            .expect("mtask host call outside a scheduler pass"))
    })
}

/// Fails (a trap for the guest) when no pass runs on this thread: a
/// component's start-up code, run while its entries are listed, may not
/// use the scheduler.
pub(crate) fn ensure_in_pass() -> wasmtime::Result<()> {
    if CORE.with(|c| c.try_borrow().is_ok_and(|core| core.is_some())) {
        Ok(())
    } else {
        wasmtime::bail!("mtask calls are not available while a component starts")
    }
}

/// Like [`with_core`], but `None` when no pass runs here or the core is busy
/// (a destructor running while the scheduler itself drops a task).
pub(crate) fn try_with_core<R>(f: impl FnOnce(&mut Core) -> R) -> Option<R> {
    CORE.with(|c| c.try_borrow_mut().ok()?.as_mut().map(|core| f(core)))
}

/// Puts `core` in this thread's slot for the duration of `f`.
pub(crate) fn with_installed<R>(core: &mut Option<Box<Core>>, f: impl FnOnce() -> R) -> R {
    struct Restore<'a>(&'a mut Option<Box<Core>>);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            *self.0 = CORE.with(|c| c.borrow_mut().take());
        }
    }
    let previous = CORE.with(|c| c.replace(core.take()));
    assert!(
        previous.is_none(),
        "a scheduler pass is already running on this thread"
    );
    let _restore = Restore(core);
    f()
}

impl Core {
    pub(crate) fn new(config: &crate::Config) -> std::io::Result<Self> {
        let (max_live, max_queue_bytes) = (config.max_tasks as usize, config.max_queue_bytes);
        Ok(Self {
            tasks: Slab::new(),
            run_queue: VecDeque::new(),
            spare_queue: VecDeque::new(),
            woken: Vec::new(),
            reactor: Reactor::new()?,
            queues: Queues::new(max_queue_bytes),
            scratch: Vec::new(),
            apps: Apps::new(AppLimits::from(config)),
            current: None,
            pending_wait: None,
            doomed: Vec::new(),
            next_id: 1,
            live: 0,
            unstarted: 0,
            io_waits: 0,
            max_live,
            poll_started: Instant::now(),
            last_poll_end: None,
            slice_started: Instant::now(),
            time_slice: config.time_slice,
            start_time: Duration::ZERO,
            first_poll: false,
        })
    }

    /// Gives `app` limits of its own (a tenant's).
    pub(crate) fn register_app(&mut self, app: AppId, limits: AppLimits) {
        self.apps.register(app, limits);
        self.queues.set_max_bytes(app, limits.max_queue_bytes);
    }

    /// Refuses a new task of `app` when the host or the app has as many
    /// alive as allowed.
    pub(crate) fn check_capacity(&self, app: AppId) -> Result<(), String> {
        // The app's own limit first: in `serve` the pool is the sum of the
        // apps' limits, so only an embedder's apps can reach the host's.
        self.apps.check_capacity(app)?;
        if self.live >= self.max_live {
            return Err(format!(
                "at most {} tasks may be alive at once",
                self.max_live
            ));
        }
        Ok(())
    }

    /// Adds a task that first runs in the next pass (call
    /// [`Core::check_capacity`] first).
    pub(crate) fn spawn(
        &mut self,
        app: AppId,
        entry: Arc<str>,
        holder: Holder,
        future: TaskFuture,
    ) -> TaskKey {
        self.apps.started(app);
        let id = self.next_id;
        self.next_id += 1;
        let vacant = self.tasks.vacant_entry();
        let key = TaskKey {
            slot: vacant.key(),
            id,
        };
        let waker = Waker::from(Arc::new(TaskWaker {
            task: key,
            remote: self.reactor.remote().clone(),
        }));
        vacant.insert(Entry {
            id,
            entry,
            future: Some(future),
            waker,
            queued: true,
            wait: Wait::Runnable,
            outcome: None,
            holder,
            joiner: None,
            cpu: Duration::ZERO,
            cpu_budget: self.apps.limits(app).cpu_budget,
            started: false,
            app,
        });
        self.live += 1;
        self.unstarted += 1;
        self.run_queue.push_back(key);
        key
    }

    fn entry(&mut self, key: TaskKey) -> Option<&mut Entry> {
        self.tasks.get_mut(key.slot).filter(|e| e.id == key.id)
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
            .map(|e| (e.cpu, e.cpu_budget));
        if let Some((cpu, Some(budget))) = current {
            let used = cpu + ran;
            if used > budget {
                return Err(wasmtime::Error::new(crate::outcome::OverLimit::cpu_budget(
                    budget,
                )));
            }
        }
        if sliced >= self.time_slice {
            // Woken at once, so it goes to the back of the run queue.
            self.pending_wait = Some(Wait::Runnable);
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

    /// How the tasks of `app` have fared so far.
    pub(crate) fn stats(&self, app: AppId) -> AppStats {
        self.apps.stats(app)
    }

    /// Every task that has not ended, in no particular order.
    pub(crate) fn live_tasks(&self) -> Vec<(TaskKey, Arc<str>, AppId)> {
        self.tasks
            .iter()
            .filter(|(_, e)| e.future.is_some())
            .map(|(slot, e)| (TaskKey { slot, id: e.id }, e.entry.clone(), e.app))
            .collect()
    }

    /// Tells the scheduler what the current task's pending host call waits for.
    pub(crate) fn set_pending_wait(&mut self, wait: Wait) {
        self.pending_wait = Some(wait);
    }

    /// Puts the running task at the back of the run queue (`yield-now`).
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
    /// scheduler itself come here directly, so the woken run in wake order.
    pub(crate) fn schedule(&mut self, key: TaskKey) {
        let Some(e) = self.entry(key) else { return };
        if e.queued || e.future.is_none() {
            return;
        }
        e.queued = true;
        self.set_wait(key, Wait::Runnable);
        self.run_queue.push_back(key);
    }

    /// The outcome of `key` if it ended, which the caller now owns; else
    /// records the current task to be woken when it ends.
    pub(crate) fn poll_join(&mut self, key: TaskKey) -> JoinState {
        let joiner = self.current();
        let Some(e) = self.entry(key) else {
            return JoinState::Gone;
        };
        if e.ended() {
            let outcome = e.outcome.take().expect("ended task has an outcome");
            let app = self.tasks.remove(key.slot).app;
            self.apps.outcome_taken(app);
            return JoinState::Ended(outcome);
        }
        e.joiner = Some(joiner);
        JoinState::Running
    }

    /// Forgets the joiner of `key` (its join timed out or was dropped).
    pub(crate) fn withdraw_join(&mut self, key: TaskKey) {
        if let Some(e) = self.entry(key) {
            e.joiner = None;
        }
    }

    /// The holder of `key` lets go of it: the task is detached, and if it
    /// already ended with an error nobody took, that error is reported now.
    pub(crate) fn release(&mut self, key: TaskKey) {
        let Some(e) = self.entry(key) else { return };
        e.holder = Holder::Nobody;
        e.joiner = None;
        if e.ended() {
            let e = self.tasks.remove(key.slot);
            self.apps.outcome_taken(e.app);
            report_unjoined(e.id, &e.entry, e.outcome.as_ref().expect("ended"));
        }
    }

    /// Ends `key` with `cancelled` unless it has ended already.
    pub(crate) fn cancel(&mut self, key: TaskKey) {
        if self.current == Some(key) {
            return; // a task cannot reach a handle of itself
        }
        let Some(e) = self.entry(key) else { return };
        let Some(future) = e.future.take() else {
            return;
        };
        self.doomed.push(future);
        self.finish(key, Err(TaskError::Cancelled));
    }

    /// Records the end of `key` and hands the outcome to whoever holds it.
    fn finish(&mut self, key: TaskKey, outcome: Outcome) {
        self.set_wait(key, Wait::Runnable);
        self.live -= 1;
        let e = self.entry(key).expect("finishing a live task");
        e.queued = false;
        // Cancelled before it ever ran.
        let never_ran = !std::mem::replace(&mut e.started, true);
        let (app, held) = (e.app, e.holder != Holder::Nobody);
        self.unstarted -= usize::from(never_ran);
        self.apps.ended(app, &outcome, held);
        let e = self.entry(key).expect("finishing a live task");
        let joiner = e.joiner.take();
        if e.holder == Holder::Nobody {
            let e = self.tasks.remove(key.slot);
            report_unjoined(e.id, &e.entry, &outcome);
        } else {
            e.outcome = Some(outcome);
        }
        if let Some(joiner) = joiner {
            self.schedule(joiner);
        }
    }

    /// Takes the outcome of an ended task that the embedder holds.
    pub(crate) fn take_outcome(&mut self, key: TaskKey) -> Option<Outcome> {
        let e = self.entry(key)?;
        if !e.ended() {
            return None;
        }
        let outcome = e.outcome.take();
        let app = self.tasks.remove(key.slot).app;
        self.apps.outcome_taken(app);
        outcome
    }

    /// Futures of tasks cancelled outside a pass, to drop with no borrow held.
    pub(crate) fn take_doomed(&mut self) -> Vec<TaskFuture> {
        std::mem::take(&mut self.doomed)
    }

    pub(crate) fn live(&self) -> usize {
        self.live
    }

    pub(crate) fn unstarted(&self) -> usize {
        self.unstarted
    }

    pub(crate) fn has_runnable(&self) -> bool {
        !self.run_queue.is_empty()
    }

    pub(crate) fn has_io_waits(&self) -> bool {
        self.io_waits > 0 || self.reactor.has_io_sources()
    }

    pub(crate) fn has_timeouts(&self) -> bool {
        self.reactor.has_timers()
    }

    /// Live tasks that nothing can wake: none runnable, no timer, no I/O.
    pub(crate) fn is_stuck(&self) -> bool {
        self.live > 0 && !self.has_runnable() && !self.has_timeouts() && !self.has_io_waits()
    }
}

/// What [`Core::poll_join`] found.
pub(crate) enum JoinState {
    /// The task ended; here is its outcome.
    Ended(Outcome),
    /// Still running; the waker is recorded.
    Running,
    /// Not in the table: its outcome was taken already.
    Gone,
}

/// Says on stderr that a task nobody joined failed (docs/design.md §4 row 12).
fn report_unjoined(id: u64, entry: &str, outcome: &Outcome) {
    match outcome {
        Ok(_) | Err(TaskError::Cancelled) => {}
        Err(e) => eprintln!("mtask-host: task {id} (`{entry}`) {e}"),
    }
}
