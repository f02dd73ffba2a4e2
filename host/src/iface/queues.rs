//! `mtask:task/queues`: bounded FIFO queues between the tasks of an app.
//!
//! A `put` or `get` that can complete at once still suspends its task for
//! one pass, as a yield: that is what gives multitask's interleaving (the
//! putter runs before the getter it woke, docs/design.md §4 row 10).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use wasmtime::component::Resource;

use crate::bindings::mtask::task::queues::{Host, HostQueue, Item as WitItem};
use crate::bindings::mtask::task::types::Error;
use crate::cluster::Names;
use crate::cluster::queue::ClusterQueue;
use crate::handles::{LocalQueue, QueueHandle, open_shared_queue, shared_queue_handle};
use crate::outcome::OverLimit;
use crate::program::task::TaskCtx;
use crate::program::task::TaskState;
use crate::queue::{GetNow, Item, PutNow, QueueKey, WaiterKey, tag_set};
use crate::shard::Wait;
use crate::shards::Shards;
use crate::waits::{Deadline, instant_in, outside};

impl TaskState {
    /// The queue of this host that `queue` names, or `None` for a cluster queue.
    fn local_key(&self, queue: &Resource<QueueHandle>) -> wasmtime::Result<Option<QueueKey>> {
        Ok(match self.table.get(queue)? {
            QueueHandle::Local(local) => Some(local.key),
            QueueHandle::Cluster { .. } => None,
        })
    }

    /// The cluster queue `queue` names (it is one: `local_key` said `None`).
    fn shared(&self, queue: &Resource<QueueHandle>) -> wasmtime::Result<Arc<ClusterQueue>> {
        match self.table.get(queue)? {
            QueueHandle::Cluster { handle, .. } => Ok(handle.queue.clone()),
            QueueHandle::Local(_) => unreachable!("asked for the cluster queue of a local one"),
        }
    }

    /// Opens the cluster queue `name` of this task's tenant.
    async fn open_shared(
        &mut self,
        name: String,
        maxsize: u32,
    ) -> wasmtime::Result<Result<Resource<QueueHandle>, Error>> {
        let shards = self.ctx()?.shards.clone();
        let (app, names) = (self.program.app(), Names::of(self.program.tenant()));
        let opened = outside(self.ctx()?, move |tx| async move {
            let _ = tx.send(open_shared_queue(shards, app, names, name, maxsize).await);
        })
        .await?;
        Ok(match opened {
            Ok(handle) => Ok(self.table.push(handle)?),
            Err(e) => Err(e),
        })
    }

