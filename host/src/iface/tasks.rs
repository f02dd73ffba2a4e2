//! `mtask:task/tasks`: spawn, join, cancel, yield, sleep.

use wasmtime::component::Resource;

use crate::bindings::mtask::task::tasks::{Handle, Host, HostTask, TaskId};
use crate::bindings::mtask::task::types::{self as wit, Error, TaskError};
use std::sync::Arc;

use crate::bindings::mtask::task::tasks::Placement;
use crate::cluster::remote::{Request, cancel, cancel_slot, publish};
use crate::cluster::{Cluster, Names};
use crate::handles::{LocalTask, MonitorHandle, QueueHandle, RemoteTask, TaskHandle};
use crate::outcome;
use crate::program::task::{Handover, Payload, Start, TaskState, spawn};
use crate::shard::Holder;
use crate::waits::{Join, RemoteJoin, Sleep, YieldNow, outside};

impl Host for TaskState {
    fn spawn(
        &mut self,
        entry: String,
        payload: Vec<u8>,
        handles: Vec<Handle>,
    ) -> wasmtime::Result<Result<Resource<TaskHandle>, Error>> {
        let shards = self.ctx()?.shards.clone();
        if !self.program.has_entry(&entry) {
            return Ok(Err(Error::Invalid(format!(
                "{} has no entry `{entry}`",
                self.program.name()
            ))));
        }
        // The place first, so that a spawn refused leaves the handles
        // with the parent.
        // A task cancelled while it runs (by a `cancel-tree` sweeping
        // its shard) starts nothing more: its tree stays cancelled.
        let me = self.ctx()?.me();
        if self.ctx()?.core().being_cancelled(me) {
            return Ok(Err(Error::Cancelled));
        }
        let app = self.program.app();
        if let Err(limit) = shards.apps().reserve(app) {
            return Ok(Err(Error::Limit(limit)));
        }
        let handover = match self.take_for_child(handles) {
            Ok(handover) => handover,
            Err(e) => {
                shards.apps().unreserve(app);
                return Err(e);
            }
        };
        let shard = shards.place(self.ctx()?.me().shard);
        let entry: Arc<str> = entry.into();
        let start = Start {
            handover,
            parent: Some(self.lineage.clone()),
            ..Start::new(entry.clone(), Payload::Native(payload), Holder::Handle)
        };
        let task = spawn(&shards, shard, &self.program, start);
        Ok(Ok(self.table.push(TaskHandle::Local(LocalTask {
            task,
            shards,
            entry,
        }))?))
    }

    async fn spawn_at(
        &mut self,
        entry: String,
        payload: Vec<u8>,
        handles: Vec<Handle>,
        placement: Placement,
    ) -> wasmtime::Result<Result<Resource<TaskHandle>, Error>> {
        let shards = self.ctx()?.shards.clone();
        match (placement, shards.cluster()) {
            (Placement::Anywhere, Some(cluster)) => {
                let cluster = cluster.clone();
                self.spawn_remote(&cluster, entry, payload, handles).await
            }
            _ => self.spawn(entry, payload, handles),
        }
    }

    fn spawn_key(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.spawn_key.as_deref().map(str::to_string))
    }

    fn take_handles(&mut self) -> wasmtime::Result<Vec<Handle>> {
        let handover = std::mem::take(&mut self.handover);
        let (ctx, table) = self.parts()?;
        handover
            .into_iter()
            .map(|h| match h {
                Handover::Task(task) => Ok(Handle::Task(table.push(task)?)),
                Handover::Queue(queue) => Ok(Handle::Queue(table.push(queue)?)),
                Handover::TcpListener(mut h) => {
                    h.rehome(ctx)?;
                    Ok(Handle::TcpListener(table.push(h)?))
                }
                Handover::TcpStream(mut h) => {
                    h.rehome(ctx)?;
                    Ok(Handle::TcpStream(table.push(h)?))
                }
                Handover::UdpSocket(mut h) => {
                    h.rehome(ctx)?;
                    Ok(Handle::UdpSocket(table.push(h)?))
                }
            })
            .collect()
    }

    async fn yield_now(&mut self) -> wasmtime::Result<()> {
        YieldNow::new(self.ctx()?).await;
        Ok(())
    }

    async fn sleep(&mut self, duration: u64) -> wasmtime::Result<()> {
        Sleep::new(self.ctx()?, duration).await;
        Ok(())
    }

    fn current_id(&mut self) -> wasmtime::Result<TaskId> {
        Ok(self.ctx()?.me().id)
    }

    fn monitor(&mut self, id: TaskId) -> wasmtime::Result<Result<Resource<MonitorHandle>, Error>> {
        self.monitor_task(id)
    }

    fn link(&mut self, id: TaskId) -> wasmtime::Result<Result<(), Error>> {
        self.link_task(id)
    }

    fn report_panic(&mut self, message: String) -> wasmtime::Result<()> {
        self.panic = Some(message);
        Ok(())
    }
}

