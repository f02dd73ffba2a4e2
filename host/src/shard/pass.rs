//! One pass of the scheduler (docs/design.md §4 rows 1–3): collect timers and
//! I/O, then poll each task that was runnable when the pass began, once,
//! in order, giving start-ups at most [`START_SLICE`] of it.
//!
//! Three rules keep apps (tenants) from holding each other up
//! (docs/design.md §3): a pass that has run for a time slice leaves the
//! rest of its tasks to begin the next one, so timers and I/O are
//! collected at least that often; when the tasks of several apps are
//! runnable, a pass takes them in turn, one of each app, so that a task
//! woken in an app with few tasks waits behind one task of each busy app,
//! not behind all of them; and it leaves out the apps served ahead of
//! their share (`share`).

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{Core, Holder, Poller, Shard, TaskFuture, TaskKey, Wait};
use crate::ids::AppId;
use crate::outcome::{Outcome, TaskError};

/// How much of a pass may go to starting new tasks: the start-ups past it
/// wait for the next pass, which they begin, in order, before the tasks
/// woken meanwhile. A burst of spawns (a spawn bomb, 5,000 connections
/// accepted at once) then delays the other tasks by this much per pass,
/// not by every start-up at once. The order of steps changes only where a
/// pass had more start-ups than fit: a task that ran in the pass may step
/// before a new task that was ahead of it. (Deferred start-ups at the back
/// instead would reorder even two slow starters: a Python task's start-up
/// alone takes tens of ms, and the seed's printers would print
/// hello, hello, goodbye.)
const START_SLICE: Duration = Duration::from_millis(2);

/// What [`Core::begin_poll`] found.
enum Begin {
    /// Poll this future with this waker.
    Poll(TaskFuture, Waker),
    /// A start-up past this pass's [`START_SLICE`]: next pass.
    Defer,
    /// The task ended meanwhile.
    Gone,
}

impl Core {
    /// How long to wait for timers, I/O and remote wakes (not at all if
    /// tasks are runnable); `None`: do not poll.
    fn plan_wait(&mut self, timeout: Option<Duration>) -> Option<(Option<Duration>, bool)> {
        // Waiting for events is nobody's CPU time.
        self.last_poll_end = None;
        self.start_time = Duration::ZERO;
        let must_return = !self.run_queue.is_empty();
        let wait = self.reactor.plan_wait(timeout, must_return)?;
        // Kept until a wait that may sleep: passes with work to do between.
        let spin = wait != Some(Duration::ZERO) && std::mem::take(&mut self.talking);
        Some((wait, spin))
    }

    /// Queues the tasks that the wait's events, due timers and remote
    /// wakes woke.
    fn end_wait(&mut self, events: Option<&mio::Events>) {
        self.reactor.end_wait(events);
        self.events_at = Instant::now();
        self.in_pass = true;
        // I/O first, then timers and other threads' wakes (docs/design.md §4 row 3).
        let mut woken = std::mem::take(&mut self.woken);
        self.reactor.take_io_woken(&mut woken);
        for key in woken.drain(..) {
            self.schedule(key);
        }
        self.woken = woken;
        self.queue_woken();
    }

    /// Moves the tasks woken through their wakers into the run queue.
    fn queue_woken(&mut self) {
        for cell in self.reactor.remote().take_cancels() {
            self.cancel_cell(cell);
        }
        let mut woken = std::mem::take(&mut self.woken);
        self.reactor.remote().drain_woken(&mut woken);
        // More wakes than this shard's own timers made: some came from
        // another thread (a shard, most likely), so the next idle wait
        // watches for the answer before it sleeps.
        let timers = std::mem::take(&mut self.reactor.timers_fired);
        self.talking |= woken.len() > timers;
        for key in woken.drain(..) {
            self.schedule(key);
        }
        self.woken = woken;
    }

