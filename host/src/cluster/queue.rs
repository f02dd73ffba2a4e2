//! A named queue in cluster mode (docs/design.md §10): a JetStream stream
//! with work-queue retention, one per (tenant, name), and one durable pull
//! consumer that every getter of every host shares, so each item goes to
//! one getter.
//!
//! - Bounded: the stream holds at most `maxsize` messages and refuses more
//!   (discard `new`); a put on a full queue tries again, backing off, until
//!   it gets in, its deadline passes (`timeout`: nothing was added) or the
//!   queue closes. Nothing is ever dropped to make room.
//! - An item a task takes stays in the stream, held by a lease
//!   (`leases`), until that task takes its next item from the queue, lets
//!   go of its handle, or ends; only then is it acked and gone. If the
//!   task's host dies first, the lease runs out and the item is delivered
//!   again: at least once. Until then it counts toward `maxsize`.
//! - Closing moves the stream onto a subject nobody puts to, so a put finds
//!   no stream (`closed`); getters drain what is left, then get `closed`.
//! - FIFO per queue, as JetStream delivers; an item delivered again (its
//!   host died) comes back out of order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy};
use futures_util::StreamExt;
use tokio::sync::oneshot;

use super::leases::Lease;
use super::{Cluster, Names, io_error};
use crate::queue::Item;
use crate::wit_types::Error;

/// The header that carries an item's tag.
const TAG: &str = "Mtask-Tag";

/// The consumer every getter shares.
const GETTERS: &str = "getters";

/// How long one pull waits at most, before the getter looks whether the
/// queue closed.
const PULL: Duration = Duration::from_millis(250);

/// Every this many empty pulls, a getter asks the server whether the queue
/// closed even without word of it (a word lost in a reconnect).
const LOOK_EVERY: u32 = 20;

/// The longest pause between two tries of a put on a full queue, when no
/// word of room came (a getter's host died, a task ended).
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// One named queue of a tenant.
pub(crate) struct ClusterQueue {
    /// The connection.
    cluster: Arc<Cluster>,
    /// The name the tasks gave it.
    pub(crate) name: String,
    /// The `maxsize` it was opened with (the stream's own is what counts).
    pub(crate) maxsize: u32,
    /// Its stream.
    stream: stream::Stream,
    /// Where puts go.
    subject: String,
    /// Where the stream listens once closed.
    closed_subject: String,
    /// The getters' shared consumer.
    consumer: PullConsumer,
    /// Where a getter that acked an item says there is room, for putters
    /// waiting on a full queue; `None` for a queue with no bound.
    room: Option<String>,
    /// Where a close is announced to every host's getters.
    shut: String,
    /// Word of a close came (or the stream was found closed).
    closed: AtomicBool,
    /// The consumer's ack wait, which the leases of its items follow.
    ack_wait: Duration,
    /// Stops the task that listens for word of a close, when dropped.
    _watch: oneshot::Sender<()>,
}

/// A task's handle on a cluster queue; the item it holds is done with when
/// it goes.
pub struct ClusterHandle {
    /// The queue.
    pub(crate) queue: Arc<ClusterQueue>,
    /// The item this handle took last, acked at its next get, or when the
    /// handle goes (its task ended).
    pub(crate) held: Option<Lease>,
}

impl ClusterHandle {
    /// A handle on `queue` that holds nothing.
    pub(crate) fn new(queue: Arc<ClusterQueue>) -> Self {
        Self { queue, held: None }
    }
}

impl Drop for ClusterHandle {
    fn drop(&mut self) {
        if let Some(lease) = self.held.take() {
            let queue = self.queue.clone();
            crate::engine::tokio_runtime().spawn(async move { queue.done_with(lease).await });
        }
    }
}

/// An item got, and the lease that holds it.
pub(crate) type Got = (Item, Lease);

