//! A host's side of remote spawns (docs/design.md §10): it takes requests
//! for a component it runs from the tenant's spawn stream while it has
//! room, runs each as a local task, sends the outcome to the parent's host,
//! and only then acks the request.
//!
//! While a child runs, its request is held by a lease (progress acks). A
//! host that dies sends none, and JetStream gives the request to another
//! host once the lease runs out: the child runs again from its entry, with
//! the same spawn key (at least once). A host that stops cleanly hands
//! back the requests it runs at once (a nak).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use futures_util::StreamExt;
use tokio::sync::{Semaphore, oneshot};

use super::queue::{ClusterHandle, ClusterQueue};
use super::remote::{Request, answer, jobs_stream};
use super::{Cluster, Names};
use crate::handles::{Charge, QueueHandle};
use crate::ids::TaskCell;
use crate::outcome::{Outcome, TaskError};
use crate::program::Program;
use crate::program::task::{Handover, Job, Start, spawn};
use crate::queue::{HANDLE_COST, QUEUE_COST};
use crate::shard::{Holder, lock};
use crate::shards::Shards;

/// How long one pull for a request waits before the loop looks around.
const PULL: Duration = Duration::from_millis(500);

/// When a host takes requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Taking {
    /// Until the host stops (`run --worker`, `serve`).
    UntilStopped,
    /// While a task the embedder added is alive (`run`): a host whose main
    /// task ended finishes what it runs, then the run ends.
    WhileMainsRun,
}

/// The children this host runs, by job id: where a cancel finds them, and
/// whether one came (a child cancelled by its parent is done with, not
/// handed back).
type Running = Arc<Mutex<HashMap<String, (Arc<TaskCell>, bool)>>>;

