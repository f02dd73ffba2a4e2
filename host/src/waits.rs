//! The futures that suspend a task inside a host call: yield, sleep, join,
//! and the deadline that every waiting operation can carry.
//!
//! Each one checks its condition first and its deadline second, so that a
//! condition and a deadline met in the same pass resolve to the condition
//! (docs/design.md §4 row 3), and each tells the scheduler what it waits for.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::reactor::TimerKey;
use crate::scheduler::{Core, JoinState, Outcome, TaskKey, Wait, try_with_core, with_core};
use crate::wit_types::Error;

/// A point in time after which an operation gives up with `timeout`,
/// counted on the monotonic clock from when the operation was issued.
pub(crate) struct Deadline {
    /// When it passes; `None`: never.
    at: Option<Instant>,
    /// The reactor timer that wakes the task at `at`, once registered.
    timer: Option<TimerKey>,
}

impl Deadline {
    /// A deadline `timeout` from now; `None` (or one too far to represent) never passes.
    pub(crate) fn after(timeout: Option<Duration>) -> Self {
        let at = timeout.and_then(|t| Instant::now().checked_add(t));
        Self { at, timer: None }
    }

    /// A deadline `nanos` nanoseconds from now, if given.
    pub(crate) fn after_nanos(nanos: Option<u64>) -> Self {
        Self::after(nanos.map(Duration::from_nanos))
    }

    /// Whether it has passed; if not, makes sure `waker` is woken when it does.
    pub(crate) fn expired(&mut self, core: &mut Core, waker: &Waker) -> bool {
        let Some(at) = self.at else { return false };
        if Instant::now() >= at {
            self.clear(core);
            return true;
        }
        match self.timer {
            Some(key) => core.reactor.update_timer(key, waker),
            None => self.timer = Some(core.reactor.add_timer(at, waker.clone())),
        }
        false
    }

    /// Withdraws its timer.
    pub(crate) fn clear(&mut self, core: &mut Core) {
        if let Some(key) = self.timer.take() {
            core.reactor.cancel_timer(key);
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if self.timer.is_some() {
            // Outside a pass the whole core is going away, timers and all.
            try_with_core(|core| self.clear(core));
        }
    }
}

/// `yield-now`: goes to the back of the run queue once.
#[derive(Default)]
pub(crate) struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // The same as waking through `cx`, minus the lock a waker takes.
        with_core(|core| core.requeue_current());
        Poll::Pending
    }
}

/// `sleep`: waits until its deadline.
pub(crate) struct Sleep(Deadline);

impl Sleep {
    pub(crate) fn new(nanos: u64) -> Self {
        Self(Deadline::after_nanos(Some(nanos)))
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        with_core(|core| {
            if self.0.expired(core, cx.waker()) {
                return Poll::Ready(());
            }
            core.set_pending_wait(Wait::Timer);
            Poll::Pending
        })
    }
}

/// `task.join`: waits for a child's outcome, or for the deadline.
pub(crate) struct Join {
    task: TaskKey,
    deadline: Deadline,
    /// Resolved: nothing to withdraw on drop.
    done: bool,
}

impl Join {
    pub(crate) fn new(task: TaskKey, timeout: Option<u64>) -> Self {
        Self {
            task,
            deadline: Deadline::after_nanos(timeout),
            done: false,
        }
    }
}

impl Future for Join {
    type Output = Result<Outcome, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = with_core(|core| match core.poll_join(this.task) {
            JoinState::Ended(outcome) => {
                this.deadline.clear(core);
                Some(Ok(outcome))
            }
            JoinState::Gone => Some(Err(Error::Invalid("this task was joined already".into()))),
            JoinState::Running if this.deadline.expired(core, cx.waker()) => {
                core.withdraw_join(this.task);
                Some(Err(Error::Timeout))
            }
            JoinState::Running => {
                core.set_pending_wait(Wait::Join);
                None
            }
        });
        match result {
            Some(result) => {
                this.done = true;
                Poll::Ready(result)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Join {
    fn drop(&mut self) {
        if !self.done {
            try_with_core(|core| core.withdraw_join(self.task));
        }
    }
}
