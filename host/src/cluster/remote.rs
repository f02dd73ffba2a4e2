//! A parent's side of a remote spawn (docs/design.md §10).
//!
//! The request goes on the tenant's spawn stream (work-queue retention),
//! on a subject of the component's digest, so only hosts that run the same
//! component take it. It names this host's subject on the tenant's results
//! stream; the host that ran the child publishes the outcome there and
//! acks the job only once JetStream has it. So an outcome survives a
//! reconnect of either host; one for a host that is gone is dropped with
//! the results stream's age limit.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy};
use futures_util::StreamExt;

use super::{Cluster, Names, io_error};
use crate::outcome::{Outcome, TaskError};
use crate::shard::lock;
use crate::wit_types::Error;

/// Headers of a spawn request and of its answer.
const JOB: &str = "Mtask-Job";
const ENTRY: &str = "Mtask-Entry";
const REPLY: &str = "Mtask-Reply";
const QUEUES: &str = "Mtask-Queues";
const OUTCOME: &str = "Mtask-Outcome";

/// A child to run anywhere: what the spawn stream carries.
#[derive(Debug)]
pub(crate) struct Request {
    /// Its job id: the same each time it is run (its spawn key).
    pub(crate) job: String,
    /// The entry it runs.
    pub(crate) entry: String,
    /// Its argument.
    pub(crate) payload: Vec<u8>,
    /// The named queues handed to it, with the `maxsize` each was opened with.
    pub(crate) queues: Vec<(String, u32)>,
    /// Where its outcome goes.
    pub(crate) reply: String,
}

impl Request {
    /// The message's headers and body.
    fn encode(&self) -> (HeaderMap, Vec<u8>) {
        let mut headers = HeaderMap::new();
        headers.insert(JOB, self.job.as_str());
        headers.insert(ENTRY, self.entry.as_str());
        headers.insert(REPLY, self.reply.as_str());
        let queues = serde_json::to_string(&self.queues).expect("names and sizes encode");
        headers.insert(QUEUES, queues.as_str());
        (headers, self.payload.clone())
    }

