//! The host objects a guest holds through WIT resources: a child task, a
//! queue, a socket. Each lets go of what it stands for when dropped, wherever
//! the guest dropped it (a task's end drops its whole table), so each holds
//! the way to the shard or the state that keeps it.

use std::sync::{Arc, Mutex};

use crate::cluster::Names;
use crate::cluster::queue::{ClusterHandle, ClusterQueue};
use crate::cluster::remote::Slot;
use crate::ids::{AppId, TaskCell};
use crate::listeners::Claim;
use crate::queue::{HANDLE_COST, QueueKey};
use crate::shard::reactor::SourceKey;
use crate::shards::Shards;
use crate::wit_types::Error;
use wasmtime_wasi::p2::bindings::sockets::network::ErrorCode;

/// A guest's handle on a child task: one of this host, or one placed
/// anywhere in the cluster. Dropping it detaches the child.
pub enum TaskHandle {
    /// A task of this host.
    Local(LocalTask),
    /// A task placed anywhere in the cluster.
    Remote(RemoteTask),
}

/// A guest's watch on a task's end (`monitor`, WIT 0.1.3).
pub struct MonitorHandle {
    /// The watched task's id.
    pub(crate) id: u64,
    /// Where its end arrives.
    pub(crate) watch: Arc<crate::watch::Watch>,
}

/// A handle on a task of this host.
pub struct LocalTask {
    /// The child, wherever it runs.
    pub(crate) task: Arc<TaskCell>,
    /// The shards it may run on.
    pub(crate) shards: Arc<Shards>,
    /// The entry it runs.
    pub(crate) entry: Arc<str>,
}

/// A child placed anywhere in the cluster, as its parent's host knows it
/// (docs/design.md §10).
pub struct RemoteTask {
    /// Its id on this host (`task.id`).
    pub(crate) id: u64,
    /// The entry it runs.
    pub(crate) entry: Arc<str>,
    /// Its job id in the cluster (its `spawn-key`).
    pub(crate) job: String,
    /// Its request's place on the tenant's spawn stream; 0 until it is
    /// there.
    pub(crate) seq: u64,
    /// Where its outcome lands.
    pub(crate) slot: Arc<Mutex<Slot>>,
    /// Its tenant's streams and subjects.
    pub(crate) names: Names,
    /// The app whose place among its tasks it holds here.
    pub(crate) app: AppId,
    /// Where that place and the cluster are.
    pub(crate) shards: Arc<Shards>,
}

impl Drop for RemoteTask {
    fn drop(&mut self) {
        // Its place among the app's tasks is given back once it ended (as
        // for a detached local task), or now if it was never sent.
        let (shards, app) = (Arc::downgrade(&self.shards), self.app);
        let release = Box::new(move || {
            if let Some(shards) = shards.upgrade() {
                shards.apps().outcome_taken(app);
            }
        });
        match self.shards.cluster() {
            Some(cluster) => cluster.waiting.forget(&self.job, self.seq == 0, release),
            None => release(),
        }
    }
}

impl Drop for LocalTask {
    fn drop(&mut self) {
        self.shards
            .with_task(&self.task, |core, key| core.release(key));
    }
}

/// A guest's handle on a queue: one of this host, or, in cluster mode, a
/// named queue that every host of the tenant shares.
pub enum QueueHandle {
    /// A queue in this host's memory.
    Local(LocalQueue),
    /// A named queue in the cluster.
    Cluster {
        /// The queue, and the item taken last.
        handle: ClusterHandle,
        /// What the handle costs its app here, given back when it goes.
        _charge: Charge,
    },
}

/// Bytes counted against an app's queue bytes while a handle lives.
pub struct Charge {
    /// Where the count is kept.
    pub(crate) shards: Arc<Shards>,
    /// The app charged.
    pub(crate) app: AppId,
    /// How much.
    pub(crate) bytes: usize,
}

