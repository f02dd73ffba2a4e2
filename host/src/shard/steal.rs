//! Work stealing (docs/design.md §3): a shard with nothing to run takes
//! half of the tasks queued on the busiest shard.
//!
//! A task moves only while it is queued to run, never while polled, only
//! if its last poll ended in a yield or a preemption (it wants CPU; a task
//! woken by a queue or a socket stays beside the tasks it talks to), and
//! not if the embedder holds it (a [`crate::TaskId`] names one place). It
//! moves with everything in its entry; its `TaskCell` changes under both
//! shards' locks, so whoever locks the shard a key names and finds the key
//! unchanged has found it, and its waker follows it. Its sockets stay
//! registered where they were: their readiness wakes it across shards.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use super::{Core, Entry, Shard};
use crate::ids::TaskKey;

/// Where a task to give away waits.
#[derive(Clone, Copy)]
enum Queue {
    /// The run queue: for the next pass.
    Next,
    /// The pass under way, not reached yet.
    Batch,
}

impl Core {
    /// Takes out up to `max` queued tasks that may move, from the back of
    /// the run queue and then of the pass under way (the last to run here).
    fn give_away(&mut self, max: usize) -> Vec<Entry> {
        let mut taken = self.give_away_from(Queue::Next, max);
        let more = self.give_away_from(Queue::Batch, max - taken.len());
        taken.splice(0..0, more);
        taken
    }

    fn queue(&mut self, which: Queue) -> &mut VecDeque<TaskKey> {
        match which {
            Queue::Next => &mut self.run_queue,
            Queue::Batch => &mut self.batch,
        }
    }

    fn give_away_from(&mut self, which: Queue, max: usize) -> Vec<Entry> {
        let mut taken = Vec::new();
        let mut kept = Vec::new();
        while taken.len() < max {
            let Some(key) = self.queue(which).pop_back() else {
                break;
            };
            let movable = self.tasks.get(key.slot).is_some_and(|e| {
                e.id == key.id
                    && e.hungry
                    && e.future.is_some()
                    && e.holder != super::Holder::Embedder
            });
            if !movable {
                kept.push(key);
                continue;
            }
            let entry = self.tasks.remove(key.slot);
            self.live -= 1;
            self.unstarted -= usize::from(!entry.started);
            self.forget_app_task(entry.app);
            taken.push(entry);
        }
        self.queue(which).extend(kept.into_iter().rev());
        self.publish_load();
        taken.reverse();
        taken
    }

    /// Takes in tasks another shard gave away, queued to run here.
    fn adopt(&mut self, entries: Vec<Entry>) {
        for mut entry in entries {
            let vacant = self.tasks.vacant_entry();
            let key = TaskKey {
                shard: self.index,
                slot: vacant.key(),
                id: entry.id,
            };
            entry.cell.moved_to(key);
            entry.queued = true;
            self.live += 1;
            self.unstarted += usize::from(!entry.started);
            *self.app_tasks.entry(entry.app).or_default() += 1;
            vacant.insert(entry);
            self.run_queue.push_back(key);
        }
        self.publish_load();
    }

    /// How many hungry tasks the last pass queued for the next, for
    /// thieves to look at.
    pub(super) fn publish_queued(&mut self) {
        let hungry = std::mem::take(&mut self.hungry_queued);
        let queued = &self.reactor.remote().queued;
        queued.store(hungry.min(self.run_queue.len()), Ordering::Relaxed);
    }
}

/// Moves half of the tasks queued on the busiest of `shards` to
/// `thief` (by index); how many moved.
pub(crate) fn steal(shards: &[Shard], thief: usize) -> usize {
    let queued = |s: &Shard| s.remote.queued.load(Ordering::Relaxed);
    let Some((victim, waiting)) = shards
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != thief)
        .map(|(i, s)| (i, queued(s)))
        .max_by_key(|&(_, n)| n)
    else {
        return 0;
    };
    if waiting < 2 {
        return 0;
    }
    // Both cores, in index order: the one place a thread holds two.
    let (first, second) = (thief.min(victim), thief.max(victim));
    let mut low = shards[first].core();
    let mut high = shards[second].core();
    let (to, from) = if thief == first {
        (&mut *low, &mut *high)
    } else {
        (&mut *high, &mut *low)
    };
    let half = (from.run_queue.len() + from.batch.len()) / 2;
    let moved = from.give_away(half);
    let count = moved.len();
    shards[thief]
        .remote
        .taken
        .fetch_add(count as u64, Ordering::Relaxed);
    // What is left to take is unknown until the victim's next pass: none.
    from.reactor.remote().queued.store(0, Ordering::Relaxed);
    to.adopt(moved);
    count
}

/// Wakes a sleeping shard to steal, when `busy` has tasks to spare.
pub(crate) fn call_for_help(shards: &[Shard], busy: usize) {
    if shards[busy].remote.queued.load(Ordering::Relaxed) < 2 {
        return;
    }
    if let Some((_, idle)) = shards
        .iter()
        .enumerate()
        .find(|&(i, s)| i != busy && s.remote.is_sleeping())
    {
        idle.remote.nudge();
    }
}
