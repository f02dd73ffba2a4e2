//! The reactor: where suspended tasks wait for time and I/O.
//!
//! It owns the `mio::Poll` (sockets register with it), the timers, and the
//! [`Remote`] half that wakers on any thread use to make a task runnable.
//! The scheduler asks it once between passes to collect what became ready.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::ids::{TaskCell, TaskKey};
use crate::latency::Histogram;

/// The token of the mio waker; sockets use the tokens below it.
const WAKE_TOKEN: mio::Token = mio::Token(usize::MAX);

/// The most readiness events one wait takes; the kernel keeps the rest for
/// the next. A storm of readiness (5,000 connections sending at once) so
/// wakes at most this many tasks a pass, and a task woken by its timer
/// waits behind at most this many, not behind the whole storm.
const EVENTS_PER_PASS: usize = 64;

/// Identifies one pending timer so that it can be cancelled in O(log n).
pub(crate) type TimerKey = (Instant, u64);

/// A registered I/O source (a socket); also its mio token.
pub(crate) type SourceKey = usize;

/// The two directions a task can wait on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// The readiness of one socket, and who waits for it. Readiness is
/// edge-triggered: a flag is set by an event and cleared by an attempt that
/// would block, so each readiness resumes its waiter once (docs/design.md §4 row 11).
struct Source {
    readable: bool,
    writable: bool,
    /// The peer closed its side, or the socket failed: reads never block
    /// again, whatever a short read suggested.
    read_closed: bool,
    /// Writes never block again (they fail).
    write_closed: bool,
    /// The task waiting to read (one: a socket has one holder).
    reader: Option<TaskKey>,
    /// The task waiting to write.
    writer: Option<TaskKey>,
}

/// What a waker on any thread may touch.
pub(crate) struct Remote {
    /// Tasks woken since the scheduler last looked, in wake order.
    woken: Mutex<Vec<TaskKey>>,
    /// Whether `woken` may be non-empty: spares the lock when nothing woke.
    any_woken: AtomicBool,
    /// Interrupts a blocking `poll` when a task is woken from outside.
    waker: mio::Waker,
    /// True while the scheduler is (about to be) blocked in `poll`.
    sleeping: AtomicBool,
    /// Someone asked the host to stop (a signal, say).
    stop: AtomicBool,
    /// Someone asked for a list of the live tasks.
    dump: AtomicBool,
    /// The shard's live tasks, for placing new ones (written under its
    /// core's lock, read by anyone).
    pub(crate) load: AtomicUsize,
    /// The shard has tasks, and none can run or be woken by a timer or
    /// I/O: it waits for another shard (or for nothing: a deadlock).
    pub(crate) parked_stuck: AtomicBool,
    /// Passes begun, so that a look at every shard can tell whether any
    /// ran meanwhile.
    pub(crate) passes: AtomicU64,
    /// Hungry tasks (see `steal`) queued for the shard's next pass, as of
    /// its last pass: where a shard with nothing to do looks for work.
    pub(crate) queued: AtomicUsize,
    /// Tasks this shard took from others.
    pub(crate) taken: AtomicU64,
    /// Its polls' wake latencies, as of its last pass.
    pub(crate) wake_latency: Histogram,
    /// Tasks to cancel that another shard's task was linked to (see
    /// `Core::cancel_cell`); `any_cancel` says whether there are any.
    cancels: Mutex<Vec<Arc<TaskCell>>>,
    any_cancel: AtomicBool,
}

impl Remote {
    /// Marks `task` runnable and interrupts the poll if the scheduler sleeps.
    pub(crate) fn wake(&self, task: TaskKey) {
        self.woken.lock().unwrap().push(task);
        self.any_woken.store(true, Ordering::SeqCst);
        // A failed wake (in `nudge`) means the poller is gone: nothing left
        // to wake.
        self.nudge();
    }

    /// Makes the shard's current or next wait return at once, to look at
    /// the host's state (every task ended, a deadlock).
    pub(crate) fn interrupt(&self) {
        let _ = self.waker.wake();
    }

