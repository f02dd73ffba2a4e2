//! Cluster mode: hosts that share named queues and run each other's tasks
//! through a NATS server with JetStream (docs/design.md §10). Without a
//! [`ClusterConfig`], nothing here runs.
//!
//! # Layout
//!
//! - this file: the connection ([`Cluster`]), the names
//!   of each tenant's streams and subjects ([`Names`]), and
//!   [`Cluster::start`], which runs NATS work on the host's Tokio runtime
//!   for a task to wait on as it waits on I/O.
//! - `config`: [`ClusterConfig`], how a host joins.
//! - `leases`: progress acks that keep what this host holds (an item a
//!   task took, a job it runs) from going to another host while it lives.
//! - `queue`: a named queue as a JetStream work-queue stream.
//! - `remote`: a parent's side of a remote spawn: the request, the result
//!   coming back, cancel.
//! - `worker`: a host's side of remote spawns: it takes requests while it
//!   has room, runs them as local tasks, and answers with their outcome.

pub(crate) mod config;
pub(crate) mod leases;
pub(crate) mod queue;
pub(crate) mod remote;
pub(crate) mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::oneshot;

pub use config::{ClusterConfig, DEFAULT_LEASE};

use crate::engine::tokio_runtime;
use crate::error::Error;
use crate::shard::lock;

/// The host's connection to its cluster, shared by every task.
pub(crate) struct Cluster {
    /// The NATS connection (it reconnects by itself).
    client: async_nats::Client,
    /// JetStream over it.
    js: jetstream::Context,
    /// This host's id: in the subject its results come to, and in its job ids.
    host: String,
    /// The lease of streams this host creates.
    lease: Duration,
    /// The number of the next job this host asks for.
    next_job: AtomicU64,
    /// What this host holds, kept alive by progress acks.
    pub(crate) leases: Arc<leases::Leases>,
    /// Remote children of this host's tasks that have not answered yet.
    pub(crate) waiting: Arc<remote::Waiting>,
    /// The named queues open on this host, by stream: one each, whatever
    /// the number of handles.
    queues: Mutex<HashMap<String, Weak<queue::ClusterQueue>>>,
}

