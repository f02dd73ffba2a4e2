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
    /// Whether it can still hear anything (a dropped monitor cannot).
    fn alive(&self) -> bool {
        match self {
            Watcher::Monitor(watch) => watch.strong_count() > 0,
            Watcher::Link(_) => true,
        }
    }

    /// The same watch as `other` (a task linked twice is one link).
    fn same(&self, other: &Watcher) -> bool {
        match (self, other) {
            (Watcher::Link(a), Watcher::Link(b)) => Arc::ptr_eq(a, b),
            (Watcher::Monitor(a), Watcher::Monitor(b)) => a.ptr_eq(b),
            _ => false,
        }
    }
}

/// Adds `watcher` to `watchers`, first dropping the dropped monitors when
/// the list doubles, so that a task watched and unwatched again and again
/// keeps only the live watches.
pub(crate) fn add_watcher(watchers: &mut Vec<Watcher>, watcher: Watcher) {
    if watchers.iter().any(|w| w.same(&watcher)) {
        return;
    }
    if watchers.len() >= 8 && watchers.len().is_power_of_two() {
        watchers.retain(Watcher::alive);
    }
    watchers.push(watcher);
}

/// Who started a task, and who started that one, up to a task the
/// embedder added: kept while any task below needs it.
pub(crate) struct Lineage {
    /// The task's id.
    pub(crate) id: u64,
    /// Its parent's lineage; `None` for a task the embedder added (or a
    /// remote spawn this host runs).
    pub(crate) parent: Option<Arc<Lineage>>,
}

impl Lineage {
    /// Whether the task `ancestor` started this one, or started one that
    /// did, and so on.
    pub(crate) fn descends_from(&self, ancestor: u64) -> bool {
        let mut up = self.parent.as_deref();
        while let Some(node) = up {
            if node.id == ancestor {
                return true;
            }
            up = node.parent.as_deref();
        }
        false
    }
}

impl Drop for Lineage {
    fn drop(&mut self) {
        // Iteratively: a chain of a million tasks each started by the one
        // before would overflow the stack dropped recursively.
        let mut next = self.parent.take();
        while let Some(node) = next {
            next = match Arc::try_unwrap(node) {
                Ok(mut node) => node.parent.take(),
                Err(_) => None,
            };
        }
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

    fn node(id: u64, parent: Option<&Arc<Lineage>>) -> Arc<Lineage> {
        Arc::new(Lineage {
            id,
            parent: parent.cloned(),
        })
    }

    #[test]
    fn a_lineage_knows_every_ancestor_and_drops_a_long_chain() {
        let root = node(1, None);
        let child = node(2, Some(&root));
        let grandchild = node(3, Some(&child));
        assert!(grandchild.descends_from(1) && grandchild.descends_from(2));
        assert!(!grandchild.descends_from(3) && !child.descends_from(3));
        let mut tip = node(0, None);
        for id in 1..1_000_000 {
            tip = node(id, Some(&tip));
        }
        drop(tip);
    }

    #[test]
    fn dropped_monitors_are_pruned_and_links_are_not_doubled() {
        let mut watchers = Vec::new();
        let kept = Arc::new(Watch::default());
        add_watcher(&mut watchers, Watcher::Monitor(Arc::downgrade(&kept)));
        for _ in 0..100 {
            let gone = Arc::new(Watch::default());
            add_watcher(&mut watchers, Watcher::Monitor(Arc::downgrade(&gone)));
        }
        assert!(watchers.len() < 20, "{}", watchers.len());
        assert!(
            watchers
                .iter()
                .any(|w| matches!(w, Watcher::Monitor(m) if m.ptr_eq(&Arc::downgrade(&kept))))
        );
        let cell = Arc::new(TaskCell::new(crate::ids::TaskKey {
            shard: 0,
            slot: 0,
            id: 9,
        }));
        let before = watchers.len();
        add_watcher(&mut watchers, Watcher::Link(cell.clone()));
        add_watcher(&mut watchers, Watcher::Link(cell));
        assert_eq!(watchers.len(), before + 1);
    }
}