impl TaskState {
    /// Spawns `entry(payload)` anywhere in `cluster` (docs/design.md §10),
    /// handing it `handles`, which must all be named queues.
    async fn spawn_remote(
        &mut self,
        cluster: &Arc<Cluster>,
        entry: String,
        payload: Vec<u8>,
        handles: Vec<Handle>,
    ) -> wasmtime::Result<Result<Resource<TaskHandle>, Error>> {
        let shards = self.ctx()?.shards.clone();
        if !self.program.has_entry(&entry) || entry.contains(['\r', '\n']) {
            self.take_for_child(handles)?;
            return Ok(Err(Error::Invalid(format!(
                "{} has no entry `{entry}`",
                self.program.name()
            ))));
        }
        let queues = match self.shared_queues(&handles)? {
            Ok(queues) => queues,
            Err(e) => {
                // The handles were given up with the call: they close.
                self.take_for_child(handles)?;
                return Ok(Err(e));
            }
        };
        let app = self.program.app();
        if let Err(limit) = shards.apps().reserve_remote(app) {
            self.take_for_child(handles)?;
            return Ok(Err(Error::Limit(limit)));
        }
        let job = cluster.new_job_id();
        let names = Names::of(self.program.tenant());
        // Made before the request goes out: if this task is cancelled while
        // it waits, the handle's drop gives the place back.
        let mut task = RemoteTask {
            id: shards.next_id(),
            entry: entry.as_str().into(),
            job: job.clone(),
            seq: 0,
            slot: cluster.waiting.add(&job),
            names: names.clone(),
            app,
            shards,
        };
        let request = Request {
            job,
            entry,
            payload,
            queues,
            reply: names.results_subject(cluster.host()),
        };
        let (code, cluster) = (self.program.digest().to_string(), cluster.clone());
        let published = outside(self.ctx()?, move |tx| async move {
            let sent = match cluster.waiting.watch(&cluster, &names).await {
                Ok(()) => publish(&cluster, &names, &code, &request).await,
                Err(e) => Err(e),
            };
            let _ = tx.send(sent);
        })
        .await?;
        // The handles were given up with the call: they close here (the
        // queues went with the request).
        self.take_for_child(handles)?;
        task.seq = match published {
            Ok(seq) => seq,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(self.table.push(TaskHandle::Remote(task))?))
    }

    /// The name and `maxsize` of each queue in `handles`, which a task on
    /// another host can open; `invalid` if a handle is anything else.
    fn shared_queues(
        &self,
        handles: &[Handle],
    ) -> wasmtime::Result<Result<Vec<(String, u32)>, Error>> {
        let mut queues = Vec::new();
        for handle in handles {
            let why = match handle {
                Handle::Queue(queue) => match self.table.get(queue)? {
                    QueueHandle::Cluster { handle, .. } => {
                        queues.push((handle.queue.name.clone(), handle.queue.maxsize));
                        continue;
                    }
                    QueueHandle::Local(_) => "a queue made with `create` lives on one host: \
                                             open a queue by name to hand it to a task placed anywhere"
                        .to_string(),
                },
                other => format!(
                    "a {} cannot be handed to a task placed anywhere: it lives on one host",
                    handle_kind(other)
                ),
            };
            return Ok(Err(Error::Invalid(why)));
        }
        Ok(Ok(queues))
    }