/// How long joining may take before the host gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Cluster {
    /// Joins the cluster `config` names, or says in one line why not.
    pub(crate) fn connect(config: &ClusterConfig) -> Result<Arc<Self>, Error> {
        let url = without_secrets(&config.url);
        let fail =
            move |why: String| Error::Cluster(format!("cannot join the cluster at {url}: {why}"));
        tokio_runtime().block_on(async {
            let mut options = async_nats::ConnectOptions::new()
                .name("mtask-host")
                .connection_timeout(CONNECT_TIMEOUT);
            if let Some(creds) = &config.creds {
                options = options.credentials_file(creds).await.map_err(|e| {
                    fail(format!(
                        "cannot read the credentials file {}: {e}",
                        creds.display()
                    ))
                })?;
            }
            // A user and password, or a token, in the URL.
            let addr: async_nats::ServerAddr = config
                .url
                .parse()
                .map_err(|e| fail(format!("not a NATS URL: {e}")))?;
            match (addr.username(), addr.password()) {
                (Some(user), Some(pass)) => {
                    options = options.user_and_password(user.into(), pass.into());
                }
                (Some(token), None) => options = options.token(token.into()),
                _ => {}
            }
            if let Some(ca) = &config.tls_ca {
                options = options.add_root_certificates(ca.clone()).require_tls(true);
            }
            let connecting = options.connect(addr);
            let client = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => return Err(fail(e.to_string())),
                Err(_) => return Err(fail(format!("no answer in {CONNECT_TIMEOUT:?}"))),
            };
            let js = jetstream::new(client.clone());
            if let Err(e) = js.query_account().await {
                return Err(fail(format!(
                    "the server has no JetStream ({e}): start it with `nats-server -js`"
                )));
            }
            let host = client
                .new_inbox()
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_string();
            let waiting = remote::Waiting::new();
            let leases = leases::Leases::start();
            Ok(Arc::new(Cluster {
                client,
                js,
                host,
                lease: config.lease,
                next_job: AtomicU64::new(1),
                leases,
                waiting,
                queues: Default::default(),
            }))
        })
    }

    /// Runs `work` on the host's Tokio runtime, handing it the sender of
    /// the receiver returned, which a task waits on (`waits::Outside`).
    /// The work can tell that nobody waits any more (`Sender::closed`):
    /// the task timed out or was cancelled.
    pub(crate) fn start<T, F>(
        &self,
        work: impl FnOnce(oneshot::Sender<T>) -> F,
    ) -> oneshot::Receiver<T>
    where
        T: Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        tokio_runtime().spawn(work(tx));
        rx
    }

    /// A job id never used before in the cluster: this host's id and a count.
    pub(crate) fn new_job_id(&self) -> String {
        format!(
            "{}-{}",
            self.host,
            self.next_job.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The stream `config` describes, made unless it exists. Another host
    /// may make it at the same moment (with other limits, even): then the
    /// first one's stands.
    pub(crate) async fn stream(
        &self,
        config: jetstream::stream::Config,
    ) -> Result<jetstream::stream::Stream, String> {
        let js = &self.js;
        if let Ok(stream) = js.get_stream(&config.name).await {
            return Ok(stream);
        }
        let name = config.name.clone();
        match js.create_stream(config).await {
            Ok(stream) => Ok(stream),
            Err(_) => js.get_stream(&name).await.map_err(|e| e.to_string()),
        }
    }

    /// The named queue open on this host on stream `stream`, if any.
    pub(crate) fn queue(&self, stream: &str) -> Option<Arc<queue::ClusterQueue>> {
        lock(&self.queues).get(stream).and_then(Weak::upgrade)
    }

    /// Records `queue` as the one on stream `stream` here (forgetting the
    /// queues no handle holds any more).
    pub(crate) fn remember_queue(&self, stream: &str, queue: &Arc<queue::ClusterQueue>) {
        let mut queues = lock(&self.queues);
        queues.retain(|_, q| q.strong_count() > 0);
        queues.insert(stream.to_string(), Arc::downgrade(queue));
    }

    /// Waits (at most `limit`) for what this host held to be acked or
    /// handed back, and for everything it sent to reach the server: a
    /// host that stops loses no word it said.
    pub(crate) fn settle(&self, limit: Duration) {
        tokio_runtime().block_on(async {
            self.leases.settle(limit).await;
            let _ = self.client.flush().await;
        });
    }

    pub(crate) fn js(&self) -> &jetstream::Context {
        &self.js
    }

    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn lease(&self) -> Duration {
        self.lease
    }
}

impl Drop for Cluster {
    /// The connection closes with the host (its listeners' tasks end).
    fn drop(&mut self) {
        let client = self.client.clone();
        tokio_runtime().spawn(async move { client.drain().await });
    }
}

/// The streams and subjects of one tenant. Every name a guest gives is
/// hashed into them, so no queue name can reach outside its tenant, nor
/// break NATS's rules for names (no `.`, `*`, `>` or spaces).
#[derive(Clone, Debug)]
pub(crate) struct Names {
    /// The tenant's hash.
    tenant: String,
}

impl Names {
    /// The names of tenant `tenant`.
    pub(crate) fn of(tenant: &str) -> Self {
        Self {
            tenant: short_hash(&[tenant]),
        }
    }

    /// The stream that holds the named queue `name`.
    pub(crate) fn queue_stream(&self, name: &str) -> String {
        format!("MTQ_{}_{}", self.tenant, short_hash(&[name]))
    }

    /// The subject puts on an open queue `name` go to.
    pub(crate) fn queue_subject(&self, name: &str) -> String {
        format!("mtask.{}.q.{}", self.tenant, short_hash(&[name]))
    }

    /// The subject a closed queue's stream listens on instead, which no put
    /// uses: a put then finds no stream, which is how it learns of the close.
    pub(crate) fn closed_subject(&self, name: &str) -> String {
        format!("mtask.{}.closed.{}", self.tenant, short_hash(&[name]))
    }

    /// The stream of the tenant's spawn requests.
    pub(crate) fn jobs_stream(&self) -> String {
        format!("MTJ_{}", self.tenant)
    }

    /// The subject of spawn requests for the component whose digest is `code`.
    pub(crate) fn jobs_subject(&self, code: &str) -> String {
        format!("mtask.{}.j.{code}", self.tenant)
    }

    /// The stream of the outcomes of the tenant's remote spawns.
    pub(crate) fn results_stream(&self) -> String {
        format!("MTR_{}", self.tenant)
    }

    /// The subject of the outcomes for the parent's host `host`.
    pub(crate) fn results_subject(&self, host: &str) -> String {
        format!("mtask.{}.r.{host}", self.tenant)
    }

    /// The subject a cancel of job `job` goes to.
    pub(crate) fn cancel_subject(&self, job: &str) -> String {
        format!("mtask.{}.cancel.{job}", self.tenant)
    }

    /// The subject where a close of queue `name` is announced.
    pub(crate) fn shut_subject(&self, name: &str) -> String {
        format!("mtask.{}.shut.{}", self.tenant, short_hash(&[name]))
    }

    /// The subject where getters of queue `name` say there is room.
    pub(crate) fn room_subject(&self, name: &str) -> String {
        format!("mtask.{}.room.{}", self.tenant, short_hash(&[name]))
    }

    /// Every cancel of the tenant's jobs.
    pub(crate) fn cancels(&self) -> String {
        format!("mtask.{}.cancel.*", self.tenant)
    }
}

/// `url` with any user, password or token in it replaced by `***`, to show.
fn without_secrets(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    match rest.rsplit_once('@') {
        Some((_, host)) if scheme.is_empty() => format!("***@{host}"),
        Some((_, host)) => format!("{scheme}://***@{host}"),
        None => url.to_string(),
    }
}

/// 20 hex digits (80 bits) of the BLAKE3 hash of `parts`, each prefixed
/// with its length so that no two lists of parts hash alike.
pub(crate) fn short_hash(parts: &[&str]) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().to_hex()[..20].to_string()
}

