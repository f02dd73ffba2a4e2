//! What this host holds of JetStream's messages (an item one of its tasks
//! took, a job it runs), kept its own by progress acks sent every third of
//! the lease. A host that dies sends none: once the lease runs out,
//! JetStream delivers the message again, to whichever host asks next.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::message::Acker;

use crate::engine::tokio_runtime;
use crate::shard::lock;

/// The messages held, by key.
pub(crate) struct Leases {
    /// Each held message's acker.
    held: Mutex<HashMap<u64, Arc<Acker>>>,
    /// The key of the next message held.
    next: AtomicU64,
}

/// One held message; acked when dropped unless let go of otherwise.
pub(crate) struct Lease {
    /// Where it is kept alive.
    leases: Arc<Leases>,
    /// Its key there.
    key: u64,
}

impl Leases {
    /// An empty set whose messages get a progress ack every third of `lease`.
    pub(crate) fn start(lease: Duration) -> Arc<Self> {
        let leases = Arc::new(Self {
            held: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&leases);
        let every = (lease / 3).max(Duration::from_millis(100));
        tokio_runtime().spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(leases) = weak.upgrade() else { return };
                let held: Vec<Arc<Acker>> = lock(&leases.held).values().cloned().collect();
                drop(leases);
                for acker in held {
                    // A failed progress ack (a reconnect under way) is
                    // tried again next tick, well within the lease.
                    let _ = acker.ack_with(AckKind::Progress).await;
                }
            }
        });
        leases
    }

    /// Holds the message `acker` acks, until the lease returned is dropped.
    pub(crate) fn hold(self: &Arc<Self>, acker: Acker) -> Lease {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.held).insert(key, Arc::new(acker));
        Lease {
            leases: self.clone(),
            key,
        }
    }
}

impl Lease {
    /// Lets go of the message: acked (done with, for good), or, with
    /// `again`, handed back for another to take at once.
    pub(crate) fn end(self, again: bool) {
        // Taken out here, the drop that follows finds nothing to ack.
        if let Some(acker) = self.take() {
            let kind = if again {
                AckKind::Nak(None)
            } else {
                AckKind::Ack
            };
            tokio_runtime().spawn(async move {
                let _ = acker.ack_with(kind).await;
            });
        }
    }

    /// Acks the message and waits until JetStream has it (so a later read
    /// of the stream no longer sees it).
    pub(crate) async fn ack_surely(self) -> Result<(), async_nats::Error> {
        match self.take() {
            Some(acker) => acker.double_ack().await,
            None => Ok(()),
        }
    }
}

impl Lease {
    /// The acker, out of the set (no more progress acks); `None` once taken.
    fn take(&self) -> Option<Arc<Acker>> {
        lock(&self.leases.held).remove(&self.key)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(acker) = self.take() {
            tokio_runtime().spawn(async move {
                let _ = acker.ack().await;
            });
        }
    }
}
