//! The flags that join `mtask-host run` to a cluster (docs/design.md §10).

use std::path::PathBuf;
use std::time::Duration;

use super::units::parse_duration;
use crate::cluster::{ClusterConfig, DEFAULT_LEASE};
use crate::program::DEFAULT_TENANT;

#[derive(clap::Args, Debug)]
pub(super) struct ClusterArgs {
    /// Join the cluster of this NATS server (with JetStream):
    /// `nats://HOST:PORT`, `tls://HOST:PORT`, a user and password or a
    /// token in it if the server wants them. Named queues are then shared
    /// with the other hosts of the tenant, and remote spawns may run on
    /// any of them; this host also runs theirs while its main task runs.
    #[arg(long, value_name = "URL", help_heading = "Cluster")]
    pub(super) cluster: Option<String>,

    /// The tenant whose queues and spawns this app shares with the other
    /// hosts (hosts of other tenants see none of them).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_TENANT, requires = "cluster", help_heading = "Cluster")]
    pub(super) tenant: String,

    /// A NATS credentials file (user JWT and NKey seed).
    #[arg(
        long,
        value_name = "FILE",
        requires = "cluster",
        help_heading = "Cluster"
    )]
    cluster_creds: Option<PathBuf>,

    /// A root certificate (PEM) for the server's TLS certificate; TLS is
    /// then required.
    #[arg(
        long,
        value_name = "FILE",
        requires = "cluster",
        help_heading = "Cluster"
    )]
    cluster_ca: Option<PathBuf>,

    /// How long an item a task took, or a remote spawn a host runs, stays
    /// that host's once it is no longer heard from; then another host gets
    /// it again. Set by the host that creates a queue's or a tenant's
    /// stream; the others follow it.
    #[arg(long, value_name = "TIME", value_parser = parse_duration, requires = "cluster", help_heading = "Cluster")]
    cluster_lease: Option<Duration>,

    /// The most remote spawns this host runs at once; 0: none (it only
    /// hands work out). [default: one per scheduler thread]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(usize), requires = "cluster", help_heading = "Cluster")]
    cluster_jobs: Option<usize>,

    /// Start no main task: run the cluster's remote spawns of this
    /// component until SIGINT or SIGTERM (the spawns under way go back to
    /// the cluster for another host).
    #[arg(long, requires = "cluster", help_heading = "Cluster")]
    pub(super) worker: bool,
}

impl ClusterArgs {
    /// The cluster to join, if any.
    pub(super) fn config(&self) -> Option<ClusterConfig> {
        let url = self.cluster.clone()?;
        Some(ClusterConfig {
            creds: self.cluster_creds.clone(),
            tls_ca: self.cluster_ca.clone(),
            lease: self.cluster_lease.unwrap_or(DEFAULT_LEASE),
            jobs: self.cluster_jobs,
            ..ClusterConfig::new(url)
        })
    }
}
