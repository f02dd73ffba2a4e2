//! The host objects a guest holds through WIT resources: a child task, a
//! queue, a socket. Each lets go of what it stands for when dropped, wherever
//! the guest dropped it (a task's end drops its whole table), so each holds
//! the way to the shard or the state that keeps it.

use std::sync::Arc;

use crate::ids::{AppId, TaskCell};
use crate::queue::QueueKey;
use crate::shard::reactor::SourceKey;
use crate::shards::Shards;

/// A guest's handle on a child task. Dropping it detaches the child.
pub struct TaskHandle {
    /// The child, wherever it runs.
    pub(crate) task: Arc<TaskCell>,
    /// The shards it may run on.
    pub(crate) shards: Arc<Shards>,
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        self.shards
            .with_task(&self.task, |core, key| core.release(key));
    }
}

/// A guest's handle on a queue. Dropping the last handle frees the queue.
pub struct QueueHandle {
    /// The queue.
    pub(crate) key: QueueKey,
    /// Where the queues are kept.
    pub(crate) shards: Arc<Shards>,
}

impl Drop for QueueHandle {
    fn drop(&mut self) {
        self.shards.queues().release(self.key);
    }
}

/// A socket registered with the reactor of one shard; deregistered when
/// dropped.
pub struct Registered<S: mio::event::Source> {
    /// The socket.
    pub(crate) io: S,
    /// Its readiness in the reactor of shard `shard`.
    pub(crate) source: SourceKey,
    /// The shard whose reactor it is registered with.
    pub(crate) shard: usize,
    /// The app it counts against.
    pub(crate) app: AppId,
    /// Where its shard and its app's count are.
    pub(crate) shards: Arc<Shards>,
}

impl<S: mio::event::Source> Drop for Registered<S> {
    fn drop(&mut self) {
        // The socket closes when `io` drops, right after.
        self.shards.all()[self.shard]
            .core()
            .reactor
            .deregister(self.source, &mut self.io);
        self.shards.apps().close_socket(self.app);
    }
}

/// A listening TCP socket.
pub type TcpListenerHandle = Registered<mio::net::TcpListener>;
/// A TCP connection.
pub type TcpStreamHandle = Registered<mio::net::TcpStream>;
/// A UDP socket.
pub type UdpSocketHandle = Registered<mio::net::UdpSocket>;