/// Starts taking the requests for `program`, at most `slots` at once.
pub(crate) fn start(shards: Arc<Shards>, program: Program, slots: usize, taking: Taking) {
    let Some(cluster) = shards.cluster().cloned() else {
        return;
    };
    if slots == 0 {
        // A host that only hands work out.
        return;
    }
    crate::engine::tokio_runtime().spawn(async move {
        let names = Names::of(program.tenant());
        let consumer = loop {
            match consumer(&cluster, &names, &program).await {
                Ok(consumer) => break consumer,
                Err(e) => {
                    eprintln!("mtask-host: cluster: cannot take remote spawns (trying again): {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let running = Running::default();
        listen_for_cancels(&cluster, &names, &shards, &running).await;
        take(cluster, shards, program, consumer, running, slots, taking).await;
    });
}

/// The consumer of `program`'s requests, shared by every host that runs it.
async fn consumer(
    cluster: &Cluster,
    names: &Names,
    program: &Program,
) -> Result<PullConsumer, String> {
    let stream = jobs_stream(cluster, names).await?;
    let name = format!("runners-{}", program.digest());
    let config = pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: names.jobs_subject(program.digest()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: cluster.lease(),
        max_ack_pending: -1,
        ..Default::default()
    };
    let consumer = stream.get_or_create_consumer(&name, config).await;
    consumer.map_err(|e| e.to_string())
}

/// Cancels a child this host runs when its parent cancels it.
async fn listen_for_cancels(
    cluster: &Cluster,
    names: &Names,
    shards: &Arc<Shards>,
    running: &Running,
) {
    let Ok(mut cancels) = cluster.client().subscribe(names.cancels()).await else {
        return;
    };
    let (shards, running) = (shards.clone(), running.clone());
    tokio::spawn(async move {
        while let Some(cancel) = cancels.next().await {
            let job = cancel.subject.rsplit('.').next().unwrap_or_default();
            let cell = match lock(&running).get_mut(job) {
                Some((cell, cancelled)) => {
                    *cancelled = true;
                    cell.clone()
                }
                None => continue,
            };
            // Its store drops on its shard's thread, as for a local cancel.
            let shard = shards.with_task(&cell, |core, key| {
                core.cancel(key);
                key.shard
            });
            shards.all()[shard].remote.nudge();
        }
    });
}

/// The loop that takes requests while this host should and has room.
async fn take(
    cluster: Arc<Cluster>,
    shards: Arc<Shards>,
    program: Program,
    consumer: PullConsumer,
    running: Running,
    slots: usize,
    taking: Taking,
) {
    let room = Arc::new(Semaphore::new(slots));
    let mains = shards.apps().mains();
    let app = program.app();
    loop {
        let go_on = match taking {
            Taking::UntilStopped => true,
            Taking::WhileMainsRun => mains.load(Ordering::SeqCst) > 0,
        };
        if !go_on || shards.stop_requested() {
            return;
        }
        let Ok(permit) = room.clone().acquire_owned().await else {
            return;
        };
        let pulled = match consumer
            .batch()
            .max_messages(1)
            .expires(PULL)
            .messages()
            .await
        {
            Ok(mut batch) => batch.next().await,
            Err(_) => {
                tokio::time::sleep(PULL).await;
                continue;
            }
        };
        let Some(Ok(message)) = pulled else { continue };
        let (message, acker) = message.split();
        let request = match Request::decode(message.headers.as_ref(), &message.payload) {
            Ok(request) => request,
            Err(why) => {
                eprintln!("mtask-host: cluster: dropped a bad spawn request: {why}");
                let _ = acker.ack_with(AckKind::Term).await;
                continue;
            }
        };
        // The place among the app's tasks only now, with a request in hand:
        // a place reserved for nothing would count as a task alive. A host
        // whose main ended meanwhile hands the request back.
        let ended = taking == Taking::WhileMainsRun && mains.load(Ordering::SeqCst) == 0;
        if ended || shards.stop_requested() || shards.apps().reserve(app).is_err() {
            let _ = acker.ack_with(AckKind::Nak(None)).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let lease = cluster.leases.hold(acker);
        let (job, reply) = (request.job.clone(), request.reply.clone());
        let (tx, rx) = oneshot::channel();
        match handover(&cluster, &shards, &program, &request).await {
            Ok(handover) => {
                let start = Start {
                    entry: request.entry.into(),
                    payload: request.payload,
                    handover,
                    holder: Holder::Cluster,
                    job: Some(Job {
                        key: job.as_str().into(),
                        report: tx,
                    }),
                };
                let cell = spawn(&shards, shards.place_new(), &program, start);
                lock(&running).insert(job.clone(), (cell, false));
            }
            Err(why) => {
                shards.apps().unreserve(app);
                let _ = tx.send(Err(TaskError::Failed(why)));
            }
        }
        let (cluster, running) = (cluster.clone(), running.clone());
        tokio::spawn(async move {
            let outcome: Result<Outcome, _> = rx.await;
            let cancelled = lock(&running).remove(&job).is_some_and(|(_, c)| c);
            match outcome {
                // Cancelled by its parent, which knows already.
                Err(_) if cancelled => {
                    let _ = lease.ack_surely().await;
                }
                Ok(outcome) => {
                    // Sent (or the parent's host is gone, and nobody will
                    // join): the request is done with.
                    answer(&cluster, &reply, &job, &outcome).await;
                    let _ = lease.ack_surely().await;
                }
                // Dropped unended: this host stops. Another runs it.
                Err(_) => lease.end(true),
            }
            drop(permit);
        });
    }
}

/// The handles a request hands its child: its named queues, opened here.
async fn handover(
    cluster: &Arc<Cluster>,
    shards: &Arc<Shards>,
    program: &Program,
    request: &Request,
) -> Result<Vec<Handover>, String> {
    if !program.has_entry(&request.entry) {
        return Err(format!(
            "{} has no entry `{}`",
            program.name(),
            request.entry
        ));
    }
    let names = Names::of(program.tenant());
    let app = program.app();
    let max_bytes = shards.apps().limits(app).max_queue_bytes;
    let mut handover = Vec::new();
    for (name, maxsize) in &request.queues {
        let bytes = name.len() + HANDLE_COST + QUEUE_COST;
        shards
            .queues()
            .charge(app, bytes)
            .map_err(|e| format!("cannot take the queue {name:?}: {e:?}"))?;
        let charge = Charge {
            shards: shards.clone(),
            app,
            bytes,
        };
        let queue = ClusterQueue::open(cluster.clone(), &names, name, *maxsize, max_bytes)
            .await
            .map_err(|e| format!("cannot open the queue {name:?}: {e:?}"))?;
        let handle = QueueHandle::Cluster {
            handle: ClusterHandle::new(queue),
            _charge: charge,
        };
        handover.push(Handover::Queue(handle));
    }
    Ok(handover)
}