    /// Takes the future of `key` out to poll it, if it is still alive and
    /// the pass has room for it.
    fn begin_poll(&mut self, key: TaskKey) -> Begin {
        let start_slice_used = self.start_time >= START_SLICE;
        let Some(e) = self.entry(key) else {
            return Begin::Gone;
        };
        if e.future.is_none() {
            return Begin::Gone;
        }
        if !e.started && start_slice_used {
            return Begin::Defer;
        }
        let future = e.future.take().expect("checked above");
        let woken = e.woken;
        e.queued = false;
        // Lent for the poll (a no-op waker minds the slot), saving a clone.
        let waker = std::mem::replace(&mut e.waker, Waker::noop().clone());
        self.first_poll = !std::mem::replace(&mut e.started, true);
        self.unstarted -= usize::from(self.first_poll);
        self.current = Some(key);
        self.pending_wait = None;
        self.poll_started = self.last_poll_end.take().unwrap_or_else(Instant::now);
        self.slice_started = self.poll_started;
        self.latency
            .record(self.poll_started.saturating_duration_since(woken));
        Begin::Poll(future, waker)
    }

    /// The CPU budget `key` went over, if it did.
    fn over_budget(&self, key: TaskKey) -> Option<Duration> {
        let e = self.tasks.get(key.slot).filter(|e| e.id == key.id)?;
        let budget = e.cpu_budget?;
        (e.cpu > budget).then_some(budget)
    }

    /// Puts a pending future back, or records the outcome of a finished one.
    fn end_poll(
        &mut self,
        key: TaskKey,
        future: TaskFuture,
        waker: Waker,
        poll: Poll<Outcome>,
    ) -> Vec<TaskFuture> {
        self.current = None;
        let now = Instant::now();
        self.last_poll_end = Some(now);
        let ran = now - self.poll_started;
        if std::mem::take(&mut self.first_poll) {
            self.start_time += ran;
        }
        let hungry = std::mem::take(&mut self.yielded);
        let e = self.entry(key).expect("a polled task is in the table");
        e.waker = waker;
        e.cpu += ran;
        let (app, share) = (e.app, e.share);
        e.hungry = hungry;
        if e.queued {
            // Queued again during its own poll (a yield, say): runnable
            // from the poll's end, not from when it asked.
            e.woken = now;
        }
        let (queued, cancelled) = (e.queued, std::mem::take(&mut e.cancelled));
        // What a thief could take (see `steal`): the embedder's stay.
        let movable = hungry && queued && e.holder != Holder::Embedder;
        self.hungry_queued += usize::from(movable);
        self.charge(app, share, ran);
        match poll {
            // Cancelled from another shard during the poll: cancelled wins,
            // so that the canceller's join sees what it asked for.
            _ if cancelled => {
                self.finish(key, Err(TaskError::Cancelled));
                self.doomed.push(future);
            }
            Poll::Ready(outcome) => {
                self.finish(key, outcome);
                self.doomed.push(future);
            }
            // Time spent in host calls counts too: a task that spends its
            // budget there (never reaching an epoch check in wasm) ends
            // when the call that used it up returns to the scheduler.
            Poll::Pending if let Some(budget) = self.over_budget(key) => {
                let over = crate::outcome::OverLimit::cpu_budget(budget);
                self.finish(key, Err(TaskError::Limit(over.to_string())));
                self.doomed.push(future);
            }
            Poll::Pending => {
                let wait = self.pending_wait.take().unwrap_or(Wait::Io);
                self.entry(key).expect("polled task is in the table").future = Some(future);
                if !queued {
                    self.set_wait(key, wait);
                }
            }
        }
        std::mem::take(&mut self.doomed)
    }
}

