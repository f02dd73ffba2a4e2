//! Monitors, links and lineage (WIT 0.1.3; docs/design.md §4 row 14): what
//! a task's entry keeps of who hears of its end, how a task is found by
//! id, and who started whom, for `cancel-tree`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;

use crate::ids::TaskCell;
use crate::outcome::TaskError;

/// Takes `mutex` whatever a panic left in it (as `shard::lock`, which
/// this module sits below).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a task ended, without its value: what a monitor says.
pub(crate) type End = Result<(), TaskError>;

/// The end of a task that ended with `outcome`.
pub(crate) fn end_of(outcome: &crate::outcome::Outcome) -> End {
    outcome.as_ref().map(|_| ()).map_err(Clone::clone)
}

/// Where a monitor learns how its task ended (shared by the `monitor`
/// resource and, weakly, the watched task's entry).
#[derive(Default)]
pub(crate) struct Watch {
    /// The end, once it came, and the task waiting for it.
    state: Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    /// How the task ended; `None` while it runs.
    end: Option<End>,
    /// Woken when the end comes.
    waiter: Option<Waker>,
}

impl Watch {
    /// Records the end and wakes the waiter.
    pub(crate) fn ended(&self, end: End) {
        let waiter = {
            let mut state = lock(&self.state);
            state.end = Some(end);
            state.waiter.take()
        };
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }

    /// The end if it came; else `waker` is woken when it does.
    pub(crate) fn poll(&self, waker: &Waker) -> Option<End> {
        let mut state = lock(&self.state);
        if state.end.is_none() {
            state.waiter = Some(waker.clone());
        }
        state.end.clone()
    }
}

/// Who hears of a task's end.
pub(crate) enum Watcher {
    /// A monitor, while its resource lives.
    Monitor(Weak<Watch>),
    /// A linked task: cancelled if this one fails.
    Link(Arc<TaskCell>),
}

impl Watcher {
    /// Whether it can still hear anything (a dropped monitor, an ended
    /// linked task cannot).
    fn alive(&self) -> bool {
        match self {
            Watcher::Monitor(watch) => watch.strong_count() > 0,
            Watcher::Link(cell) => !cell.has_ended(),
        }
    }

    /// What it points at, to find the same watch twice.
    fn addr(&self) -> usize {
        match self {
            Watcher::Monitor(watch) => watch.as_ptr() as usize,
            Watcher::Link(cell) => Arc::as_ptr(cell) as usize,
        }
    }
}

/// Adds `watcher` to `watchers`. Each time the list reaches a power of two
/// (from 8), the watches that can hear nothing more are dropped and a
/// watch there twice (a task that linked twice) is kept once: so a task
/// watched by many short-lived tasks, or linked to again and again, keeps
/// at most about twice its live watches, at an amortized O(log n) a watch.
pub(crate) fn add_watcher(watchers: &mut Vec<Watcher>, watcher: Watcher) {
    if watchers.len() >= 8 && watchers.len().is_power_of_two() {
        watchers.retain(Watcher::alive);
        watchers.sort_by_key(Watcher::addr);
        watchers.dedup_by_key(|w| w.addr());
    }
    watchers.push(watcher);
}

/// The most generations a lineage names: `cancel-tree` reaches the tasks
/// at most this many spawns below the one cancelled.
pub(crate) const MAX_GENERATIONS: usize = 64;

/// A task's id and its ancestors' (its parent first, then that one's, up
/// to [`MAX_GENERATIONS`]): who started whom, for `cancel-tree`. A copy,
/// not a chain, so that no ended task's record outlives it: a task that
/// starts its successor and ends, a million times over, holds nothing of
/// the million.
#[derive(Clone)]
pub(crate) struct Lineage {
    /// Its id, then its ancestors' ids, nearest first.
    ids: Arc<[u64]>,
}

