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
use async_nats::jetstream::message::Acker;
use futures_util::StreamExt;
use tokio::sync::{Semaphore, oneshot};

use super::remote::{Request, answer, jobs_stream};
use super::{Cluster, Names};
use crate::handles::open_shared_queue;
use crate::ids::TaskCell;
use crate::outcome::{Outcome, TaskError};
use crate::program::Program;
use crate::program::task::{Handover, Payload, Start, spawn};
use crate::say::say;
use crate::shard::{Holder, lock};
use crate::shards::Shards;

/// How long one pull for a request waits before the loop looks around.
const PULL: Duration = Duration::from_millis(500);

/// How long a request this host cannot take now waits before JetStream
/// offers it again (to any host).
const NAK_DELAY: Duration = Duration::from_millis(500);

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
                    say!(
                        warn,
                        {},
                        "cluster: cannot take remote spawns (trying again): {e}"
                    );
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
    // Weak: the host's going (its shards dropped) ends this loop.
    let (shards, running) = (Arc::downgrade(shards), running.clone());
    tokio::spawn(async move {
        while let Some(cancel) = cancels.next().await {
            let Some(shards) = shards.upgrade() else {
                return;
            };
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
    let ack_wait = consumer.cached_info().config.ack_wait;
    let own_results = Names::of(program.tenant()).results_subject(cluster.host());
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
        // Only with room for a task: else the request would go straight
        // back. (One the app has no room for goes back, delayed, below.)
        if !shards.apps().host_has_room() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let Some((request, acker)) = pull(&consumer).await else {
            continue;
        };
        // The place among the app's tasks only now, with a request in hand:
        // a place reserved for nothing would count as a task alive. A child
        // of one of this host's own tasks takes the place its handle holds.
        // A host whose main ended meanwhile hands the request back.
        let ended = taking == Taking::WhileMainsRun && mains.load(Ordering::SeqCst) == 0;
        let own = request.reply == own_results;
        let reserved =
            !ended && !shards.stop_requested() && shards.apps().reserve_job(app, own).is_ok();
        if !reserved {
            let _ = acker.ack_with(AckKind::Nak(Some(NAK_DELAY))).await;
            continue;
        }
        let lease = cluster.leases.hold(acker, ack_wait);
        let (job, reply) = (request.job.clone(), request.reply.clone());
        let (tx, rx) = oneshot::channel();
        match handover(&shards, &program, &request).await {
            Ok(handover) => {
                let start = Start {
                    handover,
                    spawn_key: Some(job.as_str().into()),
                    report: Some(tx),
                    ..Start::new(
                        request.entry.into(),
                        Payload::Native(request.payload),
                        Holder::Cluster { own },
                    )
                };
                let cell = spawn(&shards, shards.place_new(), &program, start);
                lock(&running).insert(job.clone(), (cell, false));
            }
            Err(why) => {
                shards.apps().unreserve_job(app, own);
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
                // Done with once its outcome is on the results stream; if
                // it cannot get there, the child runs again later.
                Ok(outcome) if answer(&cluster, &reply, &job, &outcome).await => {
                    let _ = lease.ack_surely().await;
                }
                Ok(_) => lease.end(true),
                // Dropped unended: this host stops. Another runs it.
                Err(_) => lease.end(true),
            }
            drop(permit);
        });
    }
}

/// The next request, if one comes within [`PULL`]; a bad one is dropped
/// for good.
async fn pull(consumer: &PullConsumer) -> Option<(Request, Acker)> {
    let pulled = consumer
        .batch()
        .max_messages(1)
        .expires(PULL)
        .messages()
        .await;
    let Ok(mut batch) = pulled else {
        tokio::time::sleep(PULL).await;
        return None;
    };
    let (message, acker) = batch.next().await?.ok()?.split();
    match Request::decode(message.headers.as_ref(), &message.payload) {
        Ok(request) => Some((request, acker)),
        Err(why) => {
            say!(warn, {}, "cluster: dropped a bad spawn request: {why}");
            let _ = acker.ack_with(AckKind::Term).await;
            None
        }
    }
}

/// The handles a request hands its child: its named queues, opened here.
async fn handover(
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
    let (names, app) = (Names::of(program.tenant()), program.app());
    let mut handover = Vec::new();
    for (name, maxsize) in &request.queues {
        let opened = open_shared_queue(shards.clone(), app, names.clone(), name.clone(), *maxsize);
        let handle = opened
            .await
            .map_err(|e| format!("cannot open the queue {name:?}: {e:?}"))?;
        handover.push(Handover::Queue(handle));
    }
    Ok(handover)
}
