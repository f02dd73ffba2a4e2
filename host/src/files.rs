//! Open files: the process's limit, which the host raises at start to the
//! most it may, and how much of it the apps may hold.
//!
//! Every socket a task opens, and every directory granted to it (each task
//! opens its own handle on each), is an open file of the host process. When
//! the process runs out, every app's next bind or accept fails: so `serve`
//! checks at start that what the tenants may open fits (see
//! `serve::reserve_files`), and `run` keeps its app's sockets within it.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Files the host keeps for itself: stdio, the event loop, the epoch and
/// WASI threads, the component and cache files it reads, a margin.
pub(crate) const HOST_FILES: u64 = 64;

/// Linux's default ceiling (`fs.nr_open`) where the hard limit is infinite.
const NR_OPEN: u64 = 1 << 20;

/// Raises the soft limit on open files to the hard one; gives the limit in
/// force afterwards.
pub(crate) fn raise_limit() -> u64 {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(NR_OPEN);
    if limit.current.is_some_and(|soft| soft < hard) {
        let raised = Rlimit {
            current: Some(hard),
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return hard;
        }
    }
    limit.current.unwrap_or(hard)
}

/// The open files the apps may share, out of `limit`.
pub(crate) fn for_apps(limit: u64) -> usize {
    limit.saturating_sub(HOST_FILES) as usize
}