impl Lineage {
    /// The lineage of a task nobody started (the embedder added it).
    pub(crate) fn root(id: u64) -> Self {
        Lineage {
            ids: Arc::new([id]),
        }
    }

    /// The lineage of task `id`, started by this one.
    pub(crate) fn child(&self, id: u64) -> Self {
        let ancestors = self.ids.iter().take(MAX_GENERATIONS).copied();
        Lineage {
            ids: std::iter::once(id).chain(ancestors).collect(),
        }
    }

    /// Whether the task `ancestor` started this one, or started one that
    /// did, and so on (up to [`MAX_GENERATIONS`]).
    pub(crate) fn descends_from(&self, ancestor: u64) -> bool {
        self.ids[1..].contains(&ancestor)
    }
}

/// The live tasks by id, for `monitor` and `link`: one map per stripe
/// (by id), each behind its own lock, so that shards spawning at once
/// rarely meet.
pub(crate) struct Directory {
    /// The stripes.
    stripes: Box<[Stripe]>,
}

/// Part of a [`Directory`]: the tasks whose id falls to it.
type Stripe = Mutex<HashMap<u64, Arc<TaskCell>>>;

/// How many stripes a directory has.
const STRIPES: usize = 16;

impl Directory {
    pub(crate) fn new() -> Self {
        Directory {
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
        }
    }

    fn stripe(&self, id: u64) -> &Stripe {
        &self.stripes[id as usize % STRIPES]
    }

    /// Lists a task by its id.
    pub(crate) fn insert(&self, cell: &Arc<TaskCell>) {
        let id = cell.key().id;
        lock(self.stripe(id)).insert(id, cell.clone());
    }

    /// Forgets the task `id` (its entry left the table).
    pub(crate) fn remove(&self, id: u64) {
        lock(self.stripe(id)).remove(&id);
    }

    /// The task `id`, if it is listed.
    pub(crate) fn find(&self, id: u64) -> Option<Arc<TaskCell>> {
        lock(self.stripe(id)).get(&id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TaskKey;

    #[test]
    fn a_lineage_knows_its_ancestors_up_to_the_cap() {
        let root = Lineage::root(1);
        let child = root.child(2);
        let grandchild = child.child(3);
        assert!(grandchild.descends_from(1) && grandchild.descends_from(2));
        assert!(!grandchild.descends_from(3) && !child.descends_from(3));
        let mut tip = root.clone();
        for id in 2..1000 {
            tip = tip.child(id);
        }
        assert!(tip.descends_from(999 - MAX_GENERATIONS as u64));
        assert!(!tip.descends_from(999 - MAX_GENERATIONS as u64 - 1));
        assert_eq!(tip.ids.len(), MAX_GENERATIONS + 1);
    }

    fn cell(id: u64) -> Arc<TaskCell> {
        Arc::new(TaskCell::new(TaskKey {
            shard: 0,
            slot: 0,
            id,
        }))
    }

    #[test]
    fn dead_watches_are_pruned_and_a_link_twice_is_kept_once() {
        let mut watchers = Vec::new();
        let kept = Arc::new(Watch::default());
        add_watcher(&mut watchers, Watcher::Monitor(Arc::downgrade(&kept)));
        for _ in 0..100 {
            let gone = Arc::new(Watch::default());
            add_watcher(&mut watchers, Watcher::Monitor(Arc::downgrade(&gone)));
        }
        assert!(watchers.len() < 20, "{}", watchers.len());
        // The same task linking again and again, and tasks that ended.
        let linker = cell(9);
        for id in 0..1000 {
            add_watcher(&mut watchers, Watcher::Link(linker.clone()));
            let ended = cell(100 + id);
            ended.mark_ended();
            add_watcher(&mut watchers, Watcher::Link(ended));
        }
        assert!(watchers.len() < 20, "{}", watchers.len());
        let live = watchers.iter().filter(|w| w.alive()).count();
        assert!(live >= 2, "the monitor kept and the live linker");
    }
}