    /// The request a message carries, or why it is not one.
    pub(crate) fn decode(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Self, String> {
        let headers = headers.ok_or("a spawn request without headers")?;
        let get = |name: &str| {
            headers
                .get(name)
                .map(|v| v.as_str().to_string())
                .ok_or(format!("a spawn request without {name}"))
        };
        let queues = serde_json::from_str(&get(QUEUES)?).map_err(|e| e.to_string())?;
        Ok(Self {
            job: get(JOB)?,
            entry: get(ENTRY)?,
            payload: payload.to_vec(),
            queues,
            reply: get(REPLY)?,
        })
    }
}

/// The most spawn requests a tenant's stream holds (waiting for a host, or
/// running); a spawn past it is a `limit` error.
const MAX_JOBS: i64 = 100_000;

/// How long an outcome waits on the results stream for its parent's host
/// (one that is gone never takes it).
const RESULTS_AGE: Duration = Duration::from_secs(24 * 3600);

/// How long a host's results consumer outlives the host.
const RESULTS_IDLE: Duration = Duration::from_secs(3600);

/// The tenant's spawn stream, made on first use.
pub(crate) async fn jobs_stream(
    cluster: &Cluster,
    names: &Names,
) -> Result<stream::Stream, String> {
    cluster
        .stream(stream::Config {
            name: names.jobs_stream(),
            description: Some("mtask spawn requests".into()),
            subjects: vec![names.jobs_subject("*")],
            retention: RetentionPolicy::WorkQueue,
            max_messages: MAX_JOBS,
            discard: DiscardPolicy::New,
            ..Default::default()
        })
        .await
}

/// The tenant's results stream, made on first use.
async fn results_stream(cluster: &Cluster, names: &Names) -> Result<stream::Stream, String> {
    cluster
        .stream(stream::Config {
            name: names.results_stream(),
            description: Some("mtask outcomes of remote spawns".into()),
            subjects: vec![names.results_subject("*")],
            retention: RetentionPolicy::WorkQueue,
            max_age: RESULTS_AGE,
            ..Default::default()
        })
        .await
}

/// Puts `request` on the spawn stream for component `code`; returns its
/// sequence number there (to withdraw it on cancel).
pub(crate) async fn publish(
    cluster: &Cluster,
    names: &Names,
    code: &str,
    request: &Request,
) -> Result<u64, Error> {
    let (headers, body) = request.encode();
    let max = cluster.client().server_info().max_payload;
    if body.len() + 1024 > max {
        return Err(Error::Limit(format!(
            "an argument of {} bytes is more than the NATS server takes in one message ({max})",
            body.len()
        )));
    }
    let body: bytes::Bytes = body.into();
    let send = || async {
        let subject = names.jobs_subject(code);
        match cluster
            .js()
            .publish_with_headers(subject, headers.clone(), body.clone())
            .await
        {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        }
    };
    let mut acked = send().await;
    // The first spawn of a tenant finds no stream: it makes it, once.
    if matches!(&acked, Err(e) if e.kind() == PublishErrorKind::StreamNotFound) {
        jobs_stream(cluster, names)
            .await
            .map_err(|e| io_error("spawn", e))?;
        acked = send().await;
    }
    match acked {
        Ok(ack) => Ok(ack.sequence),
        // The server's words for a stream at its limit (its error code is
        // the same for every store failure).
        Err(e) if e.to_string().contains("maximum messages exceeded") => Err(Error::Limit(
            format!("the tenant's cluster holds at most {MAX_JOBS} spawn requests"),
        )),
        Err(e) => Err(io_error("spawn", e)),
    }
}

/// Withdraws job `job` (at `seq` on the spawn stream) if no host took it
/// yet, and tells a host that runs it to cancel it.
pub(crate) async fn cancel(cluster: Arc<Cluster>, names: Names, job: String, seq: u64) {
    if let Ok(stream) = jobs_stream(&cluster, &names).await {
        let _ = stream.delete_message(seq).await;
    }
    let _ = cluster
        .client()
        .publish(names.cancel_subject(&job), Vec::new().into())
        .await;
}

/// Publishes `outcome` of job `job` on the results stream, at `reply`, and
/// waits until JetStream has it; `false` if it could not (the job is then
/// run again).
pub(crate) async fn answer(cluster: &Cluster, reply: &str, job: &str, outcome: &Outcome) -> bool {
    let (headers, body) = encode_outcome(job, outcome);
    // An outcome too big for one message would never arrive: the parent
    // learns why instead.
    let max = cluster.client().server_info().max_payload;
    let (headers, body) = if body.len() + 1024 > max {
        let why = format!(
            "its result of {} bytes is more than the NATS server takes in one message ({max})",
            body.len()
        );
        encode_outcome(job, &Err(TaskError::Limit(why)))
    } else {
        (headers, body)
    };
    // A few tries: a reconnect may be under way.
    for _ in 0..10 {
        let published = cluster
            .js()
            .publish_with_headers(reply.to_string(), headers.clone(), body.clone().into())
            .await;
        if let Ok(ack) = published
            && ack.await.is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

/// The headers and body of an answer carrying `outcome` of job `job`.
fn encode_outcome(job: &str, outcome: &Outcome) -> (HeaderMap, Vec<u8>) {
    let mut headers = HeaderMap::new();
    headers.insert(JOB, job);
    let (kind, body) = match outcome {
        Ok(bytes) => ("ok".to_string(), bytes.clone()),
        Err(TaskError::Failed(m)) => ("failed".into(), m.clone().into_bytes()),
        Err(TaskError::Trapped(m)) => ("trapped".into(), m.clone().into_bytes()),
        Err(TaskError::Cancelled) => ("cancelled".into(), Vec::new()),
        Err(TaskError::Limit(m)) => ("limit".into(), m.clone().into_bytes()),
        Err(TaskError::Exited(status)) => (format!("exited {status}"), Vec::new()),
    };
    headers.insert(OUTCOME, kind.as_str());
    (headers, body)
}

/// The outcome an answer carries.
fn outcome_of(headers: Option<&HeaderMap>, body: &[u8]) -> Option<(String, Outcome)> {
    let headers = headers?;
    let job = headers.get(JOB)?.as_str().to_string();
    let text = || String::from_utf8_lossy(body).into_owned();
    let outcome = match headers.get(OUTCOME)?.as_str() {
        "ok" => Ok(body.to_vec()),
        "failed" => Err(TaskError::Failed(text())),
        "trapped" => Err(TaskError::Trapped(text())),
        "cancelled" => Err(TaskError::Cancelled),
        "limit" => Err(TaskError::Limit(text())),
        other => Err(TaskError::Exited(
            other.strip_prefix("exited ")?.parse().ok()?,
        )),
    };
    Some((job, outcome))
}

/// Where one remote child's outcome lands.
#[derive(Default)]
pub(crate) struct Slot {
    /// The outcome, once it came; `None` again once taken.
    outcome: Option<Outcome>,
    /// Taken by a join already.
    taken: bool,
    /// The joiner to wake when it comes.
    waker: Option<Waker>,
    /// Its handle went before it ended: what to do when it does (give its
    /// place among the app's tasks back, as a detached local task does).
    orphaned: Option<Box<dyn FnOnce() + Send>>,
}

/// What a join of a remote child finds.
pub(crate) enum Found {
    Ended(Outcome),
    Running,
    Gone,
}

/// The remote children of this host's tasks that have not answered.
pub(crate) struct Waiting {
    /// Their slots, by job id.
    slots: Mutex<HashMap<String, Arc<Mutex<Slot>>>>,
    /// The tenants whose results this host takes already.
    tenants: Mutex<HashSet<String>>,
}

impl Waiting {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            slots: Mutex::new(HashMap::new()),
            tenants: Mutex::new(HashSet::new()),
        })
    }