/// An error of NATS as the guest sees it: `io`, naming the cluster.
pub(crate) fn io_error(what: &str, e: impl std::fmt::Display) -> crate::wit_types::Error {
    crate::wit_types::Error::Io(format!("cluster: {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_a_url_are_not_shown() {
        assert_eq!(without_secrets("nats://u:p@h:4222"), "nats://***@h:4222");
        assert_eq!(without_secrets("tls://token@h:4222"), "tls://***@h:4222");
        assert_eq!(without_secrets("nats://h:4222"), "nats://h:4222");
        assert_eq!(without_secrets("u:p@h"), "***@h");
    }

    #[test]
    fn names_keep_tenants_apart_and_follow_nats_rules() {
        let (a, b) = (Names::of("a"), Names::of("b"));
        assert_ne!(a.queue_stream("q"), b.queue_stream("q"));
        assert_ne!(a.queue_subject("q"), a.queue_subject("r"));
        // Parts are length-prefixed: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(short_hash(&["ab", "c"]), short_hash(&["a", "bc"]));
        for hostile in ["a.b", "*", ">", "a b", "\n", &"x".repeat(1024)] {
            let stream = a.queue_stream(hostile);
            assert!(
                stream
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{stream}"
            );
            let subject = a.queue_subject(hostile);
            assert_eq!(subject.split('.').count(), 4, "{subject}");
        }
    }
}
