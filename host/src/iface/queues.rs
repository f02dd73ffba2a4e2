//! `mtask:task/queues`: bounded FIFO queues between the tasks of an app.
//!
//! A `put` or `get` that can complete at once still suspends its task for
//! one pass, as a yield: that is what gives multitask's interleaving (the
//! putter runs before the getter it woke, docs/design.md §4 row 10).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use wasmtime::component::Resource;

use crate::bindings::mtask::task::queues::{Host, HostQueue, Item as WitItem};
use crate::bindings::mtask::task::types::Error;
use crate::handles::QueueHandle;
use crate::outcome::OverLimit;
use crate::program::task::TaskCtx;
use crate::program::task::TaskState;
use crate::queue::{GetNow, Item, PutNow, QueueKey, WaiterKey, tag_set};
use crate::shard::Wait;
use crate::waits::Deadline;

impl TaskState {
    fn queue_key(&self, queue: &Resource<QueueHandle>) -> wasmtime::Result<QueueKey> {
        Ok(self.table.get(queue)?.key)
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
            Ok(key) => Ok(Ok(self.table.push(QueueHandle { key, shards })?)),
            Err(e) => Ok(Err(e)),
        }
    }

    fn open(
        &mut self,
        name: String,
        maxsize: u32,
    ) -> wasmtime::Result<Result<Resource<QueueHandle>, Error>> {
        let shards = self.ctx()?.shards.clone();
        let opened = shards.queues().open(self.program.app(), &name, maxsize);
        match opened {
            Ok(key) => Ok(Ok(self.table.push(QueueHandle { key, shards })?)),
            Err(e) => Ok(Err(e)),
        }
    }

    fn clone(&mut self, queue: Resource<QueueHandle>) -> wasmtime::Result<Resource<QueueHandle>> {
        let shards = self.ctx()?.shards.clone();
        let key = self.queue_key(&queue)?;
        // `clone` has no error value: a handle past the app's bytes ends
        // the task, as memory past its limit does.
        let retained = shards.queues().retain(key);
        match retained {
            Ok(()) => {}
            Err(Error::Limit(why)) => return Err(wasmtime::Error::new(OverLimit(why))),
            Err(other) => return Err(wasmtime::Error::msg(format!("{other:?}"))),
        }
        Ok(self.table.push(QueueHandle { key, shards })?)
    }

    async fn put(
        &mut self,
        queue: Resource<QueueHandle>,
        item: WitItem,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let key = self.queue_key(&queue)?;
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
        let key = self.queue_key(&queue)?;
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
        let key = self.queue_key(&queue)?;
        let op = Op::Get(Some(tag_set(tags)));
        Ok(QueueOp::new(self.ctx()?, key, op, timeout)
            .await
            .map(|item| item.expect("a get yields an item").into()))
    }

    fn try_put(
        &mut self,
        queue: Resource<QueueHandle>,
        item: WitItem,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let key = self.queue_key(&queue)?;
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

    fn try_get(
        &mut self,
        queue: Resource<QueueHandle>,
    ) -> wasmtime::Result<Result<Option<WitItem>, Error>> {
        let key = self.queue_key(&queue)?;
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

    fn len(&mut self, queue: Resource<QueueHandle>) -> wasmtime::Result<u32> {
        let key = self.queue_key(&queue)?;
        Ok(self.ctx()?.shards.queues().len(key) as u32)
    }

    fn is_empty(&mut self, queue: Resource<QueueHandle>) -> wasmtime::Result<bool> {
        Ok(self.len(queue)? == 0)
    }

    fn is_full(&mut self, queue: Resource<QueueHandle>) -> wasmtime::Result<bool> {
        let key = self.queue_key(&queue)?;
        Ok(self.ctx()?.shards.queues().is_full(key))
    }

    fn close(&mut self, queue: Resource<QueueHandle>) -> wasmtime::Result<()> {
        let key = self.queue_key(&queue)?;
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
