//! The reactor: where suspended tasks wait for time and I/O.
//!
//! It owns the `mio::Poll` (sockets register with it), the timers, and the
//! [`Remote`] half that wakers on any thread use to make a task runnable.
//! The scheduler asks it once between passes to collect what became ready.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use crate::scheduler::TaskKey;

/// The token of the mio waker; sockets use the tokens below it.
const WAKE_TOKEN: mio::Token = mio::Token(usize::MAX);

/// Identifies one pending timer so that it can be cancelled in O(log n).
pub(crate) type TimerKey = (Instant, u64);

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
}

impl Remote {
    /// Marks `task` runnable and interrupts the poll if the scheduler sleeps.
    pub(crate) fn wake(&self, task: TaskKey) {
        self.woken.lock().unwrap().push(task);
        self.any_woken.store(true, Ordering::SeqCst);
        if self.sleeping.swap(false, Ordering::SeqCst) {
            // A failed wake means the poller is gone: nothing left to wake.
            let _ = self.waker.wake();
        }
    }

    /// Moves the woken tasks into `into`, keeping their order.
    pub(crate) fn drain_woken(&self, into: &mut Vec<TaskKey>) {
        if self.any_woken.swap(false, Ordering::SeqCst) {
            into.append(&mut self.woken.lock().unwrap());
        }
    }

    fn has_woken(&self) -> bool {
        self.any_woken.load(Ordering::SeqCst)
    }
}

/// The waker handed to a task's future: waking pushes the task's key.
pub(crate) struct TaskWaker {
    /// The task this waker resumes.
    pub(crate) task: TaskKey,
    /// Where the wake is recorded.
    pub(crate) remote: Arc<Remote>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.remote.wake(self.task);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.remote.wake(self.task);
    }
}

/// Timers and I/O readiness, polled by the scheduler between passes.
pub(crate) struct Reactor {
    /// mio's poller: every I/O source registers with its registry.
    poll: mio::Poll,
    /// Buffer for the events of one poll.
    events: mio::Events,
    /// Pending timers by deadline; the sequence number keeps equal deadlines
    /// in the order they were set.
    timers: BTreeMap<TimerKey, Waker>,
    /// The sequence number of the next timer.
    next_timer: u64,
    /// Registered I/O sources: while there are none, a pass with runnable
    /// tasks can skip the poll system call.
    sources: usize,
    /// The half that other threads use.
    remote: Arc<Remote>,
}

impl Reactor {
    pub(crate) fn new() -> std::io::Result<Self> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKE_TOKEN)?;
        Ok(Self {
            poll,
            events: mio::Events::with_capacity(1024),
            timers: BTreeMap::new(),
            next_timer: 0,
            sources: 0,
            remote: Arc::new(Remote {
                woken: Mutex::new(Vec::new()),
                any_woken: AtomicBool::new(false),
                waker,
                sleeping: AtomicBool::new(false),
            }),
        })
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
        self.sources > 0
    }

    /// Waits for I/O readiness, a wake from another thread, the next timer,
    /// or `timeout` (`None`: no limit), whichever comes first; then fires
    /// every due timer. With `must_return` the wait is only a check.
    ///
    /// I/O is collected before timers fire, so that an operation whose
    /// readiness and deadline land together sees the readiness (DESIGN §4 row 3).
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        must_return: bool,
    ) -> std::io::Result<()> {
        let now = Instant::now();
        let until_timer = self
            .timers
            .keys()
            .next()
            .map(|(at, _)| at.saturating_duration_since(now));
        let mut wait = match (until_timer, timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if must_return {
            wait = Some(Duration::ZERO);
        }
        let skip_poll = wait == Some(Duration::ZERO) && self.sources == 0;
        if !skip_poll {
            self.remote.sleeping.store(true, Ordering::SeqCst);
            if self.remote.has_woken() {
                wait = Some(Duration::ZERO);
            }
            let polled = self.poll.poll(&mut self.events, wait);
            self.remote.sleeping.store(false, Ordering::SeqCst);
            match polled {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.fire_due_timers();
        Ok(())
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
        }
    }
}
