//! Cluster mode: hosts that share named queues and run each other's tasks
//! through a NATS server with JetStream (docs/design.md §10). Without a
//! [`ClusterConfig`], nothing here runs.
//!
//! # Layout
//!
//! - this file: [`ClusterConfig`], the connection ([`Cluster`]), the names
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

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::oneshot;

pub use config::{ClusterConfig, DEFAULT_LEASE};

use crate::engine::tokio_runtime;
use crate::error::Error;

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
}

/// How long joining may take before the host gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Cluster {
    /// Joins the cluster `config` names, or says in one line why not.
    pub(crate) fn connect(config: &ClusterConfig) -> Result<Arc<Self>, Error> {
        let url = config.url.clone();
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
            if let Some(ca) = &config.tls_ca {
                options = options.add_root_certificates(ca.clone()).require_tls(true);
            }
            let connecting = options.connect(config.url.as_str());
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
            let waiting = remote::Waiting::listen(&client, &host)
                .await
                .map_err(fail)?;
            let leases = leases::Leases::start(config.lease);
            Ok(Arc::new(Cluster {
                client,
                js,
                host,
                lease: config.lease,
                next_job: AtomicU64::new(1),
                leases,
                waiting,
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

    /// The subject a cancel of job `job` goes to.
    pub(crate) fn cancel_subject(&self, job: &str) -> String {
        format!("mtask.{}.cancel.{job}", self.tenant)
    }

    /// Every cancel of the tenant's jobs.
    pub(crate) fn cancels(&self) -> String {
        format!("mtask.{}.cancel.*", self.tenant)
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
