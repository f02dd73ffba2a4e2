//! How a host joins a cluster (docs/design.md §10); at the bottom of the
//! module graph, for `engine::Config` to hold.

use std::path::PathBuf;
use std::time::Duration;

/// How a host joins a cluster: `--cluster` and its companions, or
/// `[cluster]` in a tenants file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The NATS server: `nats://HOST:PORT` (`tls://` for TLS); a user and
    /// password, or a token, may be in it (`nats://user:pass@HOST:PORT`).
    pub url: String,
    /// A NATS credentials file (a user JWT and its NKey seed).
    pub creds: Option<PathBuf>,
    /// A root certificate (PEM) to check the server's against; TLS is then
    /// required.
    pub tls_ca: Option<PathBuf>,
    /// How long what a host holds (an item one of its tasks took, a job it
    /// runs) stays its own once the host is no longer heard from: after
    /// that, JetStream gives it to another host. Used by the host that
    /// creates a stream; the others follow the stream's.
    pub lease: Duration,
    /// The most remote spawns this host runs at once (0: none, it only
    /// hands work out); `None`: one per scheduler thread.
    pub jobs: Option<usize>,
}

/// The lease unless told otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

impl ClusterConfig {
    /// Joining `url` with the default lease and no credentials.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            creds: None,
            tls_ca: None,
            lease: DEFAULT_LEASE,
            jobs: None,
        }
    }
}
