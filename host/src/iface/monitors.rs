//! `mtask:task/tasks`, the parts WIT 0.1.3 added: `monitor` (a
//! `task-monitor` resource), `link` and `task.cancel-tree`
//! (docs/design.md §4 row 14). A task is found by id in the shards'
//! directory and must be of the caller's app.

use std::sync::Arc;

use wasmtime::component::Resource;

use crate::bindings::mtask::task::tasks::{HostTaskMonitor, TaskId};
use crate::bindings::mtask::task::types::{Error, TaskError};
use crate::handles::{MonitorHandle, TaskHandle};
use crate::ids::TaskCell;
use crate::program::task::TaskState;
use crate::shard::Watched;
use crate::waits::WatchEnd;
use crate::watch::{Watch, Watcher};

/// Why `id` cannot be watched or linked to.
fn no_such_task(id: TaskId) -> Error {
    Error::Invalid(format!(
        "this app has no task {id} now (never started, or ended and its result taken)"
    ))
}

impl TaskState {
    /// The task `id` of this app other than the caller, and how it is.
    fn watch_task(&self, id: TaskId, watcher: Watcher) -> wasmtime::Result<Result<Watched, Error>> {
        let ctx = self.ctx()?;
        if id == ctx.me().id {
            return Ok(Err(Error::Invalid("a task cannot watch itself".into())));
        }
        let Some(cell) = ctx.shards.directory().find(id) else {
            return Ok(Err(no_such_task(id)));
        };
        let app = self.program.app();
        let found = ctx
            .shards
            .with_task(&cell, |core, key| core.watch(key, app, watcher));
        Ok(found.ok_or_else(|| no_such_task(id)))
    }

    /// `monitor`: a watch on the end of task `id`.
    pub(crate) fn monitor_task(
        &mut self,
        id: TaskId,
    ) -> wasmtime::Result<Result<Resource<MonitorHandle>, Error>> {
        let watch = Arc::new(Watch::default());
        match self.watch_task(id, Watcher::Monitor(Arc::downgrade(&watch)))? {
            Err(e) => return Ok(Err(e)),
            Ok(Watched::Ended(end)) => watch.ended(end),
            Ok(Watched::Running) => {}
        }
        Ok(Ok(self.table.push(MonitorHandle { id, watch })?))
    }

    /// `link`: the caller is cancelled if task `id` fails.
    pub(crate) fn link_task(&mut self, id: TaskId) -> wasmtime::Result<Result<(), Error>> {
        let me: Arc<TaskCell> = self.ctx()?.cell.clone();
        match self.watch_task(id, Watcher::Link(me.clone()))? {
            Err(e) => Ok(Err(e)),
            Ok(Watched::Ended(Err(_))) => {
                // Failed already: the caller ends at its next wait.
                let shards = &self.ctx()?.shards;
                shards.with_task(&me, |core, key| core.cancel(key));
                Ok(Ok(()))
            }
            Ok(_) => Ok(Ok(())),
        }
    }

    /// `task.cancel-tree`: cancels the child (as `cancel` did already)
    /// and every task of this app that descends from it, on every shard.
    pub(crate) fn cancel_descendants(
        &mut self,
        task: &Resource<TaskHandle>,
    ) -> wasmtime::Result<()> {
        let TaskHandle::Local(local) = self.table.get(task)? else {
            return Ok(()); // a remote child is cancelled alone
        };
        let root = local.task.key().id;
        let (app, shards) = (self.program.app(), &self.ctx()?.shards);
        // One shard's core at a time, until a sweep finds nothing new: a
        // descendant polled on another thread meanwhile may have started
        // a task on a shard already swept (it can start none once
        // flagged), or a queued one may have moved to such a shard.
        loop {
            let mut found = 0;
            for shard in shards.all() {
                // Its cancelled tasks' stores drop in its next pass, which
                // the nudge brings on.
                let cancelled = shard.core().cancel_descendants(root, app);
                if cancelled > 0 {
                    shard.remote.nudge();
                }
                found += cancelled;
            }
            if found == 0 {
                return Ok(());
            }
        }
    }
}

impl HostTaskMonitor for TaskState {
    fn id(&mut self, monitor: Resource<MonitorHandle>) -> wasmtime::Result<TaskId> {
        Ok(self.table.get(&monitor)?.id)
    }

    async fn wait(
        &mut self,
        monitor: Resource<MonitorHandle>,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<Result<(), TaskError>, Error>> {
        let watch = self.table.get(&monitor)?.watch.clone();
        let ended = WatchEnd::new(self.ctx()?, &watch, timeout).await;
        Ok(ended.map(|end| end.map_err(Into::into)))
    }

    fn drop(&mut self, monitor: Resource<MonitorHandle>) -> wasmtime::Result<()> {
        self.table.delete(monitor)?;
        Ok(())
    }
}