    /// Whether a wake is waiting to be collected.
    pub(crate) fn has_pending_wakes(&self) -> bool {
        self.has_woken() || self.any_cancel.load(Ordering::SeqCst)
    }

    /// Interrupts the poll if the scheduler sleeps (work was placed on it).
    pub(crate) fn nudge(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }

    /// Whether the shard waits in its poll (or is about to).
    pub(crate) fn is_sleeping(&self) -> bool {
        self.sleeping.load(Ordering::SeqCst)
    }

    /// Moves the woken tasks into `into`, keeping their order.
    pub(crate) fn drain_woken(&self, into: &mut Vec<TaskKey>) {
        if self.any_woken.swap(false, Ordering::SeqCst) {
            into.append(&mut self.woken.lock().unwrap());
        }
    }

    /// Asks the scheduler to stop: `TaskManager::run` cancels every task
    /// and returns. Safe from any thread.
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }

    /// Asks the shard to cancel the task of `cell` (or pass the request on
    /// to where it went).
    pub(crate) fn request_cancel(&self, cell: Arc<TaskCell>) {
        crate::shard::lock(&self.cancels).push(cell);
        self.any_cancel.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }

    /// The cancels asked for since the last look.
    pub(crate) fn take_cancels(&self) -> Vec<Arc<TaskCell>> {
        if !self.any_cancel.swap(false, Ordering::SeqCst) {
            return Vec::new();
        }
        std::mem::take(&mut *crate::shard::lock(&self.cancels))
    }

    /// Asks the scheduler to list its live tasks on stderr.
    pub(crate) fn request_dump(&self) {
        self.dump.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(crate) fn take_dump_request(&self) -> bool {
        self.dump.swap(false, Ordering::SeqCst)
    }

    fn has_woken(&self) -> bool {
        self.any_woken.load(Ordering::SeqCst)
    }
}

/// The waker handed to a task's future: waking pushes the task's key.
pub(crate) struct TaskWaker {
    /// The task this waker resumes, wherever it is then.
    pub(crate) task: Arc<TaskCell>,
    /// Every shard's remote half, by index.
    pub(crate) peers: Arc<[Arc<Remote>]>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // A wake that reaches the shard a task just left finds no task
        // there and is dropped: a task moves only while runnable, and each
        // wait it starts after the move is woken at its new place.
        let key = self.task.key();
        self.peers[key.shard].wake(key);
    }
}

/// How long a shard with nothing to do watches for a wake from another
/// shard before it sleeps in the kernel: a wake through the kernel costs a
/// few tens of µs both ways, so tasks that talk across shards would wait
/// that long at each exchange. The cost is this much CPU each time such a
/// shard runs out of work, so it spins only after wakes from another
/// thread: a shard whose tasks wait on their own sockets (an echo server)
/// sleeps at once and leaves the core to others.
const SPIN: Duration = Duration::from_micros(50);

/// The blocking half of a reactor: the shard's thread waits in it with no
/// lock held, so that other shards can place tasks meanwhile.
pub(crate) struct Poller {
    /// mio's poller.
    poll: mio::Poll,
    /// Buffer for the events of one poll.
    events: mio::Events,
    /// The shard's remote half, watched while spinning.
    remote: Arc<Remote>,
    /// The other shards' remote halves, watched for tasks to take.
    others: Vec<Arc<Remote>>,
}

impl Poller {
    /// Waits up to `wait` (`None`: no limit) for I/O or a remote wake;
    /// with `spin`, watches for a wake for [`SPIN`] before it sleeps.
    pub(crate) fn poll(
        &mut self,
        mut wait: Option<Duration>,
        spin: bool,
    ) -> std::io::Result<&mio::Events> {
        if spin && wait.is_none_or(|w| w >= SPIN) && self.spin() {
            wait = Some(Duration::ZERO);
        }
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.events.clear(),
            Err(e) => return Err(e),
        }
        Ok(&self.events)
    }

    /// Lets the spin also watch `others` for tasks queued to take.
    pub(crate) fn watch(&mut self, others: Vec<Arc<Remote>>) {
        self.others = others;
    }

    /// Watches for up to [`SPIN`] for a wake (or work placed here, which
    /// clears `sleeping`) or tasks queued elsewhere; true if one came.
    fn spin(&self) -> bool {
        let until = Instant::now() + SPIN;
        loop {
            let remote = &self.remote;
            if !remote.sleeping.load(Ordering::SeqCst) || remote.has_woken() {
                return true;
            }
            if self
                .others
                .iter()
                .any(|o| o.queued.load(Ordering::Relaxed) >= 2)
            {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::hint::spin_loop();
        }
    }
}

