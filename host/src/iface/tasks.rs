//! `mtask:task/tasks`: spawn, join, cancel, yield, sleep.

use std::sync::Arc;

use wasmtime::component::Resource;

use crate::bindings::mtask::task::tasks::{Handle, Host, HostTask, TaskId};
use crate::bindings::mtask::task::types::{self as wit, Error, TaskError};
use crate::handles::TaskHandle;
use crate::outcome;
use crate::program::task::{Handover, TaskState, task_future};
use crate::scheduler::{Holder, ensure_in_pass, with_core};
use crate::waits::{Join, Sleep, YieldNow};

impl Host for TaskState {
    fn spawn(
        &mut self,
        entry: String,
        payload: Vec<u8>,
        handles: Vec<Handle>,
    ) -> wasmtime::Result<Result<Resource<TaskHandle>, Error>> {
        ensure_in_pass()?;
        if !self.program.has_entry(&entry) {
            return Ok(Err(Error::Invalid(format!(
                "{} has no entry `{entry}`",
                self.program.name()
            ))));
        }
        if let Err(limit) = with_core(|core| core.check_capacity(self.program.app())) {
            return Ok(Err(Error::Limit(limit)));
        }
        let mut handover = Vec::with_capacity(handles.len());
        for handle in handles {
            match handle {
                Handle::Task(task) => handover.push(Handover::Task(self.table.delete(task)?)),
                Handle::Queue(queue) => handover.push(Handover::Queue(self.table.delete(queue)?)),
                Handle::TcpListener(h) => {
                    handover.push(Handover::TcpListener(self.table.delete(h)?))
                }
                Handle::TcpStream(h) => handover.push(Handover::TcpStream(self.table.delete(h)?)),
                Handle::UdpSocket(h) => handover.push(Handover::UdpSocket(self.table.delete(h)?)),
            }
        }
        let entry: Arc<str> = entry.into();
        let future = task_future(&self.program, entry.clone(), payload, handover);
        let key = with_core(|core| core.spawn(self.program.app(), entry, Holder::Handle, future));
        Ok(Ok(self.table.push(TaskHandle { key })?))
    }

    fn take_handles(&mut self) -> wasmtime::Result<Vec<Handle>> {
        let handover = std::mem::take(&mut self.handover);
        handover
            .into_iter()
            .map(|h| match h {
                Handover::Task(task) => Ok(Handle::Task(self.table.push(task)?)),
                Handover::Queue(queue) => Ok(Handle::Queue(self.table.push(queue)?)),
                Handover::TcpListener(h) => Ok(Handle::TcpListener(self.table.push(h)?)),
                Handover::TcpStream(h) => Ok(Handle::TcpStream(self.table.push(h)?)),
                Handover::UdpSocket(h) => Ok(Handle::UdpSocket(self.table.push(h)?)),
            })
            .collect()
    }

    async fn yield_now(&mut self) -> wasmtime::Result<()> {
        ensure_in_pass()?;
        YieldNow::default().await;
        Ok(())
    }

    async fn sleep(&mut self, duration: u64) -> wasmtime::Result<()> {
        ensure_in_pass()?;
        Sleep::new(duration).await;
        Ok(())
    }

    fn current_id(&mut self) -> wasmtime::Result<TaskId> {
        ensure_in_pass()?;
        Ok(with_core(|core| core.current().id))
    }

    fn report_panic(&mut self, message: String) -> wasmtime::Result<()> {
        self.panic = Some(message);
        Ok(())
    }
}

impl HostTask for TaskState {
    fn id(&mut self, task: Resource<TaskHandle>) -> wasmtime::Result<TaskId> {
        Ok(self.table.get(&task)?.key.id)
    }

    async fn join(
        &mut self,
        task: Resource<TaskHandle>,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<Result<Vec<u8>, TaskError>, Error>> {
        ensure_in_pass()?;
        let key = self.table.get(&task)?.key;
        Ok(Join::new(key, timeout)
            .await
            .map(|outcome| outcome.map_err(Into::into)))
    }

    fn cancel(&mut self, task: Resource<TaskHandle>) -> wasmtime::Result<()> {
        ensure_in_pass()?;
        let key = self.table.get(&task)?.key;
        with_core(|core| core.cancel(key));
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
        }
    }
}
