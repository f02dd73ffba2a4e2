//! mtask-host runs WebAssembly components as cooperative, sandboxed tasks.
//!
//! A task is one instance of a component running one entry. When it calls a
//! blocking host import (sleep, join, yield, a queue get, a socket recv), the
//! host suspends its fiber,
//! runs the other tasks, and resumes it with the result, or with `timeout`
//! when the operation's deadline passed. See `docs/design.md` for the design and the semantics.
//!
//! # Layout
//!
//! - [`manager`]: [`TaskManager`], the embedding API (load, add, run, run_next).
//! - `shard`: one scheduler: its task table, FIFO run queue and (in
//!   `shard::reactor`) mio poll, socket readiness, timers and the waker
//!   other threads use; `shard::pass` runs one pass of it.
//! - `shards`: every shard of a host and what they share (the apps' counts,
//!   the queues); each task's store holds it, so host calls reach their
//!   shard through `&mut self`.
//! - `runner`: runs the shards, a thread each, until every task ended.
//! - `control`: [`Control`], what changes a running host: add, replace,
//!   retire and drain apps (`serve`'s reload); `listeners`: the tenants'
//!   listening sockets, kept so that a new version takes them over.
//! - `supervise`: a main task started again when it ends, with back-off
//!   and a restart intensity ([`RestartPolicy`]).
//! - `waits`: the futures a task waits on inside a host call (yield, sleep,
//!   join) and the deadline each can carry.
//! - `iface`: the host side of each WIT interface, one file each:
//!   `iface::tasks` is `mtask:task/tasks`, `iface::queues` and `iface::net`
//!   likewise; `iface::monitors` holds the parts of `tasks` that WIT
//!   0.1.3 added (monitors, links, `cancel-tree`).
//! - `queue`: the queues themselves (waiters, names, the bytes each app
//!   holds); `queue::items`: a queue's items, indexed by tag.
//! - `apps`: each app's limits, counts and statistics.
//! - [`program`]: a loaded component: read, compiled, linked, entries listed;
//!   `program::task`: one task's store data and the future that runs it.
//! - `handles`: what a guest's WIT resources stand for (a child task, a
//!   queue, a socket), each letting go of it when dropped.
//! - [`cache`]: compiled code kept on disk between runs, checked before use.
//! - [`engine`]: the wasmtime engine, the limits that size it, and the
//!   checks that they fit; `arena`: every task's linear memories and fiber
//!   stack, slots of two large mappings.
//! - `files`: the process's open-file limit and file table.
//! - `outcome`: how a task's end becomes a result or a message.
//! - `watch`: monitors, links, lineage and the tasks by id (WIT 0.1.3).
//! - `say`: the host's messages as `tracing` events (or stderr lines where
//!   nothing subscribes); `latency`: the wake-latency histogram.
//! - `output`: guest stdout and stderr a line at a time, each labelled
//!   (a tenant's, in `serve`).
//! - `entries`: an entry of a component and the types of its argument and
//!   result.
//! - `ids` and `wit_types`: the ids and WIT types shared by the modules
//!   above, at the bottom of the module graph.
//! - [`cli`]: the `mtask-host` command: `cli::run`, and `cli::serve`, its
//!   multi-tenant mode (`serve::tenants` reads the file, `serve::shares`
//!   reserves each tenant's share); `cli::logs`: the log's two formats and
//!   `RUST_LOG`; `cli::units`: the durations, sizes and
//!   thread counts both parse.
//! - [`net_policy`]: which addresses an app may bind and connect to.
//!
//! # Example
//!
//! ```no_run
//! use mtask_host::{Config, TaskManager};
//!
//! let mut manager = TaskManager::new(Config::default())?;
//! let program = manager.load("children.wasm")?;
//! manager.add(&program, "main", Vec::new())?;
//! // Drive it pass by pass, as multitask's run_next(timeout) did.
//! while manager.live_tasks() > 0 {
//!     manager.run_next(Some(std::time::Duration::from_millis(10)))?;
//! }
//! # Ok::<(), mtask_host::Error>(())
//! ```

#![warn(missing_docs)]

mod apps;
mod arena;
mod bindings;
pub mod cache;
pub mod cli;
mod cluster;
mod control;
pub mod engine;
mod entries;
mod error;
mod files;
mod handles;
mod ids;
mod iface;
mod latency;
mod listeners;
pub mod manager;
pub mod net_policy;
mod outcome;
mod output;
pub mod program;
mod queue;
mod runner;
mod say;
mod shard;
mod shards;
mod supervise;
mod tier;

mod waits;
mod watch;
mod wit_types;

pub use apps::AppStats;
pub use arena::PoolUsage;
pub use cache::{CacheNote, CodeOrigin};
pub use cluster::{ClusterConfig, DEFAULT_LEASE};
pub use control::{Control, Retire};
pub use engine::{AppLimits, Config, Tiering};
pub use error::Error;
pub use latency::{BOUNDS_MICROS, Latencies};
pub use manager::{StatsHandle, StopHandle, TaskId, TaskManager};
pub use outcome::Outcome;
pub use outcome::TaskError;
pub use program::{DirGrant, Program};
pub use supervise::{Finish, Restart, RestartPolicy, Supervised};