/// Timers and I/O readiness, polled by the scheduler between passes.
pub(crate) struct Reactor {
    /// Where I/O sources register with the [`Poller`].
    registry: mio::Registry,
    /// Pending timers by deadline; the sequence number keeps equal deadlines
    /// in the order they were set.
    timers: BTreeMap<TimerKey, Waker>,
    /// The sequence number of the next timer.
    next_timer: u64,
    /// Registered I/O sources: while there are none, a pass with runnable
    /// tasks can skip the poll system call.
    sources: Slab<Source>,
    /// Tasks that I/O readiness woke in the last wait, in event order.
    io_woken: Vec<TaskKey>,
    /// Timers fired since the shard last looked (their wakes go through
    /// the remote half, like other threads').
    pub(crate) timers_fired: usize,
    /// The half that other threads use.
    remote: Arc<Remote>,
}

impl Reactor {
    /// A reactor and the poller its shard waits in.
    pub(crate) fn new() -> std::io::Result<(Self, Poller)> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKE_TOKEN)?;
        let registry = poll.registry().try_clone()?;
        let remote = Arc::new(Remote {
            woken: Mutex::new(Vec::new()),
            any_woken: AtomicBool::new(false),
            waker,
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            dump: AtomicBool::new(false),
            load: AtomicUsize::new(0),
            parked_stuck: AtomicBool::new(false),
            passes: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            wake_latency: Histogram::default(),
            cancels: Mutex::default(),
            any_cancel: AtomicBool::new(false),
            taken: AtomicU64::new(0),
        });
        let poller = Poller {
            poll,
            events: mio::Events::with_capacity(EVENTS_PER_PASS),
            remote: remote.clone(),
            others: Vec::new(),
        };
        let reactor = Self {
            registry,
            timers: BTreeMap::new(),
            next_timer: 0,
            sources: Slab::new(),
            io_woken: Vec::new(),
            timers_fired: 0,
            remote,
        };
        Ok((reactor, poller))
    }

    pub(crate) fn remote(&self) -> &Arc<Remote> {
        &self.remote
    }

    /// Calls `waker` once `deadline` has passed.
    pub(crate) fn add_timer(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let key = (deadline, self.next_timer);
        self.next_timer += 1;
        self.timers.insert(key, waker);
        key
    }

    /// Withdraws a timer; one that already fired is ignored.
    pub(crate) fn cancel_timer(&mut self, key: TimerKey) {
        self.timers.remove(&key);
    }

    /// Replaces the waker of a pending timer (a future may move between tasks' polls).
    pub(crate) fn update_timer(&mut self, key: TimerKey, waker: &Waker) {
        if let Some(w) = self.timers.get_mut(&key)
            && !w.will_wake(waker)
        {
            *w = waker.clone();
        }
    }

    pub(crate) fn has_timers(&self) -> bool {
        !self.timers.is_empty()
    }

    pub(crate) fn has_io_sources(&self) -> bool {
        !self.sources.is_empty()
    }

    /// Registers a socket for both directions. It starts out ready both
    /// ways: the first attempt tells whether it has to wait.
    pub(crate) fn register(
        &mut self,
        io: &mut impl mio::event::Source,
    ) -> std::io::Result<SourceKey> {
        let entry = self.sources.vacant_entry();
        let key = entry.key();
        self.registry.register(
            io,
            mio::Token(key),
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )?;
        entry.insert(Source {
            readable: true,
            writable: true,
            read_closed: false,
            write_closed: false,
            reader: None,
            writer: None,
        });
        Ok(key)
    }

    /// Forgets a socket that is about to close.
    pub(crate) fn deregister(&mut self, key: SourceKey, io: &mut impl mio::event::Source) {
        let _ = self.registry.deregister(io);
        self.sources.try_remove(key);
    }

    /// Whether `key` is ready in `direction`.
    pub(crate) fn is_ready(&self, key: SourceKey, direction: Direction) -> bool {
        self.sources.get(key).is_some_and(|s| match direction {
            Direction::Read => s.readable || s.read_closed,
            Direction::Write => s.writable || s.write_closed,
        })
    }

    /// Records that an attempt in `direction` would block.
    pub(crate) fn clear_ready(&mut self, key: SourceKey, direction: Direction) {
        if let Some(s) = self.sources.get_mut(key) {
            match direction {
                Direction::Read => s.readable = false,
                Direction::Write => s.writable = false,
            }
        }
    }

    /// Makes `task` the one woken when `key` becomes ready in `direction`
    /// (`None`: nobody, after a wait that gave up).
    pub(crate) fn wait_ready(
        &mut self,
        key: SourceKey,
        direction: Direction,
        task: Option<TaskKey>,
    ) {
        if let Some(s) = self.sources.get_mut(key) {
            match direction {
                Direction::Read => s.reader = task,
                Direction::Write => s.writer = task,
            }
        }
    }

    /// Tasks woken by I/O in the last wait, to schedule.
    pub(crate) fn take_io_woken(&mut self, into: &mut Vec<TaskKey>) {
        into.append(&mut self.io_woken);
    }

    fn note_events(&mut self, events: &mio::Events) {
        for event in events.iter() {
            let Some(source) = self.sources.get_mut(event.token().0) else {
                continue;
            };
            // Errors and hang-ups wake both sides: the next attempt reports them.
            let broken = event.is_error();
            source.read_closed |= event.is_read_closed() || broken;
            source.write_closed |= event.is_write_closed() || broken;
            if event.is_readable() || event.is_read_closed() || broken {
                source.readable = true;
                self.io_woken.extend(source.reader.take());
            }
            if event.is_writable() || event.is_write_closed() || broken {
                source.writable = true;
                self.io_woken.extend(source.writer.take());
            }
        }
    }

    /// How long the shard may wait in its [`Poller`] for I/O readiness, a
    /// wake from another thread, the next timer or `timeout` (`None`: no
    /// limit); with `must_return` the wait is only a check. `None`: skip
    /// the poll (nothing to check, nothing to wait for).
    pub(crate) fn plan_wait(
        &mut self,
        timeout: Option<Duration>,
        must_return: bool,
    ) -> Option<Option<Duration>> {
        // The clock is read only when a timer is set: a pass is often short.
        let until_timer = self
            .timers
            .keys()
            .next()
            .map(|(at, _)| at.saturating_duration_since(Instant::now()));
        let mut wait = match (until_timer, timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if must_return {
            wait = Some(Duration::ZERO);
        }
        if wait == Some(Duration::ZERO) && self.sources.is_empty() {
            return None;
        }
        self.remote.sleeping.store(true, Ordering::SeqCst);
        if self.remote.has_woken() {
            wait = Some(Duration::ZERO);
        }
        Some(wait)
    }

    /// Takes in what the poll found (if it ran), then fires every due timer.
    ///
    /// I/O is collected before timers fire, so that an operation whose
    /// readiness and deadline land together sees the readiness (docs/design.md §4 row 3).
    pub(crate) fn end_wait(&mut self, events: Option<&mio::Events>) {
        self.remote.parked_stuck.store(false, Ordering::SeqCst);
        self.remote.passes.fetch_add(1, Ordering::SeqCst);
        if let Some(events) = events {
            self.remote.sleeping.store(false, Ordering::SeqCst);
            self.note_events(events);
        }
        self.fire_due_timers();
    }

    /// Drops every timer (and the wakers they hold): the host is going away.
    pub(crate) fn clear_timers(&mut self) {
        self.timers.clear();
    }

    fn fire_due_timers(&mut self) {
        if self.timers.is_empty() {
            return;
        }
        let now = Instant::now();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            entry.remove().wake();
            self.timers_fired += 1;
        }
    }
}
