//! The futures that suspend a task inside a host call: yield, sleep, join,
//! and the deadline that every waiting operation can carry.
//!
//! Each one checks its condition first and its deadline second, so that a
//! condition and a deadline met in the same pass resolve to the condition
//! (docs/design.md §4 row 3), and each tells the scheduler what it waits for.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::cluster::remote::{Found, Slot, poll_slot};
use crate::ids::TaskCell;
use crate::program::task::TaskCtx;
use crate::shard::reactor::TimerKey;
use crate::shard::{Core, JoinState, Outcome, Wait};
use crate::shards::Shards;
use crate::watch::{End, Watch};
use crate::wit_types::Error;

/// A point in time after which an operation gives up with `timeout`,
/// counted on the monotonic clock from when the operation was issued.
pub(crate) struct Deadline<'a> {
    /// The shards: the waiting task's may change while it is runnable.
    shards: &'a Shards,
    /// When it passes; `None`: never.
    at: Option<Instant>,
    /// The reactor timer that wakes the task at `at`, once registered, and
    /// the shard whose reactor holds it.
    timer: Option<(usize, TimerKey)>,
}

impl<'a> Deadline<'a> {
    /// A deadline `nanos` nanoseconds from now; `None` (or one too far to
    /// represent) never passes.
    pub(crate) fn after_nanos(shards: &'a Shards, nanos: Option<u64>) -> Self {
        Self {
            shards,
            at: instant_in(nanos),
            timer: None,
        }
    }

    /// Whether it has passed; if not, makes sure `waker` is woken when it
    /// does. `core` is the waiting task's shard's.
    pub(crate) fn expired(&mut self, core: &mut Core, waker: &Waker) -> bool {
        let Some(at) = self.at else { return false };
        if Instant::now() >= at {
            self.clear(core);
            return true;
        }
        match self.timer {
            Some((shard, key)) if shard == core.index() => core.reactor.update_timer(key, waker),
            // Set on the shard the task left, if any: that timer stays to
            // wake it there once, harmlessly (its waker follows the task).
            _ => self.timer = Some((core.index(), core.reactor.add_timer(at, waker.clone()))),
        }
        false
    }

    /// Withdraws its timer; `core` is the waiting task's shard's.
    pub(crate) fn clear(&mut self, core: &mut Core) {
        match self.timer.take() {
            Some((shard, key)) if shard == core.index() => core.reactor.cancel_timer(key),
            other => self.timer = other,
        }
    }
}

/// The point in time `nanos` nanoseconds from now, if given and
/// representable: when an operation with that timeout gives up.
pub(crate) fn instant_in(nanos: Option<u64>) -> Option<Instant> {
    nanos.and_then(|n| Instant::now().checked_add(Duration::from_nanos(n)))
}

impl Drop for Deadline<'_> {
    fn drop(&mut self) {
        if let Some((shard, key)) = self.timer.take() {
            self.shards.all()[shard].core().reactor.cancel_timer(key);
        }
    }
}

/// `yield-now`: goes to the back of the run queue once.
pub(crate) struct YieldNow<'a> {
    /// The yielding task.
    ctx: &'a TaskCtx,
    /// Went to the back once already.
    yielded: bool,
}

impl<'a> YieldNow<'a> {
    pub(crate) fn new(ctx: &'a TaskCtx) -> Self {
        Self {
            ctx,
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
        self.ctx.core().yield_current();
        Poll::Pending
    }
}

/// `sleep`: waits until its deadline.
pub(crate) struct Sleep<'a> {
    /// The sleeping task.
    ctx: &'a TaskCtx,
    /// When it wakes.
    deadline: Deadline<'a>,
}

impl<'a> Sleep<'a> {
    pub(crate) fn new(ctx: &'a TaskCtx, nanos: u64) -> Self {
        Self {
            ctx,
            deadline: Deadline::after_nanos(&ctx.shards, Some(nanos)),
        }
    }
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut core = this.ctx.core();
        if this.deadline.expired(&mut core, cx.waker()) {
            return Poll::Ready(());
        }
        core.set_pending_wait(Wait::Timer);
        Poll::Pending
    }
}

/// `task.join`: waits for a child's outcome, or for the deadline.
pub(crate) struct Join<'a> {
    /// The joining task.
    ctx: &'a TaskCtx,
    /// The child, on any shard.
    child: &'a TaskCell,
    /// When to give up.
    deadline: Deadline<'a>,
    /// Resolved: nothing to withdraw on drop.
    done: bool,
}

impl<'a> Join<'a> {
    pub(crate) fn new(ctx: &'a TaskCtx, child: &'a TaskCell, timeout: Option<u64>) -> Self {
        Self {
            ctx,
            child,
            deadline: Deadline::after_nanos(&ctx.shards, timeout),
            done: false,
        }
    }
}

