//! Open files: the process's limit, which the host raises at start to the
//! most it may, and how much of it the apps may hold.
//!
//! Every socket a task opens, and every directory granted to it (each task
//! opens its own handle on each), is an open file of the host process. When
//! the process runs out, every app's next bind or accept fails: so `serve`
//! checks at start that what the tenants may open fits (see
//! `serve::reserve_files`), and `run` keeps its app's sockets within it.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Sizes the process's file table for `files` open files now, while the
/// process has one thread. The kernel grows the table by doubling, and in
/// a process with several threads each growth waits for an RCU grace
/// period: 10-30 ms spent inside whichever accept or socket call needed
/// the room (measured under a burst of 4,000 connections), during which no
/// other task runs. Grown once up front, the table never grows under load.
/// Best effort: a failure only means the table grows later.
pub(crate) fn reserve_table(files: u64) {
    let highest = files.min(i32::MAX as u64).saturating_sub(1) as i32;
    if highest > 2 {
        // A duplicate at the highest slot grows the table to hold it; it
        // closes again at once.
        let _ = rustix::io::fcntl_dupfd_cloexec(std::io::stderr(), highest);
    }
}

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
