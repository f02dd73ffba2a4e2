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

use crate::ids::TaskKey;
use crate::shard::reactor::TimerKey;
use crate::shard::{Core, JoinState, Outcome, Shard, Wait};
use crate::shards::Shards;
use crate::wit_types::Error;

/// A point in time after which an operation gives up with `timeout`,
/// counted on the monotonic clock from when the operation was issued.
pub(crate) struct Deadline<'a> {
    /// The shard whose reactor times it: the waiting task's.
    shard: &'a Shard,
    /// When it passes; `None`: never.
    at: Option<Instant>,
    /// The reactor timer that wakes the task at `at`, once registered.
    timer: Option<TimerKey>,
}

impl<'a> Deadline<'a> {
    /// A deadline on `shard` `timeout` from now; `None` (or one too far to
    /// represent) never passes.
    pub(crate) fn after(shard: &'a Shard, timeout: Option<Duration>) -> Self {
        let at = timeout.and_then(|t| Instant::now().checked_add(t));
        Self {
            shard,
            at,
            timer: None,
        }
    }

    /// A deadline `nanos` nanoseconds from now, if given.
    pub(crate) fn after_nanos(shard: &'a Shard, nanos: Option<u64>) -> Self {
        Self::after(shard, nanos.map(Duration::from_nanos))
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

impl Drop for Deadline<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.timer.take() {
            self.shard.core().reactor.cancel_timer(key);
        }
    }
}

/// `yield-now`: goes to the back of the run queue once.
pub(crate) struct YieldNow<'a> {
    /// The yielding task's shard.
    shard: &'a Shard,
    /// Went to the back once already.
    yielded: bool,
}

impl<'a> YieldNow<'a> {
    pub(crate) fn new(shard: &'a Shard) -> Self {
        Self {
            shard,
            yielded: false,
        }
    }
}

impl Future for YieldNow<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // The same as waking through `cx`, minus the remote half's lock.
        self.shard.core().requeue_current();
        Poll::Pending
    }
}

/// `sleep`: waits until its deadline.
pub(crate) struct Sleep<'a>(Deadline<'a>);

impl<'a> Sleep<'a> {
    pub(crate) fn new(shard: &'a Shard, nanos: u64) -> Self {
        Self(Deadline::after_nanos(shard, Some(nanos)))
    }
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut core = this.0.shard.core();
        if this.0.expired(&mut core, cx.waker()) {
            return Poll::Ready(());
        }
        core.set_pending_wait(Wait::Timer);
        Poll::Pending
    }
}

/// `task.join`: waits for a child's outcome, or for the deadline.
pub(crate) struct Join<'a> {
    /// The child, on any shard.
    task: TaskKey,
    /// The joining task.
    joiner: TaskKey,
    /// Where the child runs.
    shards: &'a Shards,
    /// When to give up, on the joiner's shard.
    deadline: Deadline<'a>,
    /// Resolved: nothing to withdraw on drop.
    done: bool,
}

impl<'a> Join<'a> {
    pub(crate) fn new(
        shards: &'a Shards,
        joiner: TaskKey,
        task: TaskKey,
        timeout: Option<u64>,
    ) -> Self {
        Self {
            task,
            joiner,
            shards,
            deadline: Deadline::after_nanos(shards.of(joiner), timeout),
            done: false,
        }
    }
}

impl Future for Join<'_> {
    type Output = Result<Outcome, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // The child's shard first, let go of before the joiner's is taken:
        // no thread holds two shards' cores.
        let state = this
            .shards
            .of(this.task)
            .core()
            .poll_join(this.task, this.joiner);
        let mut core = this.shards.of(this.joiner).core();
        let result = match state {
            JoinState::Ended(outcome) => {
                this.deadline.clear(&mut core);
                Ok(outcome)
            }
            JoinState::Gone => Err(Error::Invalid("this task was joined already".into())),
            JoinState::Running if this.deadline.expired(&mut core, cx.waker()) => {
                drop(core);
                this.shards.of(this.task).core().withdraw_join(this.task);
                Err(Error::Timeout)
            }
            JoinState::Running => {
                core.set_pending_wait(Wait::Join);
                return Poll::Pending;
            }
        };
        this.done = true;
        Poll::Ready(result)
    }
}

impl Drop for Join<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shards.of(self.task).core().withdraw_join(self.task);
        }
    }
}