    /// Makes sure this host takes the outcomes of the tenant `names`
    /// stands for from its results stream (a consumer of this host's
    /// subject, which outlives the host by [`RESULTS_IDLE`]).
    pub(crate) async fn watch(
        self: &Arc<Self>,
        cluster: &Cluster,
        names: &Names,
    ) -> Result<(), Error> {
        let stream_name = names.results_stream();
        if lock(&self.tenants).contains(&stream_name) {
            return Ok(());
        }
        let fail = |e: String| io_error("cannot take remote outcomes", e);
        let stream = results_stream(cluster, names).await.map_err(fail)?;
        let name = format!("parent-{}", cluster.host());
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: names.results_subject(cluster.host()),
            ack_policy: AckPolicy::Explicit,
            inactive_threshold: RESULTS_IDLE,
            ..Default::default()
        };
        let consumer: PullConsumer = stream
            .get_or_create_consumer(&name, config)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut outcomes = consumer.messages().await.map_err(|e| fail(e.to_string()))?;
        if !lock(&self.tenants).insert(stream_name) {
            return Ok(()); // another task of this host got here first
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(message) = outcomes.next().await {
                let Some(waiting) = weak.upgrade() else {
                    return;
                };
                let Ok(message) = message else { continue };
                if let Some((job, outcome)) = outcome_of(message.headers.as_ref(), &message.payload)
                {
                    waiting.arrived(&job, outcome);
                }
                let _ = message.ack().await;
            }
        });
        Ok(())
    }

    /// A slot for job `job`'s outcome.
    pub(crate) fn add(&self, job: &str) -> Arc<Mutex<Slot>> {
        let slot = Arc::new(Mutex::new(Slot::default()));
        lock(&self.slots).insert(job.to_string(), slot.clone());
        slot
    }

    /// Job `job`'s handle went: forgotten now if it ended or `never_sent`,
    /// else once it ends, when `release` runs.
    pub(crate) fn forget(&self, job: &str, never_sent: bool, release: Box<dyn FnOnce() + Send>) {
        let Some(slot) = lock(&self.slots).get(job).cloned() else {
            return release();
        };
        let mut slot = lock(&slot);
        if never_sent || slot.outcome.is_some() || slot.taken {
            drop(slot);
            lock(&self.slots).remove(job);
            release();
        } else {
            slot.orphaned = Some(release);
        }
    }

    /// Job `job` ended with `outcome` (a second outcome, from a run again
    /// after its first host seemed dead, is dropped).
    fn arrived(&self, job: &str, outcome: Outcome) {
        let Some(slot) = lock(&self.slots).get(job).cloned() else {
            return;
        };
        let mut slot = lock(&slot);
        if slot.outcome.is_some() || slot.taken {
            return;
        }
        if let Some(release) = slot.orphaned.take() {
            drop(slot);
            lock(&self.slots).remove(job);
            return release();
        }
        slot.outcome = Some(outcome);
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    }
}

/// Looks at a remote child's slot for a join: its outcome, or `waker` is
/// woken when it comes.
pub(crate) fn poll_slot(slot: &Mutex<Slot>, waker: &Waker) -> Found {
    let mut slot = lock(slot);
    if slot.taken {
        return Found::Gone;
    }
    match slot.outcome.take() {
        Some(outcome) => {
            slot.taken = true;
            Found::Ended(outcome)
        }
        None => {
            slot.waker = Some(waker.clone());
            Found::Running
        }
    }
}

/// Ends a slot as cancelled (the parent cancelled the child), unless its
/// outcome came already.
pub(crate) fn cancel_slot(slot: &Mutex<Slot>) {
    let mut slot = lock(slot);
    if slot.outcome.is_none() && !slot.taken {
        slot.outcome = Some(Err(TaskError::Cancelled));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_comes_back_as_it_went() {
        let request = Request {
            job: "h-1".into(),
            entry: "work".into(),
            payload: vec![0, 1, 255],
            queues: vec![("odd\nname\"".into(), 7)],
            reply: "mtask.host.h.results".into(),
        };
        let (headers, body) = request.encode();
        let back = Request::decode(Some(&headers), &body).unwrap();
        assert_eq!(format!("{back:?}"), format!("{request:?}"));
        assert!(Request::decode(None, &body).is_err());
    }

    #[test]
    fn every_outcome_comes_back_as_it_went() {
        let outcomes = [
            Ok(vec![1, 2]),
            Err(TaskError::Failed("f".into())),
            Err(TaskError::Trapped("t".into())),
            Err(TaskError::Cancelled),
            Err(TaskError::Limit("l".into())),
            Err(TaskError::Exited(3)),
        ];
        for outcome in outcomes {
            let (headers, body) = encode_outcome("j", &outcome);
            assert_eq!(
                outcome_of(Some(&headers), &body),
                Some(("j".into(), outcome))
            );
        }
    }
}
