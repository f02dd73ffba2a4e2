//! Every shard of a host, and what they share: the apps' counts and the
//! queues (docs/design.md §3).
//!
//! Each task's store holds an `Arc` of this, so a host call finds its
//! shard and the shared state through `&mut self`, not through a global.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::apps::{AppStats, Apps};
use crate::cluster::Cluster;
use crate::engine::{AppLimits, Config};
use crate::ids::{AppId, TaskCell, TaskKey};
use crate::latency::Latencies;
use crate::listeners::Listeners;
use crate::queue::Queues;
use crate::shard::{Core, Poller, Reactor, Remote, Shard, lock};
use crate::watch::Directory;

/// How many fewer live tasks another shard must have for a spawned task
/// to go there rather than to its parent's shard.
const PLACE_SLACK: usize = 2;

/// The host's shards and their shared state.
pub(crate) struct Shards {
    /// The shards, by index.
    shards: Box<[Shard]>,
    /// Each app's limits, counts and statistics.
    apps: Arc<Mutex<Apps>>,
    /// The queues of every app (a queue may link tasks of any shards).
    queues: Mutex<Queues>,
    /// The id of the next task, over all shards.
    next_id: AtomicU64,
    /// Tasks of every shard that have not ended (kept by `apps`).
    live: Arc<AtomicUsize>,
    /// The cluster this host joined, if any (docs/design.md §10).
    cluster: Option<Arc<Cluster>>,
    /// Runs go on with no task alive, until stopped: the host waits for
    /// work from its cluster.
    keep_open: std::sync::atomic::AtomicBool,
    /// Supervisors that may start a task again: runs go on with no task
    /// alive while one is waiting out its back-off.
    holds: AtomicUsize,
    /// The tenants' listening sockets, kept for their next versions.
    listeners: Arc<Listeners>,
    /// The name of each app added, for listings.
    names: Mutex<HashMap<AppId, String>>,
    /// Every task by id, for `monitor` and `link`.
    directory: Arc<Directory>,
}

impl Shards {
    /// `count` shards (at least one) set up by `config`, and the poller of
    /// each, for the thread that will run it.
    pub(crate) fn new(
        config: &Config,
        count: usize,
        cluster: Option<Arc<Cluster>>,
    ) -> std::io::Result<(Arc<Self>, Vec<Poller>)> {
        let reactors = (0..count.max(1))
            .map(|_| Reactor::new())
            .collect::<std::io::Result<Vec<_>>>()?;
        let peers: Arc<[Arc<Remote>]> = reactors.iter().map(|(r, _)| r.remote().clone()).collect();
        let apps = Arc::new(Mutex::new(Apps::new(
            AppLimits::from(config),
            config.max_tasks as usize,
        )));
        let directory = Arc::new(Directory::new());
        let (reactors, mut pollers): (Vec<_>, Vec<_>) = reactors.into_iter().unzip();
        for (i, poller) in pollers.iter_mut().enumerate() {
            let others = peers.iter().enumerate().filter(|&(j, _)| j != i);
            poller.watch(others.map(|(_, r)| r.clone()).collect());
        }
        let shards = reactors
            .into_iter()
            .enumerate()
            .map(|(index, reactor)| {
                Shard::new(
                    index,
                    reactor,
                    peers.clone(),
                    apps.clone(),
                    directory.clone(),
                    config.time_slice,
                )
            })
            .collect();
        let live = lock(&apps).live_seen();
        let this = Arc::new(Self {
            live,
            shards,
            apps,
            queues: Mutex::new(Queues::new(config.max_queue_bytes)),
            next_id: AtomicU64::new(1),
            cluster,
            keep_open: Default::default(),
            holds: AtomicUsize::new(0),
            listeners: Arc::default(),
            names: Mutex::default(),
            directory,
        });
        Ok((this, pollers))
    }

    /// Every task by id.
    pub(crate) fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The shards, by index.
    pub(crate) fn all(&self) -> &[Shard] {
        &self.shards
    }

    /// The shard that runs `task`.
    pub(crate) fn of(&self, task: TaskKey) -> &Shard {
        &self.shards[task.shard]
    }

    /// Runs `op` on the core of the shard where `task` is, with its key,
    /// following the task if another shard takes it meanwhile (which
    /// happens under both shards' locks: a key unchanged under the lock is
    /// where the task is).
    pub(crate) fn with_task<R>(
        &self,
        task: &TaskCell,
        op: impl FnOnce(&mut Core, TaskKey) -> R,
    ) -> R {
        loop {
            let key = task.key();
            let mut core = self.of(key).core();
            if task.key() == key {
                return op(&mut core, key);
            }
        }
    }