impl ClusterQueue {
    /// The queue `name` of the tenant `names` stands for, made on first use
    /// with room for `maxsize` items (0: no bound) and `max_bytes` bytes.
    pub(crate) async fn open(
        cluster: Arc<Cluster>,
        names: &Names,
        name: &str,
        maxsize: u32,
        max_bytes: usize,
    ) -> Result<Arc<Self>, Error> {
        let (stream_name, subject) = (names.queue_stream(name), names.queue_subject(name));
        // One per host: its getters share one watch for a close.
        if let Some(queue) = cluster.queue(&stream_name) {
            return Ok(queue);
        }
        let config = stream::Config {
            name: stream_name.clone(),
            description: Some(format!("mtask queue {name:?}")),
            subjects: vec![subject.clone()],
            retention: RetentionPolicy::WorkQueue,
            discard: DiscardPolicy::New,
            max_messages: if maxsize == 0 { -1 } else { maxsize.into() },
            max_bytes: i64::try_from(max_bytes).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let stream = cluster
            .stream(config)
            .await
            .map_err(|e| io_error("cannot open the queue", e))?;
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                GETTERS,
                pull::Config {
                    durable_name: Some(GETTERS.into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: cluster.lease(),
                    max_ack_pending: -1,
                    max_waiting: 100_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| io_error("cannot open the queue", e))?;
        let info = stream.cached_info();
        let bounded = info.config.max_messages > 0;
        let closed_subject = names.closed_subject(name);
        let closed = info.config.subjects.contains(&closed_subject);
        let ack_wait = consumer.cached_info().config.ack_wait;
        let shut = names.shut_subject(name);
        let notices = cluster
            .client()
            .subscribe(shut.clone())
            .await
            .map_err(|e| io_error("cannot open the queue", e))?;
        let (watch, unwatched) = oneshot::channel();
        let queue = Arc::new(Self {
            room: bounded.then(|| names.room_subject(name)),
            shut,
            closed: AtomicBool::new(closed),
            ack_wait,
            _watch: watch,
            closed_subject,
            cluster: cluster.clone(),
            name: name.to_string(),
            maxsize,
            stream,
            subject,
            consumer,
        });
        tokio::spawn(watch_for_close(Arc::downgrade(&queue), notices, unwatched));
        cluster.remember_queue(&stream_name, &queue);
        Ok(queue)
    }

    /// Adds `item`, trying again while the queue is full, until `deadline`:
    /// at once when a getter says there is room, else backing off. Gives up
    /// if `tx`'s receiver goes (its task no longer waits).
    pub(crate) async fn put(
        self: Arc<Self>,
        item: Item,
        deadline: Option<Instant>,
        tx: &mut oneshot::Sender<Result<(), Error>>,
    ) -> Result<(), Error> {
        let mut pause = Duration::from_millis(1);
        let mut room = None;
        loop {
            match self.try_put(&item).await? {
                true => return Ok(()),
                false if past(deadline) => return Err(Error::Timeout),
                false => {}
            }
            if let (Some(subject), None) = (&self.room, &room) {
                // Listening from now on, so a word of room between this
                // and the next try is not missed; then try again at once.
                room = self.cluster.client().subscribe(subject.clone()).await.ok();
                if room.is_some() {
                    continue;
                }
            }
            let wait = until(deadline).map_or(pause, |left| left.min(pause));
            let word = async {
                match &mut room {
                    Some(room) => drop(room.next().await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => pause = (pause * 2).min(MAX_BACKOFF),
                () = word => {}
                () = tx.closed() => return Err(Error::Cancelled),
            }
        }
    }

    /// Acks an item taken from this queue, and says there is room to
    /// putters waiting on it.
    pub(crate) async fn done_with(&self, lease: Lease) {
        let _ = lease.ack_surely().await;
        if let Some(room) = &self.room {
            let _ = self
                .cluster
                .client()
                .publish(room.clone(), Vec::new().into())
                .await;
        }
    }

    /// Adds `item` if there is room now (`false`: the queue is full).
    pub(crate) async fn try_put(&self, item: &Item) -> Result<bool, Error> {
        let mut headers = HeaderMap::new();
        if let Some(tag) = item.tag {
            headers.insert(TAG, tag.to_string().as_str());
        }
        let data = item.data.clone().into();
        let acked = match self
            .cluster
            .js()
            .publish_with_headers(self.subject.clone(), headers, data)
            .await
        {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        let Err(e) = acked else { return Ok(true) };
        let text = e.to_string();
        match e.kind() {
            // No stream listens on the subject: the queue was closed.
            PublishErrorKind::StreamNotFound => Err(Error::Closed),
            PublishErrorKind::MaxPayloadExceeded => Err(Error::Limit(format!(
                "an item of {} bytes is more than the NATS server takes in one message",
                item.data.len()
            ))),
            _ if text.contains("maximum messages exceeded") => Ok(false),
            _ if text.contains("maximum bytes exceeded") => Err(Error::Limit(format!(
                "the cluster queue {:?} may hold at most the app's queue bytes",
                self.name
            ))),
            _ => Err(io_error("put", text)),
        }
    }

    /// Takes the front item, waiting until `deadline` for one; `closed`
    /// once the queue is closed and nothing is left to deliver. Gives up
    /// if `tx`'s receiver goes.
    pub(crate) async fn get(
        self: Arc<Self>,
        deadline: Option<Instant>,
        tx: &mut oneshot::Sender<Result<Got, Error>>,
    ) -> Result<Got, Error> {
        for pulls in 1.. {
            let wait = until(deadline).map_or(PULL, |left| left.min(PULL));
            let pulled = tokio::select! {
                pulled = self.pull(wait) => pulled?,
                () = tx.closed() => return Err(Error::Cancelled),
            };
            if let Some(got) = pulled {
                return Ok(got);
            }
            let look = self.closed.load(Ordering::SeqCst) || pulls % LOOK_EVERY == 0;
            if look && self.closed_and_empty().await? {
                return Err(Error::Closed);
            }
            if past(deadline) {
                return Err(Error::Timeout);
            }
        }
        unreachable!("the pulls go on until one returns")
    }

    /// The front item if one comes within `wait` (none waits: only what is
    /// there now).
    pub(crate) async fn pull(&self, wait: Duration) -> Result<Option<Got>, Error> {
        let batch = if wait < Duration::from_millis(1) {
            self.consumer.fetch().max_messages(1).messages().await
        } else {
            let batch = self.consumer.batch().max_messages(1).expires(wait);
            batch.messages().await
        };
        let mut batch = batch.map_err(|e| io_error("get", e))?;
        let Some(message) = batch.next().await else {
            return Ok(None);
        };
        let message = message.map_err(|e| io_error("get", e))?;
        let tag = message
            .headers
            .as_ref()
            .and_then(|h| h.get(TAG))
            .and_then(|v| v.as_str().parse().ok());
        let (message, acker) = message.split();
        let item = Item {
            tag,
            data: message.payload.to_vec(),
        };
        Ok(Some((item, self.cluster.leases.hold(acker, self.ack_wait))))
    }

    /// Whether the queue was closed and no item is left in it: none
    /// queued, and none held by a getter (whose host may die and give it
    /// back).
    async fn closed_and_empty(&self) -> Result<bool, Error> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| io_error("get", e))?;
        if !info.config.subjects.contains(&self.closed_subject) {
            return Ok(false);
        }
        self.closed.store(true, Ordering::SeqCst);
        Ok(info.state.messages == 0)
    }

    /// Items queued and not yet taken by any getter.
    pub(crate) async fn len(&self) -> Result<u64, Error> {
        let mut consumer = self.consumer.clone();
        let info = consumer.info().await.map_err(|e| io_error("len", e))?;
        Ok(info.num_pending)
    }

    /// Whether a put would wait: the stream holds `maxsize` messages
    /// (items queued, and items taken whose takers have not acked them).
    pub(crate) async fn is_full(&self) -> Result<bool, Error> {
        let info = self
            .stream
            .get_info()
            .await
            .map_err(|e| io_error("is-full", e))?;
        let max = info.config.max_messages;
        Ok(max >= 0 && info.state.messages >= max as u64)
    }

    /// Closes the queue for every host: puts fail from now on, getters
    /// drain what is left.
    pub(crate) async fn close(&self) -> Result<(), Error> {
        let mut info = self
            .stream
            .get_info()
            .await
            .map_err(|e| io_error("close", e))?;
        if info.config.subjects == [self.closed_subject.clone()] {
            return Ok(());
        }
        info.config.subjects = vec![self.closed_subject.clone()];
        self.cluster
            .js()
            .update_stream(info.config)
            .await
            .map_err(|e| io_error("close", e))?;
        // Getters everywhere look at once rather than at their next look.
        let client = self.cluster.client();
        let _ = client.publish(self.shut.clone(), Vec::new().into()).await;
        Ok(())
    }
}

/// Marks `queue` closed when word of a close comes, until the queue goes.
async fn watch_for_close(
    queue: Weak<ClusterQueue>,
    mut notices: async_nats::Subscriber,
    mut unwatched: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            notice = notices.next() => match (notice, queue.upgrade()) {
                (Some(_), Some(queue)) => queue.closed.store(true, Ordering::SeqCst),
                _ => return,
            },
            _ = &mut unwatched => return,
        }
    }
}

/// Whether `deadline` has passed.
fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// The time left until `deadline`, if any.
fn until(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}
