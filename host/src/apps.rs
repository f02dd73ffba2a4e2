//! Per-app limits, counts and statistics: what each app (a loaded program,
//! a tenant) holds of the host, checked against its own limits.
//!
//! Every check is against the app's own share, so one app at its limits
//! cannot make another's spawn, bind or growth fail (see `serve` for how
//! the shares are reserved).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::engine::AppLimits;
use crate::ids::AppId;
use crate::outcome::{Outcome, TaskError};

/// How the tasks of one app have fared (for `mtask-host serve --summary`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppStats {
    /// Tasks started.
    pub started: u64,
    /// Tasks that returned a value.
    pub succeeded: u64,
    /// Tasks whose entry returned an error.
    pub failed: u64,
    /// Tasks that trapped.
    pub trapped: u64,
    /// Tasks ended for going over a limit.
    pub limited: u64,
    /// Tasks cancelled.
    pub cancelled: u64,
    /// The most linear memory its live tasks held at once, in bytes.
    pub peak_memory: u64,
    /// Its tasks alive now.
    pub live: u64,
    /// Its sockets open now (mtask's own and WASI's).
    pub sockets: u64,
    /// The linear memory its live tasks hold now, in bytes.
    pub memory: u64,
    /// Times a supervisor started its main task again.
    pub restarts: u64,
    /// CPU time its tasks have used, the live ones' so far included.
    pub cpu: std::time::Duration,
    /// Bytes its queues hold now (items, and the items of waiting putters).
    pub queue_bytes: u64,
    /// Items its queues hold now.
    pub queue_items: u64,
}

/// Logs that `app` was refused something for a limit: a debug event
/// (target `mtask::limit`), as a guest decides how many there are; in the
/// task's span when it asked in a host call.
pub(crate) fn limit_reached(app: AppId, why: &str) {
    tracing::debug!(target: "mtask::limit", app, "limit reached: {why}");
}

/// How a task ended, for [`Apps::ended`].
#[derive(Clone, Copy)]
pub(crate) struct Ended {
    /// Its outcome is kept for a joiner (it keeps its place).
    pub(crate) held: bool,
    /// The embedder added it.
    pub(crate) main: bool,
    /// It counted among its app's live tasks.
    pub(crate) counted: bool,
    /// The CPU time it used.
    pub(crate) cpu: std::time::Duration,
}

/// What the host keeps per app.
#[derive(Default)]
struct App {
    /// Its limits; `None`: the host's defaults.
    limits: Option<AppLimits>,
    /// Its tasks that have not ended.
    live: usize,
    /// Its tasks that ended and whose outcome waits for a joiner: each
    /// keeps a place among its `max_tasks`, as its outcome is host memory.
    held: usize,
    /// Its open sockets.
    sockets: usize,
    /// Bytes of linear memory its live tasks have now.
    memory: usize,
    /// How its tasks have fared.
    stats: AppStats,
}

/// Every app's record.
pub(crate) struct Apps {
    /// The records, by app.
    apps: HashMap<AppId, App>,
    /// The limits of an app that was not registered with its own.
    default_limits: AppLimits,
    /// Tasks of every app that have not ended.
    live: usize,
    /// `live` for readers that take no lock (a shard checks it each pass).
    live_seen: Arc<AtomicUsize>,
    /// The most tasks that may be alive at once in the host.
    max_live: usize,
    /// Tasks the embedder added (the mains) that have not ended, for
    /// readers that take no lock: a host that is no cluster worker takes
    /// remote spawns only while it has one (docs/design.md §10).
    mains: Arc<AtomicUsize>,
    /// The app whose record each later version of it counts in
    /// ([`Apps::succeed`]): a tenant's versions share its limits.
    first_version: HashMap<AppId, AppId>,
}

impl Apps {
    pub(crate) fn new(default_limits: AppLimits, max_live: usize) -> Self {
        Self {
            apps: HashMap::new(),
            default_limits,
            live: 0,
            live_seen: Arc::default(),
            max_live,
            mains: Arc::default(),
            first_version: HashMap::new(),
        }
    }

    /// Counts `new` as a version of `old` (a tenant's app replaced on
    /// reload, docs/design.md §13): they share one record, so the old
    /// version's tasks, sockets and memory, while it drains, count against
    /// the limits the new one runs under, and the figures go on.
    pub(crate) fn succeed(&mut self, new: AppId, old: AppId) {
        let first = self.record_of(old);
        self.first_version.insert(new, first);
    }