impl Future for Join<'_> {
    type Output = Result<Outcome, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let (shards, me) = (&this.ctx.shards, this.ctx.me());
        // The child's shard first, let go of before the joiner's is taken:
        // no thread holds two shards' cores.
        let state = shards.with_task(this.child, |core, child| core.poll_join(child, me));
        let mut core = this.ctx.core();
        let result = match state {
            JoinState::Ended(outcome) => {
                this.deadline.clear(&mut core);
                Ok(outcome)
            }
            JoinState::Gone => Err(Error::Invalid("this task was joined already".into())),
            JoinState::Running if this.deadline.expired(&mut core, cx.waker()) => {
                drop(core);
                shards.with_task(this.child, |core, child| core.withdraw_join(child));
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
            let shards = &self.ctx.shards;
            shards.with_task(self.child, |core, child| core.withdraw_join(child));
        }
    }
}

/// `task-monitor.wait`: waits for the watched task's end, or the deadline.
pub(crate) struct WatchEnd<'a> {
    /// The waiting task.
    ctx: &'a TaskCtx,
    /// Where the end arrives.
    watch: &'a Watch,
    /// When to give up.
    deadline: Deadline<'a>,
}

impl<'a> WatchEnd<'a> {
    pub(crate) fn new(ctx: &'a TaskCtx, watch: &'a Watch, timeout: Option<u64>) -> Self {
        Self {
            ctx,
            watch,
            deadline: Deadline::after_nanos(&ctx.shards, timeout),
        }
    }
}

impl Future for WatchEnd<'_> {
    type Output = Result<End, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let end = this.watch.poll(cx.waker());
        let mut core = this.ctx.core();
        match end {
            Some(end) => {
                this.deadline.clear(&mut core);
                Poll::Ready(Ok(end))
            }
            None if this.deadline.expired(&mut core, cx.waker()) => {
                Poll::Ready(Err(Error::Timeout))
            }
            None => {
                // Another task's end, as for a join.
                core.set_pending_wait(Wait::Join);
                Poll::Pending
            }
        }
    }
}

/// Work that a host call handed to the cluster's runtime
/// (`Cluster::start`): the task waits for its result as for I/O, and a
/// drop tells the work that nobody waits any more.
pub(crate) struct Outside<'a, T> {
    /// The waiting task.
    ctx: &'a TaskCtx,
    /// Where the result comes.
    result: oneshot::Receiver<T>,
}

impl<'a, T> Outside<'a, T> {
    pub(crate) fn new(ctx: &'a TaskCtx, result: oneshot::Receiver<T>) -> Self {
        Self { ctx, result }
    }
}

impl<T> Future for Outside<'_, T> {
    /// The result; `None` if the work ended without one (the host is
    /// stopping).
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match Pin::new(&mut self.result).poll(cx) {
            Poll::Ready(result) => Poll::Ready(result.ok()),
            Poll::Pending => {
                self.ctx.core().set_pending_wait(Wait::Io);
                Poll::Pending
            }
        }
    }
}

/// Runs `work` on the cluster's runtime and waits for its result as
/// for I/O; `io` if the host stops meanwhile.
pub(crate) async fn outside<T: Send + 'static, F>(
    ctx: &TaskCtx,
    work: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> F,
) -> wasmtime::Result<Result<T, Error>>
where
    F: Future<Output = ()> + Send + 'static,
{
    let cluster = ctx
        .shards
        .cluster()
        .expect("a cluster queue in cluster mode");
    let result = Outside::new(ctx, cluster.start(work)).await;
    Ok(result.unwrap_or_else(|| Err(Error::Io("the host is stopping".into()))))
}

/// `task.join` of a child placed anywhere in the cluster: waits for its
/// outcome to come back, or for the deadline.
pub(crate) struct RemoteJoin<'a> {
    /// The joining task.
    ctx: &'a TaskCtx,
    /// Where the child's outcome lands.
    slot: &'a Mutex<Slot>,
    /// When to give up.
    deadline: Deadline<'a>,
}

impl<'a> RemoteJoin<'a> {
    pub(crate) fn new(ctx: &'a TaskCtx, slot: &'a Mutex<Slot>, timeout: Option<u64>) -> Self {
        Self {
            ctx,
            slot,
            deadline: Deadline::after_nanos(&ctx.shards, timeout),
        }
    }
}

impl Future for RemoteJoin<'_> {
    type Output = Result<Outcome, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let found = poll_slot(this.slot, cx.waker());
        let mut core = this.ctx.core();
        match found {
            Found::Ended(outcome) => {
                this.deadline.clear(&mut core);
                Poll::Ready(Ok(outcome))
            }
            Found::Gone => Poll::Ready(Err(Error::Invalid("this task was joined already".into()))),
            Found::Running if this.deadline.expired(&mut core, cx.waker()) => {
                Poll::Ready(Err(Error::Timeout))
            }
            Found::Running => {
                // The outcome comes over the network.
                core.set_pending_wait(Wait::Io);
                Poll::Pending
            }
        }
    }
}