/// Runs one pass of `shard` on this thread.
///
/// First collects what became ready (waiting up to `timeout` when nothing
/// is runnable), then runs each task that is runnable, once.
pub(crate) fn run_pass(
    shard: &Shard,
    poller: &mut Poller,
    timeout: Option<Duration>,
) -> std::io::Result<()> {
    let plan = shard.core().plan_wait(timeout);
    // Waits with the core unlocked: other shards may place tasks here.
    let events = match plan {
        Some((wait, spin)) => Some(poller.poll(wait, spin)?),
        None => None,
    };
    let mut core = shard.core();
    core.end_wait(events);
    core.take_batch();
    // Tasks cancelled from other shards since the last pass.
    let doomed = core.take_doomed();
    if !doomed.is_empty() {
        drop(core);
        drop(doomed);
        core = shard.core();
    }
    let mut deferred = Vec::new();
    let pass_started = Instant::now();
    // The core stays locked from one poll's end to the next one's start
    // (one lock per task switch), and is let go of during each poll: the
    // task's host calls take it.
    while let Some(key) = core.batch.pop_front() {
        if core.pass_used_up(pass_started) {
            deferred.push(key);
            deferred.extend(core.batch.drain(..));
            break;
        }
        let (mut future, waker) = match core.begin_poll(key) {
            Begin::Poll(future, waker) => (future, waker),
            Begin::Defer => {
                deferred.push(key);
                continue;
            }
            Begin::Gone => continue,
        };
        drop(core);
        let poll = future.as_mut().poll(&mut Context::from_waker(&waker));
        core = shard.core();
        let dead = core.end_poll(key, future, waker, poll);
        if !dead.is_empty() {
            // Dropping a task's future drops its store and the handles in
            // it, whose destructors take the core: so with it let go of.
            // That teardown is charged to no task.
            drop(core);
            drop(dead);
            core = shard.core();
            core.last_poll_end = None;
        }
    }
    core.end_pass(deferred);
    // Ending the pass may have cancelled tasks (links fired by other
    // shards): their stores drop now, not at a next pass that may be
    // long in coming.
    let doomed = core.take_doomed();
    drop(core);
    drop(doomed);
    Ok(())
}

impl Core {
    /// When a task queued now became runnable, as near as a clock already
    /// read tells (see `latency`): the start of the poll under way, the
    /// end of the last one, or the end of the wait for events; outside a
    /// pass, the clock.
    pub(super) fn wake_stamp(&self) -> Instant {
        match (self.current, self.last_poll_end) {
            (Some(_), _) => self.poll_started,
            (None, Some(end)) => end,
            (None, None) if self.in_pass => self.events_at,
            (None, None) => Instant::now(),
        }
    }

    /// The tasks to run in this pass: those runnable now, the apps' in turn.
    fn take_batch(&mut self) {
        debug_assert!(self.batch.is_empty());
        std::mem::swap(&mut self.batch, &mut self.run_queue);
        if self.app_tasks.len() > 1 {
            let mut batch = std::mem::take(&mut self.batch);
            self.hold_back_served(&mut batch);
            self.interleave_apps(&mut batch);
            self.batch = batch;
        }
    }

    /// Reorders `batch` to take one task of each app in turn, keeping each
    /// app's own order.
    fn interleave_apps(&self, batch: &mut VecDeque<TaskKey>) {
        let mut by_app: Vec<(AppId, VecDeque<TaskKey>)> = Vec::new();
        for key in batch.drain(..) {
            let app = self.tasks.get(key.slot).map_or(AppId::MAX, |e| e.app);
            match by_app.iter_mut().find(|(a, _)| *a == app) {
                Some((_, keys)) => keys.push_back(key),
                None => by_app.push((app, VecDeque::from([key]))),
            }
        }
        while !by_app.is_empty() {
            by_app.retain_mut(|(_, keys)| match keys.pop_front() {
                Some(key) => {
                    batch.push_back(key);
                    true
                }
                None => false,
            });
        }
    }

    /// Whether the pass begun at `started` has had its time slice, as of
    /// the end of its last poll (no clock read of its own).
    fn pass_used_up(&self, started: Instant) -> bool {
        self.last_poll_end
            .is_some_and(|end| end.saturating_duration_since(started) >= self.time_slice)
    }

    /// Puts back the start-ups that did not fit, and queues what woke.
    fn end_pass(&mut self, deferred: Vec<TaskKey>) {
        // Start-ups that did not fit begin the next pass, in order.
        for key in deferred.into_iter().rev() {
            self.run_queue.push_front(key);
        }
        // Tasks woken during the pass are runnable now, for `has_runnable`.
        self.queue_woken();
        self.in_pass = false;
        self.publish_queued();
        self.reactor.remote().wake_latency.absorb(&mut self.latency);
    }
}