    /// The app whose record `app` counts in.
    fn record_of(&self, app: AppId) -> AppId {
        if self.first_version.is_empty() {
            return app;
        }
        self.first_version.get(&app).copied().unwrap_or(app)
    }

    /// The count of live tasks, kept up to date for readers with no lock.
    pub(crate) fn live_seen(&self) -> Arc<AtomicUsize> {
        self.live_seen.clone()
    }

    /// The count of mains alive, kept up to date for readers with no lock.
    pub(crate) fn mains(&self) -> Arc<AtomicUsize> {
        self.mains.clone()
    }

    /// Counts a task the embedder added (its place was reserved already).
    pub(crate) fn main_added(&mut self) {
        self.mains.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a place among `app`'s tasks for a child placed anywhere in
    /// the cluster (docs/design.md §10), as for an ended task whose
    /// outcome is kept, until [`Apps::outcome_taken`]: it is not alive
    /// here, but its handle and outcome are host memory.
    pub(crate) fn reserve_remote(&mut self, app: AppId) -> Result<(), String> {
        let app = self.record_of(app);
        let max = self.limits(app).max_tasks;
        let record = self.apps.entry(app).or_default();
        if record.live + record.held >= max {
            return Err(format!(
                "the app may have at most {max} tasks (running, or ended and not yet joined)"
            ));
        }
        record.held += 1;
        Ok(())
    }

    fn set_live(&mut self, live: usize) {
        self.live = live;
        self.live_seen.store(live, Ordering::SeqCst);
    }

    /// Gives `app` limits of its own (a tenant's).
    pub(crate) fn register(&mut self, app: AppId, limits: AppLimits) {
        let app = self.record_of(app);
        self.apps.entry(app).or_default().limits = Some(limits);
    }

    /// The limits `app` runs under.
    pub(crate) fn limits(&self, app: AppId) -> AppLimits {
        let app = self.record_of(app);
        self.apps
            .get(&app)
            .and_then(|a| a.limits)
            .unwrap_or(self.default_limits)
    }

    /// Counts a new task of `app`, unless the app or the host has as many
    /// alive as allowed. Check and count are one step, so that shards
    /// spawning at once cannot both take the last place.
    pub(crate) fn reserve(&mut self, app: AppId) -> Result<(), String> {
        self.reserve_inner(app)
            .inspect_err(|why| limit_reached(app, why))
    }

    fn reserve_inner(&mut self, app: AppId) -> Result<(), String> {
        let app = self.record_of(app);
        // The app's own limit first: in `serve` the pool is the sum of the
        // apps' limits, so only an embedder's apps can reach the host's.
        let max = self.limits(app).max_tasks;
        if let Some(a) = self.apps.get(&app)
            && a.live + a.held >= max
        {
            return Err(format!(
                "the app may have at most {max} tasks (running, or ended and not yet joined)"
            ));
        }
        if self.live >= self.max_live {
            return Err(format!(
                "at most {} tasks may be alive at once",
                self.max_live
            ));
        }
        let record = self.apps.entry(app).or_default();
        record.stats.started += 1;
        record.live += 1;
        self.set_live(self.live + 1);
        Ok(())
    }

    /// Whether the host may start another task now (whatever the app: a
    /// remote child of this host's own task needs no place of its app).
    pub(crate) fn host_has_room(&self) -> bool {
        self.live < self.max_live
    }

    /// Counts a remote spawn this host is about to run for `app`, like
    /// [`Apps::reserve`]; one whose parent is on this host (`own`) runs in
    /// the place its handle holds already (it is not among the app's live
    /// tasks: `Holder::Cluster { own: true }`), so only the host's own
    /// limit applies to it.
    pub(crate) fn reserve_job(&mut self, app: AppId, own: bool) -> Result<(), String> {
        let app = self.record_of(app);
        if !own {
            return self.reserve(app);
        }
        if self.live >= self.max_live {
            return Err(format!(
                "at most {} tasks may be alive at once",
                self.max_live
            ));
        }
        self.apps.entry(app).or_default().stats.started += 1;
        self.set_live(self.live + 1);
        Ok(())
    }

    /// Gives back a place [`Apps::reserve_job`] took for a job that did not
    /// start after all.
    pub(crate) fn unreserve_job(&mut self, app: AppId, own: bool) {
        let app = self.record_of(app);
        if !own {
            return self.unreserve(app);
        }
        if let Some(record) = self.apps.get_mut(&app) {
            record.stats.started -= 1;
            self.set_live(self.live - 1);
        }
    }

    /// Gives back a place [`Apps::reserve`] took for a task that did not
    /// start after all.
    pub(crate) fn unreserve(&mut self, app: AppId) {
        let app = self.record_of(app);
        if let Some(record) = self.apps.get_mut(&app) {
            record.stats.started -= 1;
            record.live -= 1;
            self.set_live(self.live - 1);
        }
    }

    /// Counts the end of a task of `app`, as `end` says. Gives the tasks of
    /// every app still alive.
    pub(crate) fn ended(&mut self, app: AppId, outcome: &Outcome, end: Ended) -> usize {
        let app = self.record_of(app);
        self.set_live(self.live - 1);
        if end.main {
            self.mains.fetch_sub(1, Ordering::SeqCst);
        }
        let record = self.apps.entry(app).or_default();
        record.live -= usize::from(end.counted);
        record.held += usize::from(end.held);
        let stats = &mut record.stats;
        stats.cpu += end.cpu;
        match outcome {
            Ok(_) => stats.succeeded += 1,
            Err(TaskError::Failed(_) | TaskError::Exited(_)) => stats.failed += 1,
            Err(TaskError::Trapped(_)) => stats.trapped += 1,
            Err(TaskError::Limit(_)) => stats.limited += 1,
            Err(TaskError::Cancelled) => stats.cancelled += 1,
        }
        self.live
    }

    /// A supervisor started the main task of `app` again.
    pub(crate) fn restarted(&mut self, app: AppId) {
        let app = self.record_of(app);
        self.apps.entry(app).or_default().stats.restarts += 1;
    }

    /// A kept outcome of `app` was taken (or let go of).
    pub(crate) fn outcome_taken(&mut self, app: AppId) {
        let app = self.record_of(app);
        if let Some(record) = self.apps.get_mut(&app) {
            record.held -= 1;
        }
    }

    /// How the tasks of `app` have fared so far.
    pub(crate) fn stats(&self, app: AppId) -> AppStats {
        let app = self.record_of(app);
        self.apps
            .get(&app)
            .map(|a| AppStats {
                live: a.live as u64,
                sockets: a.sockets as u64,
                memory: a.memory as u64,
                ..a.stats
            })
            .unwrap_or_default()
    }

    /// Counts `grown` more bytes of linear memory for `app`, unless its
    /// tasks would then hold more than `max_app_memory` in all.
    pub(crate) fn grow_memory(&mut self, app: AppId, grown: usize) -> Result<(), String> {
        let app = self.record_of(app);
        let max = self.limits(app).max_app_memory;
        let record = self.apps.entry(app).or_default();
        if record.memory.saturating_add(grown) as u64 > max {
            return Err(format!(
                "the app's tasks may have at most {} MiB of linear memory in all",
                max >> 20
            ));
        }
        record.memory += grown;
        record.stats.peak_memory = record.stats.peak_memory.max(record.memory as u64);
        Ok(())
    }

    /// Counts `freed` bytes of linear memory of `app` as given back.
    pub(crate) fn free_memory(&mut self, app: AppId, freed: usize) {
        let app = self.record_of(app);
        if let Some(record) = self.apps.get_mut(&app) {
            record.memory = record.memory.saturating_sub(freed);
        }
    }

    /// Counts a new socket of `app`, unless it has as many as it may.
    pub(crate) fn open_socket(&mut self, app: AppId) -> Result<(), String> {
        let app = self.record_of(app);
        let max = self.limits(app).max_sockets;
        let record = self.apps.entry(app).or_default();
        if record.sockets >= max {
            let why = format!("the app may have at most {max} sockets open");
            limit_reached(app, &why);
            return Err(why);
        }
        record.sockets += 1;
        Ok(())
    }

    /// Counts a closed socket of `app`.
    pub(crate) fn close_socket(&mut self, app: AppId) {
        let app = self.record_of(app);
        if let Some(record) = self.apps.get_mut(&app) {
            record.sockets = record.sockets.saturating_sub(1);
        }
    }
}
