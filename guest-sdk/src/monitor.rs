//! Watching other tasks of this app end (WIT 0.1.3): [`monitor`] tells
//! how a task ended without taking its value, [`link`] cancels this task
//! if another fails. Ids come from [`Task::id`](crate::Task::id) or
//! [`current_id`](crate::current_id), and travel in arguments and queues.

use std::time::Duration;

use crate::{Result, TaskError, nanos, timed, wit};

/// A watch on another task's end, from [`monitor`]. Dropping it stops the
/// watch.
pub struct TaskMonitor(wit::TaskMonitor);

impl TaskMonitor {
    /// The watched task's id.
    pub fn id(&self) -> u64 {
        self.0.id()
    }

    /// Waits until the task has ended and says how: `Ok(())` if its entry
    /// returned a value (which goes to whoever joins it), else how it
    /// failed. Can be asked again, and says the same.
    pub fn wait(&self) -> std::result::Result<(), TaskError> {
        self.wait_inner(None)
            .expect("a wait without a timeout ends only with the task")
    }

    /// Like [`wait`](Self::wait), but gives up with
    /// [`Error::Timeout`](crate::Error::Timeout) after `timeout`; the watch
    /// goes on.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<std::result::Result<(), TaskError>> {
        self.wait_inner(Some(timeout))
    }

    fn wait_inner(&self, timeout: Option<Duration>) -> Result<std::result::Result<(), TaskError>> {
        let ended = timed(
            "TaskMonitor::wait_timeout",
            timeout,
            self.0.wait(timeout.map(nanos)),
        )?;
        Ok(ended.map_err(Into::into))
    }
}

/// Watches the task `id` of this app: one that runs, or one that ended
/// whose result nobody has taken yet. The watched task is not told.
///
/// [`Error::Invalid`](crate::Error::Invalid) if the app has no such task
/// now, or `id` is this task's own.
pub fn monitor(id: u64) -> Result<TaskMonitor> {
    Ok(TaskMonitor(wit::monitor(id)?))
}

/// Links this task to the task `id` of this app: if that one fails (with
/// any [`TaskError`], `Cancelled` included), this one is cancelled, as if
/// its holder cancelled it. One way: link both for both ways. Linking to a
/// task that failed already cancels this one at its next wait.
///
/// [`Error::Invalid`](crate::Error::Invalid) as for [`monitor`].
pub fn link(id: u64) -> Result<()> {
    Ok(wit::link(id)?)
}
