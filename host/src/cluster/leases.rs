//! What this host holds of JetStream's messages (an item one of its tasks
//! took, a job it runs), kept its own by progress acks sent every third of
//! the ack wait of the consumer it came from (whoever made the consumer set
//! that, not this host). A host that dies sends none: once the ack wait
//! runs out, JetStream delivers the message again, to whichever host asks
//! next.
//!
//! The acks that end leases are sent on the runtime; [`Leases::settle`]
//! waits for them before the host goes, so a clean stop loses none.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::AckKind;
use async_nats::jetstream::message::Acker;

use crate::engine::tokio_runtime;
use crate::shard::lock;

/// How often the keeper looks for leases due a progress ack.
const TICK: Duration = Duration::from_millis(50);

/// One message held.
struct Held {
    /// Acks it.
    acker: Arc<Acker>,
    /// How often it needs a progress ack.
    every: Duration,
    /// When it got the last one (or was taken).
    last: Instant,
}

/// The messages held, by key.
pub(crate) struct Leases {
    /// Each held message.
    held: Mutex<HashMap<u64, Held>>,
    /// The key of the next message held.
    next: AtomicU64,
    /// Final acks and naks sent but not yet done.
    sending: Arc<AtomicUsize>,
}

/// One held message; acked when dropped unless ended otherwise.
pub(crate) struct Lease {
    /// Where it is kept alive.
    leases: Arc<Leases>,
    /// Its key there.
    key: u64,
}

impl Leases {
    /// An empty set, and the task that keeps its leases alive.
    pub(crate) fn start() -> Arc<Self> {
        let leases = Arc::new(Self {
            held: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            sending: Arc::default(),
        });
        let weak = Arc::downgrade(&leases);
        tokio_runtime().spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            loop {
                tick.tick().await;
                let Some(leases) = weak.upgrade() else { return };
                let now = Instant::now();
                let due: Vec<Arc<Acker>> = lock(&leases.held)
                    .values_mut()
                    .filter(|h| now - h.last >= h.every)
                    .map(|h| {
                        h.last = now;
                        h.acker.clone()
                    })
                    .collect();
                drop(leases);
                for acker in due {
                    // A failed progress ack (a reconnect under way) is
                    // tried again at the next due time, within the wait.
                    let _ = acker.ack_with(AckKind::Progress).await;
                }
            }
        });
        leases
    }

    /// Holds the message `acker` acks, taken from a consumer whose ack wait
    /// is `ack_wait`, until the lease returned ends.
    pub(crate) fn hold(self: &Arc<Self>, acker: Acker, ack_wait: Duration) -> Lease {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let held = Held {
            acker: Arc::new(acker),
            every: (ack_wait / 3).max(TICK),
            last: Instant::now(),
        };
        lock(&self.held).insert(key, held);
        Lease {
            leases: self.clone(),
            key,
        }
    }

    /// Waits, at most `limit`, until no message is held and every final
    /// ack has been sent.
    pub(crate) async fn settle(&self, limit: Duration) {
        let until = Instant::now() + limit;
        while Instant::now() < until
            && (!lock(&self.held).is_empty() || self.sending.load(Ordering::SeqCst) > 0)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A final ack under way, counted until it is done.
struct Sending(Arc<AtomicUsize>);

impl Drop for Sending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Lease {
    /// Lets go of the message: acked (done with, for good), or, with
    /// `again`, handed back for another to take at once.
    pub(crate) fn end(self, again: bool) {
        let kind = if again {
            AckKind::Nak(None)
        } else {
            AckKind::Ack
        };
        if let Some((acker, sending)) = self.take() {
            tokio_runtime().spawn(async move {
                let _ = acker.ack_with(kind).await;
                drop(sending);
            });
        }
    }

    /// Acks the message and waits until JetStream has it (so a later read
    /// of the stream no longer sees it).
    pub(crate) async fn ack_surely(self) -> Result<(), async_nats::Error> {
        match self.take() {
            Some((acker, _sending)) => acker.double_ack().await,
            None => Ok(()),
        }
    }

    /// The acker, out of the set (no more progress acks), counted as a
    /// final ack under way; `None` once taken.
    fn take(&self) -> Option<(Arc<Acker>, Sending)> {
        // Counted under the lock that removes it, so that `settle` never
        // sees it neither held nor being sent.
        let mut held = lock(&self.leases.held);
        let acker = held.remove(&self.key)?.acker;
        self.leases.sending.fetch_add(1, Ordering::SeqCst);
        Some((acker, Sending(self.leases.sending.clone())))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some((acker, sending)) = self.take() {
            tokio_runtime().spawn(async move {
                let _ = acker.ack().await;
                drop(sending);
            });
        }
    }
}