/// A handle on the cluster queue `name` of `app`, in the tenant `names`
/// stands for: the name counts against the app's queue bytes for its life,
/// the handle while it lives. Runs on the cluster's runtime.
pub(crate) async fn open_shared_queue(
    shards: Arc<Shards>,
    app: AppId,
    names: Names,
    name: String,
    maxsize: u32,
) -> Result<QueueHandle, Error> {
    let cluster = shards.cluster().expect("cluster mode").clone();
    shards.queues().charge_name(app, &name)?;
    let max_bytes = shards.apps().limits(app).max_queue_bytes;
    let queue = ClusterQueue::open(cluster, &names, &name, maxsize, max_bytes).await?;
    shared_queue_handle(shards, app, queue)
}

/// A new handle of `app` on the cluster queue `queue`, counted against the
/// app's queue bytes while it lives (for `open` and `clone`).
pub(crate) fn shared_queue_handle(
    shards: Arc<Shards>,
    app: AppId,
    queue: Arc<ClusterQueue>,
) -> Result<QueueHandle, Error> {
    shards.queues().charge(app, HANDLE_COST)?;
    Ok(QueueHandle::Cluster {
        handle: ClusterHandle::new(queue),
        _charge: Charge {
            shards,
            app,
            bytes: HANDLE_COST,
        },
    })
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.shards.queues().refund(self.app, self.bytes);
    }
}

/// A handle on a queue of this host. Dropping the last handle frees the queue.
pub struct LocalQueue {
    /// The queue.
    pub(crate) key: QueueKey,
    /// Where the queues are kept.
    pub(crate) shards: Arc<Shards>,
}

impl Drop for LocalQueue {
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

/// A listening TCP socket, and its hold on the socket the host keeps for
/// the tenant's next version (`listeners`; none for port 0).
pub struct TcpListenerHandle {
    /// The socket, registered with a reactor.
    pub(crate) socket: Registered<mio::net::TcpListener>,
    /// The host's copy of it, held while the handle lives.
    pub(crate) claim: Option<Claim>,
}

impl TcpListenerHandle {
    /// Set once its app is retired (replaced, or its tenant removed): it
    /// accepts no more. `None`: it is never retired (port 0).
    pub(crate) fn retired(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        self.claim.as_ref().map(Claim::flag)
    }
}

impl std::ops::Deref for TcpListenerHandle {
    type Target = Registered<mio::net::TcpListener>;

    fn deref(&self) -> &Self::Target {
        &self.socket
    }
}

impl std::ops::DerefMut for TcpListenerHandle {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.socket
    }
}
/// A TCP connection.
pub type TcpStreamHandle = Registered<mio::net::TcpStream>;
/// A UDP socket.
pub type UdpSocketHandle = Registered<mio::net::UdpSocket>;

/// The WASI sockets a task has open, counted in its app's socket limit.
pub(crate) struct WasiSockets {
    /// Where the app's count is; `None` outside a task (the instance that
    /// lists a program's entries is nobody's and counts nothing).
    shards: Option<Arc<Shards>>,
    /// The app the sockets count against.
    app: AppId,
    /// How many are open.
    open: usize,
}

impl WasiSockets {
    pub(crate) fn new(shards: Option<Arc<Shards>>, app: AppId) -> Self {
        Self {
            shards,
            app,
            open: 0,
        }
    }

    /// Counts one more socket, unless the app has as many as it may.
    pub(crate) fn open(&mut self) -> Result<(), ErrorCode> {
        if let Some(shards) = &self.shards {
            shards
                .apps()
                .open_socket(self.app)
                .map_err(|_| ErrorCode::NewSocketLimit)?;
        }
        self.open += 1;
        Ok(())
    }

    /// Counts one socket fewer.
    pub(crate) fn close(&mut self) {
        self.open = self.open.saturating_sub(1);
        if let Some(shards) = &self.shards {
            shards.apps().close_socket(self.app);
        }
    }
}

impl Drop for WasiSockets {
    /// A task that ends drops its sockets with its store, without their
    /// destructors: they are uncounted here.
    fn drop(&mut self) {
        while self.open > 0 {
            self.close();
        }
    }
}