    /// Takes `handles` out of this task's table, to hand to a child.
    fn take_for_child(&mut self, handles: Vec<Handle>) -> wasmtime::Result<Vec<Handover>> {
        let table = &mut self.table;
        handles
            .into_iter()
            .map(|handle| {
                Ok(match handle {
                    Handle::Task(h) => Handover::Task(table.delete(h)?),
                    Handle::Queue(h) => Handover::Queue(table.delete(h)?),
                    Handle::TcpListener(h) => Handover::TcpListener(table.delete(h)?),
                    Handle::TcpStream(h) => Handover::TcpStream(table.delete(h)?),
                    Handle::UdpSocket(h) => Handover::UdpSocket(table.delete(h)?),
                })
            })
            .collect()
    }
}

impl HostTask for TaskState {
    fn id(&mut self, task: Resource<TaskHandle>) -> wasmtime::Result<TaskId> {
        Ok(match self.table.get(&task)? {
            TaskHandle::Local(local) => local.task.key().id,
            TaskHandle::Remote(remote) => remote.id,
        })
    }

    fn entry(&mut self, task: Resource<TaskHandle>) -> wasmtime::Result<String> {
        Ok(match self.table.get(&task)? {
            TaskHandle::Local(local) => local.entry.to_string(),
            TaskHandle::Remote(remote) => remote.entry.to_string(),
        })
    }

    async fn join(
        &mut self,
        task: Resource<TaskHandle>,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<Result<Vec<u8>, TaskError>, Error>> {
        let ctx = self.ctx()?;
        let joined = match self.table.get(&task)? {
            TaskHandle::Local(local) => Join::new(ctx, &local.task, timeout).await,
            TaskHandle::Remote(remote) => RemoteJoin::new(ctx, &remote.slot, timeout).await,
        };
        Ok(joined.map(|outcome| outcome.map_err(Into::into)))
    }

    fn cancel(&mut self, task: Resource<TaskHandle>) -> wasmtime::Result<()> {
        let shards = &self.ctx()?.shards;
        let child = match self.table.get(&task)? {
            TaskHandle::Local(local) => &local.task,
            TaskHandle::Remote(remote) => {
                cancel_slot(&remote.slot);
                if let Some(cluster) = shards.cluster() {
                    let (names, job) = (remote.names.clone(), remote.job.clone());
                    let work = cancel(cluster.clone(), names, job, remote.seq);
                    crate::engine::tokio_runtime().spawn(work);
                }
                return Ok(());
            }
        };
        // Its store (and the handles in it) drops on its shard's thread,
        // with no fiber of a task running: after this poll, or in that
        // shard's next pass.
        let shard = shards.with_task(child, |core, key| {
            core.cancel(key);
            key.shard
        });
        shards.all()[shard].remote.nudge();
        Ok(())
    }

    fn cancel_tree(&mut self, task: Resource<TaskHandle>) -> wasmtime::Result<()> {
        // The child first: once it is stopped, it starts no more.
        HostTask::cancel(self, Resource::new_borrow(task.rep()))?;
        self.cancel_descendants(&task)
    }

    fn drop(&mut self, task: Resource<TaskHandle>) -> wasmtime::Result<()> {
        self.table.delete(task)?;
        Ok(())
    }
}

impl crate::bindings::mtask::task::types::Host for TaskState {}

/// How a task ended, as the guest sees it (`task-error` in WIT).
impl From<outcome::TaskError> for wit::TaskError {
    fn from(e: outcome::TaskError) -> Self {
        match e {
            outcome::TaskError::Failed(m) => wit::TaskError::Failed(m),
            outcome::TaskError::Trapped(m) => wit::TaskError::Trapped(m),
            outcome::TaskError::Cancelled => wit::TaskError::Cancelled,
            outcome::TaskError::Limit(m) => wit::TaskError::Limit(m),
            // Commands have no parent to join them; said as a failure.
            exited @ outcome::TaskError::Exited(_) => wit::TaskError::Failed(exited.to_string()),
        }
    }
}

/// What a handle is, for messages.
fn handle_kind(handle: &Handle) -> &'static str {
    match handle {
        Handle::Task(_) => "task handle",
        Handle::Queue(_) => "queue",
        Handle::TcpListener(_) => "TCP listener",
        Handle::TcpStream(_) => "TCP stream",
        Handle::UdpSocket(_) => "UDP socket",
    }
}
