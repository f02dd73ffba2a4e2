//! The host objects a guest holds through WIT resources: a child task, a
//! queue, a socket. Each lets go of what it stands for when dropped, wherever
//! the guest dropped it (a task's end drops its whole table).

use crate::ids::{AppId, TaskKey};
use crate::queue::QueueKey;
use crate::reactor::SourceKey;
use crate::scheduler::try_with_core;

/// A guest's handle on a child task. Dropping it detaches the child.
pub struct TaskHandle {
    /// The child.
    pub(crate) key: TaskKey,
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        try_with_core(|core| core.release(self.key));
    }
}

/// A guest's handle on a queue. Dropping the last handle frees the queue.
pub struct QueueHandle {
    /// The queue.
    pub(crate) key: QueueKey,
}

impl Drop for QueueHandle {
    fn drop(&mut self) {
        try_with_core(|core| core.queues.release(self.key));
    }
}

/// A socket registered with the reactor; deregistered when dropped.
pub struct Registered<S: mio::event::Source> {
    /// The socket.
    pub(crate) io: S,
    /// Its readiness in the reactor.
    pub(crate) source: SourceKey,
    /// The app it counts against.
    pub(crate) app: AppId,
}

impl<S: mio::event::Source> Drop for Registered<S> {
    fn drop(&mut self) {
        // Outside a pass the whole reactor is going away; the socket closes
        // either way when `io` drops.
        try_with_core(|core| {
            core.reactor.deregister(self.source, &mut self.io);
            core.apps.close_socket(self.app);
        });
    }
}

/// A listening TCP socket.
pub type TcpListenerHandle = Registered<mio::net::TcpListener>;
/// A TCP connection.
pub type TcpStreamHandle = Registered<mio::net::TcpStream>;
/// A UDP socket.
pub type UdpSocketHandle = Registered<mio::net::UdpSocket>;
