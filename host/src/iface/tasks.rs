//! `mtask:task/tasks`: spawn, join, cancel, yield, sleep.

use wasmtime::component::Resource;

use crate::bindings::mtask::task::tasks::{Handle, Host, HostTask, TaskId};
use crate::bindings::mtask::task::types::{self as wit, Error, TaskError};
use crate::handles::TaskHandle;
use crate::outcome;
use crate::program::task::{Handover, TaskState, spawn};
use crate::shard::Holder;
use crate::waits::{Join, Sleep, YieldNow};

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
        let entry = entry.into();
        let task = spawn(
            &shards,
            shard,
            &self.program,
            entry,
            payload,
            handover,
            Holder::Handle,
        );
        Ok(Ok(self.table.push(TaskHandle { task, shards })?))
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

    fn report_panic(&mut self, message: String) -> wasmtime::Result<()> {
        self.panic = Some(message);
        Ok(())
    }
}

impl TaskState {
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
        Ok(self.table.get(&task)?.task.key().id)
    }

    async fn join(
        &mut self,
        task: Resource<TaskHandle>,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<Result<Vec<u8>, TaskError>, Error>> {
        let ctx = self.ctx()?;
        let child = &self.table.get(&task)?.task;
        Ok(Join::new(ctx, child, timeout)
            .await
            .map(|outcome| outcome.map_err(Into::into)))
    }

    fn cancel(&mut self, task: Resource<TaskHandle>) -> wasmtime::Result<()> {
        let shards = &self.ctx()?.shards;
        let child = &self.table.get(&task)?.task;
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