    /// The apps' counts: a leaf lock (nothing else is taken under it).
    pub(crate) fn apps(&self) -> MutexGuard<'_, Apps> {
        lock(&self.apps)
    }

    /// The queues: a leaf lock (nothing else is taken under it).
    pub(crate) fn queues(&self) -> MutexGuard<'_, Queues> {
        lock(&self.queues)
    }

    /// The tenants' listening sockets.
    pub(crate) fn listeners(&self) -> &Arc<Listeners> {
        &self.listeners
    }

    /// The names of the apps added: a leaf lock.
    pub(crate) fn names(&self) -> MutexGuard<'_, HashMap<AppId, String>> {
        lock(&self.names)
    }

    /// The live tasks of `app` (one version of a tenant), over every shard.
    pub(crate) fn app_live(&self, app: AppId) -> usize {
        self.all().iter().map(|s| s.core().app_tasks(app)).sum()
    }

    /// Ends every task of `app` with `cancelled`, on every shard, until
    /// none is left (a task moving between shards meanwhile is found on
    /// the next round).
    pub(crate) fn cancel_app(&self, app: AppId) {
        while self.app_live(app) > 0 {
            for shard in self.all() {
                shard.cancel_app(app);
            }
            // One being polled ends as its poll returns.
            std::thread::yield_now();
        }
    }

    /// The cluster this host joined, if any.
    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// Lets runs go on with no task alive (until stopped): work may come
    /// from the cluster.
    pub(crate) fn keep_open(&self) {
        self.keep_open.store(true, Ordering::SeqCst);
    }

    /// Whether runs go on with no task alive.
    pub(crate) fn kept_open(&self) -> bool {
        self.keep_open.load(Ordering::SeqCst) || self.holds.load(Ordering::SeqCst) > 0
    }

    /// Keeps runs going with no task alive until [`Shards::release`]: a
    /// supervisor may start a task again.
    pub(crate) fn hold(&self) {
        self.holds.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends a [`Shards::hold`]; every shard looks again whether the run is over.
    pub(crate) fn release(&self) {
        self.holds.fetch_sub(1, Ordering::SeqCst);
        for shard in self.all() {
            shard.remote.interrupt();
        }
    }

    /// Gives `app` limits of its own (a tenant's).
    pub(crate) fn register_app(&self, app: AppId, limits: AppLimits) {
        self.apps().register(app, limits);
        self.queues().set_max_bytes(app, limits.max_queue_bytes);
    }

    /// A task id never handed out before.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The shard a task spawned by a task of shard `parent` runs on
    /// (docs/design.md §3): the parent's, so that a parent and its child
    /// share caches and their queue and join wakes stay on one thread,
    /// unless the least loaded shard has at least [`PLACE_SLACK`] fewer
    /// live tasks. A burst of spawns so spreads evenly, and a spawn-join
    /// loop stays home.
    pub(crate) fn place(&self, parent: usize) -> usize {
        let (least, least_load) = self.least_loaded();
        if self.load(parent) >= least_load + PLACE_SLACK {
            least
        } else {
            parent
        }
    }

    /// Where a task the embedder adds runs: the least loaded shard (the
    /// first, among equals).
    pub(crate) fn place_new(&self) -> usize {
        self.least_loaded().0
    }

    /// Tasks that moved from a busy shard to an idle one, so far.
    pub(crate) fn moved(&self) -> u64 {
        let taken = self
            .shards
            .iter()
            .map(|s| s.remote.taken.load(Ordering::Relaxed));
        taken.sum()
    }

    /// Each shard's live tasks.
    pub(crate) fn loads(&self) -> Vec<usize> {
        (0..self.shards.len()).map(|i| self.load(i)).collect()
    }

    fn load(&self, shard: usize) -> usize {
        self.shards[shard].remote.load.load(Ordering::Relaxed)
    }

    fn least_loaded(&self) -> (usize, usize) {
        (0..self.shards.len())
            .map(|i| (i, self.load(i)))
            .min_by_key(|&(i, load)| (load, i))
            .expect("a host has a shard")
    }

    /// Whether every shard waits on another and none can: each is parked
    /// stuck with no wake pending, and none ran a pass between two looks
    /// (so no task ran that could have woken another).
    pub(crate) fn deadlocked(&self) -> bool {
        if self.kept_open() {
            // Work may come from the cluster at any moment.
            return false;
        }
        let look = || {
            self.shards
                .iter()
                .map(|s| {
                    let r = &s.remote;
                    let still = r.parked_stuck.load(Ordering::SeqCst) && !r.has_pending_wakes();
                    (still, r.passes.load(Ordering::SeqCst))
                })
                .collect::<Vec<_>>()
        };
        let first = look();
        if !first.iter().all(|&(stuck, _)| stuck) {
            return false;
        }
        let confirmed = self.shards.iter().all(|s| s.core().stuck_now());
        confirmed && look() == first
    }

    /// Tasks of every shard that have not ended.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// How the tasks of `app` have fared so far.
    pub(crate) fn stats(&self, app: AppId) -> AppStats {
        let mut stats = self.apps().stats(app);
        // Each lock taken alone: a shard never waits on another's here.
        for shard in self.all() {
            stats.cpu += shard.core().live_cpu(app);
        }
        let queues = self.queues();
        stats.queue_bytes = queues.bytes_of(app) as u64;
        stats.queue_items = queues.items_of(app) as u64;
        stats
    }

    /// Scheduler passes begun so far, over every shard.
    pub(crate) fn passes(&self) -> u64 {
        let passes = self
            .all()
            .iter()
            .map(|s| s.remote.passes.load(Ordering::SeqCst));
        passes.sum()
    }

    /// Wake latencies of every shard's polls so far.
    pub(crate) fn wake_latencies(&self) -> Latencies {
        let mut all = Latencies::default();
        for shard in self.all() {
            shard.remote.wake_latency.read_into(&mut all);
        }
        all
    }

    /// Tasks queued to run in their shard's next pass, over every shard.
    pub(crate) fn queued(&self) -> usize {
        self.all().iter().map(|s| s.core().queued()).sum()
    }

    /// Asks every shard to cancel its tasks and stop.
    pub(crate) fn request_stop(&self) {
        for shard in self.all() {
            shard.remote.request_stop();
        }
    }

    /// Whether a stop was asked for.
    pub(crate) fn stop_requested(&self) -> bool {
        self.shards[0].remote.stop_requested()
    }
}