    /// A get from a cluster queue: the item this handle took last is done
    /// with (acked) first.
    async fn get_shared(
        &mut self,
        queue: Resource<QueueHandle>,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<WitItem, Error>> {
        let held = match self.table.get_mut(&queue)? {
            QueueHandle::Cluster { handle, .. } => handle.held.take(),
            QueueHandle::Local(_) => None,
        };
        let shared = self.shared(&queue)?;
        let deadline = instant_in(timeout);
        let got = outside(self.ctx()?, move |mut tx| async move {
            if let Some(lease) = held {
                shared.done_with(lease).await;
            }
            let got = shared.get(deadline, &mut tx).await;
            // If the task gave up meanwhile, the item goes back at once.
            if let Err(Ok((_, lease))) = tx.send(got) {
                lease.end(true);
            }
        })
        .await?;
        Ok(match got {
            Ok((item, lease)) => {
                if let QueueHandle::Cluster { handle, .. } = self.table.get_mut(&queue)? {
                    handle.held = Some(lease);
                }
                Ok(item.into())
            }
            Err(e) => Err(e),
        })
    }
}

impl Host for TaskState {}

impl HostQueue for TaskState {
    fn create(
        &mut self,
        maxsize: u32,
        initial: Vec<WitItem>,
    ) -> wasmtime::Result<Result<Resource<QueueHandle>, Error>> {
        let shards = self.ctx()?.shards.clone();
        let initial = initial.into_iter().map(Item::from).collect();
        let created = shards.queues().create(self.program.app(), maxsize, initial);
        match created {
            Ok(key) => Ok(Ok(self.table.push(local(key, shards))?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn open(
        &mut self,
        name: String,
        maxsize: u32,
    ) -> wasmtime::Result<Result<Resource<QueueHandle>, Error>> {
        let shards = self.ctx()?.shards.clone();
        if shards.cluster().is_some() {
            return self.open_shared(name, maxsize).await;
        }
        let opened = shards.queues().open(self.program.app(), &name, maxsize);
        match opened {
            Ok(key) => Ok(Ok(self.table.push(local(key, shards))?)),
            Err(e) => Ok(Err(e)),
        }
    }

    fn clone(&mut self, queue: Resource<QueueHandle>) -> wasmtime::Result<Resource<QueueHandle>> {
        let shards = self.ctx()?.shards.clone();
        let app = self.program.app();
        // `clone` has no error value: a handle past the app's bytes ends
        // the task, as memory past its limit does.
        let over = |e: Error| match e {
            Error::Limit(why) => wasmtime::Error::new(OverLimit(why)),
            other => wasmtime::Error::msg(format!("{other:?}")),
        };
        let handle = match self.local_key(&queue)? {
            Some(key) => {
                let retained = shards.queues().retain(key);
                retained.map_err(over)?;
                local(key, shards)
            }
            None => shared_queue_handle(shards, app, self.shared(&queue)?).map_err(over)?,
        };
        Ok(self.table.push(handle)?)
    }

    async fn put(
        &mut self,
        queue: Resource<QueueHandle>,
        item: WitItem,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let Some(key) = self.local_key(&queue)? else {
            let (shared, deadline) = (self.shared(&queue)?, instant_in(timeout));
            return outside(self.ctx()?, move |mut tx| async move {
                let put = shared.put(item.into(), deadline, &mut tx).await;
                let _ = tx.send(put);
            })
            .await;
        };
        Ok(
            QueueOp::new(self.ctx()?, key, Op::Put(Some(item.into())), timeout)
                .await
                .map(|_| ()),
        )
    }

    async fn get(
        &mut self,
        queue: Resource<QueueHandle>,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<WitItem, Error>> {
        let Some(key) = self.local_key(&queue)? else {
            return self.get_shared(queue, timeout).await;
        };
        Ok(QueueOp::new(self.ctx()?, key, Op::Get(None), timeout)
            .await
            .map(|item| item.expect("a get yields an item").into()))
    }

    async fn get_tagged(
        &mut self,
        queue: Resource<QueueHandle>,
        tags: Vec<u64>,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<WitItem, Error>> {
        let Some(key) = self.local_key(&queue)? else {
            return Ok(Err(Error::Invalid(
                "a selective get (get-tagged) is not available on a cluster queue".into(),
            )));
        };
        let op = Op::Get(Some(tag_set(tags)));
        Ok(QueueOp::new(self.ctx()?, key, op, timeout)
            .await
            .map(|item| item.expect("a get yields an item").into()))
    }

    async fn try_put(
        &mut self,
        queue: Resource<QueueHandle>,
        item: WitItem,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let Some(key) = self.local_key(&queue)? else {
            let shared = self.shared(&queue)?;
            return outside(self.ctx()?, move |tx| async move {
                let _ = tx.send(shared.try_put(&item.into()).await);
            })
            .await;
        };
        let ctx = self.ctx()?;
        let put = ctx.shards.queues().put_now(key, item.into());
        Ok(match put {
            PutNow::Done(woken) => {
                if let Some(task) = woken {
                    ctx.core().schedule(task);
                }
                Ok(true)
            }
            PutNow::Full(_) => Ok(false),
            PutNow::Failed(e) => Err(e),
        })
    }

    async fn try_get(
        &mut self,
        queue: Resource<QueueHandle>,
    ) -> wasmtime::Result<Result<Option<WitItem>, Error>> {
        let Some(key) = self.local_key(&queue)? else {
            // A get that does not wait: the same path, with no time to wait.
            return Ok(match self.get_shared(queue, Some(0)).await? {
                Ok(item) => Ok(Some(item)),
                Err(Error::Timeout) => Ok(None),
                Err(e) => Err(e),
            });
        };
        let ctx = self.ctx()?;
        let got = ctx.shards.queues().get_now(key, None);
        Ok(match got {
            GetNow::Got(item, woken) => {
                if let Some(task) = woken {
                    ctx.core().schedule(task);
                }
                Ok(Some(item.into()))
            }
            GetNow::Empty => Ok(None),
            GetNow::Closed => Err(Error::Closed),
        })
    }

    async fn len(&mut self, queue: Resource<QueueHandle>) -> wasmtime::Result<u32> {
        let Some(key) = self.local_key(&queue)? else {
            let shared = self.shared(&queue)?;
            let len = outside(self.ctx()?, move |tx| async move {
                let _ = tx.send(shared.len().await);
            })
            .await?;
            // No error value: a cluster that cannot answer knows of nothing.
            return Ok(len.map_or(0, |n| n.min(u32::MAX.into()) as u32));
        };
        Ok(self.ctx()?.shards.queues().len(key) as u32)
    }

    async fn is_empty(&mut self, queue: Resource<QueueHandle>) -> wasmtime::Result<bool> {
        Ok(self.len(queue).await? == 0)
    }

    async fn is_full(&mut self, queue: Resource<QueueHandle>) -> wasmtime::Result<bool> {
        let Some(key) = self.local_key(&queue)? else {
            let shared = self.shared(&queue)?;
            let full = outside(self.ctx()?, move |tx| async move {
                let _ = tx.send(shared.is_full().await);
            })
            .await?;
            return Ok(full.unwrap_or(false));
        };
        Ok(self.ctx()?.shards.queues().is_full(key))
    }

    async fn close(&mut self, queue: Resource<QueueHandle>) -> wasmtime::Result<()> {
        let Some(key) = self.local_key(&queue)? else {
            let shared = self.shared(&queue)?;
            let closed = outside(self.ctx()?, move |tx| async move {
                let _ = tx.send(shared.close().await);
            })
            .await?;
            // `close` has no error value: a close the cluster did not take
            // ends the task rather than let it believe the queue closed.
            return closed
                .map_err(|e| wasmtime::Error::msg(format!("cannot close the queue: {e:?}")));
        };
        let ctx = self.ctx()?;
        let woken = ctx.shards.queues().close(key);
        let mut core = ctx.core();
        for task in woken {
            core.schedule(task);
        }
        Ok(())
    }

    fn drop(&mut self, queue: Resource<QueueHandle>) -> wasmtime::Result<()> {
        self.table.delete(queue)?;
        Ok(())
    }
}

/// A handle on the queue `key` of this host.
fn local(key: QueueKey, shards: Arc<Shards>) -> QueueHandle {
    QueueHandle::Local(LocalQueue { key, shards })
}

impl From<WitItem> for Item {
    fn from(item: WitItem) -> Self {
        Self {
            tag: item.tag,
            data: item.data,
        }
    }
}

impl From<Item> for WitItem {
    fn from(item: Item) -> Self {
        Self {
            tag: item.tag,
            data: item.data,
        }
    }
}

/// What a [`QueueOp`] does.
enum Op {
    /// Add this item (taken once it is handed over).
    Put(Option<Item>),
    /// Take an item, of one of these tags if given.
    Get(Option<Vec<u64>>),
}

/// Where a [`QueueOp`] stands.
enum Stage {
    /// Not tried yet.
    Start,
    /// Done at once; returns after one pass, as a yield.
    Yielded(Result<Option<Item>, Error>),
    /// Waiting in the queue's line.
    Waiting(WaiterKey),
    /// Returned its result.
    Finished,
}

/// A `put` or `get`, with its deadline.
struct QueueOp<'a> {
    /// The task that waits.
    ctx: &'a TaskCtx,
    queue: QueueKey,
    op: Op,
    deadline: Deadline<'a>,
    stage: Stage,
}

impl<'a> QueueOp<'a> {
    fn new(ctx: &'a TaskCtx, queue: QueueKey, op: Op, timeout: Option<u64>) -> Self {
        Self {
            ctx,
            queue,
            op,
            deadline: Deadline::after_nanos(&ctx.shards, timeout),
            stage: Stage::Start,
        }
    }

    /// The first attempt: done now (and yield), or wait in line.
    fn start(&mut self) -> Stage {
        let task = self.ctx.me();
        let now = {
            let mut queues = self.ctx.shards.queues();
            match &mut self.op {
                Op::Put(item) => match queues.put_now(self.queue, item.take().expect("put once")) {
                    PutNow::Done(woken) => Ok((None, woken)),
                    PutNow::Failed(e) => Err(e),
                    PutNow::Full(item) => match queues.wait_put(self.queue, task, item) {
                        Ok(waiter) => return Stage::Waiting(waiter),
                        Err(e) => Err(e),
                    },
                },
                Op::Get(tags) => match queues.get_now(self.queue, tags.as_deref()) {
                    GetNow::Got(item, woken) => Ok((Some(item), woken)),
                    GetNow::Closed => Err(Error::Closed),
                    GetNow::Empty => match queues.wait_get(self.queue, task, tags.take()) {
                        Ok(waiter) => return Stage::Waiting(waiter),
                        Err(e) => Err(e),
                    },
                },
            }
        };
        // Done at once: this task goes to the back of the run queue first,
        // then the task it woke (the putter runs before its getter).
        let mut core = self.ctx.core();
        core.requeue_current();
        Stage::Yielded(now.map(|(item, woken)| {
            if let Some(woken) = woken {
                core.schedule(woken);
            }
            item
        }))
    }
}

impl Future for QueueOp<'_> {
    type Output = Result<Option<Item>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Stage::Start = this.stage {
            this.stage = this.start();
            // Waiting: fall through to the deadline check, so that a
            // zero timeout on an empty (or full) queue returns at once.
            if !matches!(this.stage, Stage::Waiting(_)) {
                return Poll::Pending;
            }
        }
        match std::mem::replace(&mut this.stage, Stage::Finished) {
            Stage::Yielded(result) => Poll::Ready(result),
            Stage::Waiting(waiter) => {
                let mut core = this.ctx.core();
                let expired = this.deadline.expired(&mut core, cx.waker());
                // A task of another shard may hand this waiter its item at
                // any moment: the result is looked at, and the waiter
                // withdrawn, under one lock, so no item is lost.
                let mut queues = this.ctx.shards.queues();
                if let Some(result) = queues.take_result(waiter) {
                    drop(queues);
                    this.deadline.clear(&mut core);
                    return Poll::Ready(result);
                }
                if expired {
                    queues.withdraw(waiter);
                    return Poll::Ready(Err(Error::Timeout));
                }
                // Woken for nothing, perhaps on another shard than before:
                // the next hand-over wakes it where it is now.
                queues.rewait(waiter, this.ctx.me());
                drop(queues);
                this.stage = Stage::Waiting(waiter);
                core.set_pending_wait(Wait::Queue);
                Poll::Pending
            }
            Stage::Start | Stage::Finished => unreachable!("polled after completion"),
        }
    }
}

impl Drop for QueueOp<'_> {
    fn drop(&mut self) {
        if let Stage::Waiting(waiter) = self.stage {
            self.ctx.shards.queues().withdraw(waiter);
        }
    }
}
