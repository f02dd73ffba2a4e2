//! How a task's end reaches whoever waits for it: join, cancel, release
//! (a handle let go of), and the outcomes the embedder takes.

use super::{Core, Entry, Holder, JoinState, TaskFuture, Wait, lock};
use crate::apps::Ended;
use crate::ids::{AppId, TaskCell, TaskKey};
use crate::outcome::{Outcome, TaskError};
use crate::say::{debug_in, say};
use crate::watch::{End, Watcher, add_watcher, end_of};

/// What [`Core::watch`] found.
pub(crate) enum Watched {
    /// The task runs: the watcher will hear of its end.
    Running,
    /// The task ended so.
    Ended(End),
}

impl Core {
    /// The outcome of `key` if it ended, which the caller now owns; else
    /// records `joiner` to be woken when it ends.
    pub(crate) fn poll_join(&mut self, key: TaskKey, joiner: TaskKey) -> JoinState {
        let Some(e) = self.entry(key) else {
            return JoinState::Gone;
        };
        if e.ended() {
            let outcome = e.outcome.take().expect("ended task has an outcome");
            let app = self.remove_entry(key.slot).app;
            lock(&self.apps).outcome_taken(app);
            return JoinState::Ended(outcome);
        }
        e.joiner = Some(joiner);
        JoinState::Running
    }

    /// Forgets the joiner of `key` (its join timed out or was dropped).
    pub(crate) fn withdraw_join(&mut self, key: TaskKey) {
        if let Some(e) = self.entry(key) {
            e.joiner = None;
        }
    }

    /// The holder of `key` lets go of it: the task is detached, and if it
    /// already ended with an error nobody took, that error is reported now.
    pub(crate) fn release(&mut self, key: TaskKey) {
        let Some(e) = self.entry(key) else { return };
        e.holder = Holder::Nobody;
        e.joiner = None;
        if e.ended() {
            let e = self.remove_entry(key.slot);
            lock(&self.apps).outcome_taken(e.app);
            report_unjoined(&e, e.outcome.as_ref().expect("ended"));
        }
    }

    /// Ends `key` with `cancelled` unless it has ended already. Its future
    /// is kept in [`Core::take_doomed`], for the caller to drop with no
    /// lock held.
    pub(crate) fn cancel(&mut self, key: TaskKey) {
        let Some(e) = self.entry(key) else { return };
        if e.outcome.is_some() {
            return;
        }
        let Some(future) = e.future.take() else {
            // Being polled while it is cancelled (by another shard's task,
            // or by itself: a link to a task that failed already): it ends
            // as that poll returns.
            e.cancelled = true;
            return;
        };
        self.doomed.push(future);
        self.finish(key, Err(TaskError::Cancelled));
    }

    /// Records the end of `key` and hands the outcome to whoever holds it.
    pub(super) fn finish(&mut self, key: TaskKey, outcome: Outcome) {
        self.set_wait(key, Wait::Runnable);
        self.live -= 1;
        let e = self.entry(key).expect("finishing a live task");
        e.queued = false;
        // Cancelled before it ever ran.
        let never_ran = !std::mem::replace(&mut e.started, true);
        let (app, holder, cpu) = (e.app, e.holder, e.cpu);
        self.unstarted -= usize::from(never_ran);
        self.forget_app_task(app);
        let main = holder.is_main();
        let end = Ended {
            held: holder.keeps_outcome(),
            main,
            counted: holder.counted(),
            cpu,
        };
        let left = lock(&self.apps).ended(app, &outcome, end);
        self.publish_load();
        if left == 0 {
            // The host's last task: every shard's loop may stop now.
            for peer in self.peers.iter() {
                peer.interrupt();
            }
        }
        let e = self.entry(key).expect("finishing a live task");
        let joiner = e.joiner.take();
        e.cell.mark_ended();
        report_end(e, &outcome);
        let watchers = std::mem::take(&mut e.watchers);
        let how = end_of(&outcome);
        if !e.holder.keeps_outcome() {
            self.remove_entry(key.slot);
        } else {
            e.outcome = Some(outcome);
        }
        if let Some(joiner) = joiner {
            self.schedule(joiner);
        }
        self.tell(watchers, &how);
    }

    /// Tells `watchers` that their task ended `how`: each monitor hears
    /// it, and if it failed, each linked task is cancelled (here, or
    /// through its own shard).
    fn tell(&mut self, watchers: Vec<Watcher>, how: &End) {
        for watcher in watchers {
            match watcher {
                Watcher::Monitor(watch) => {
                    if let Some(watch) = watch.upgrade() {
                        watch.ended(how.clone());
                    }
                }
                Watcher::Link(cell) if how.is_err() => self.linked_doomed.push(cell),
                Watcher::Link(_) => {}
            }
        }
        // Cancelling one ends it, which may find more: a loop here, not
        // a recursion as deep as the chain a guest built.
        if !std::mem::replace(&mut self.telling, true) {
            while let Some(cell) = self.linked_doomed.pop() {
                self.cancel_cell(cell);
            }
            self.telling = false;
        }
    }

    /// Cancels the task of `cell`: here if it is on this shard (it cannot
    /// leave while this core is locked), else through its shard's remote
    /// half (a shard never locks another's core while holding its own).
    pub(crate) fn cancel_cell(&mut self, cell: std::sync::Arc<TaskCell>) {
        let key = cell.key();
        if key.shard == self.index {
            self.cancel(key);
        } else {
            self.peers[key.shard].request_cancel(cell);
        }
    }

    /// Whether `key` was cancelled while it runs (it ends when its poll
    /// returns): what a spawn of it is refused for.
    pub(crate) fn being_cancelled(&mut self, key: TaskKey) -> bool {
        self.entry(key).is_some_and(|e| e.cancelled)
    }

    /// Removes the entry at `slot` from the table and the directory.
    pub(super) fn remove_entry(&mut self, slot: usize) -> Entry {
        let e = self.tasks.remove(slot);
        self.directory.remove(e.id);
        e
    }

    /// Adds `watcher` to the task `key` if it is of `app`. If the task has
    /// ended already (its outcome held), says how instead; `None`: no such
    /// task of that app here.
    pub(crate) fn watch(&mut self, key: TaskKey, app: AppId, watcher: Watcher) -> Option<Watched> {
        let e = self.entry(key).filter(|e| e.app == app)?;
        Some(match &e.outcome {
            Some(outcome) => Watched::Ended(end_of(outcome)),
            None => {
                add_watcher(&mut e.watchers, watcher);
                Watched::Running
            }
        })
    }

    /// Cancels every task of `app` here that `ancestor` started, or that
    /// one of those did, and so on; how many were not cancelled already.
    pub(crate) fn cancel_descendants(&mut self, ancestor: u64, app: AppId) -> usize {
        let doomed: Vec<TaskKey> = self
            .tasks
            .iter()
            .filter(|(_, e)| {
                e.app == app
                    && e.outcome.is_none()
                    && !e.cancelled
                    && e.lineage.descends_from(ancestor)
            })
            .map(|(slot, e)| TaskKey {
                shard: self.index,
                slot,
                id: e.id,
            })
            .collect();
        for &key in &doomed {
            self.cancel(key);
        }
        doomed.len()
    }

    /// One task of `app` fewer on this shard.
    pub(super) fn forget_app_task(&mut self, app: crate::ids::AppId) {
        if let Some(count) = self.app_tasks.get_mut(&app) {
            *count -= 1;
            if *count == 0 {
                self.app_tasks.remove(&app);
                self.served.remove(&app);
            }
        }
    }

    /// The live tasks of `app` on this shard.
    pub(crate) fn app_tasks(&self, app: crate::ids::AppId) -> usize {
        self.app_tasks.get(&app).copied().unwrap_or(0)
    }

    /// The CPU time the live tasks of `app` on this shard have used so far.
    pub(crate) fn live_cpu(&self, app: crate::ids::AppId) -> std::time::Duration {
        self.tasks
            .iter()
            .filter(|(_, e)| e.app == app && e.outcome.is_none())
            .map(|(_, e)| e.cpu)
            .sum()
    }

    /// Tasks queued to run in this shard's next pass.
    pub(crate) fn queued(&self) -> usize {
        self.run_queue.len()
    }

    /// Takes the outcome of an ended task that the embedder holds.
    pub(crate) fn take_outcome(&mut self, key: TaskKey) -> Option<Outcome> {
        let e = self.entry(key)?;
        if !e.ended() {
            return None;
        }
        let outcome = e.outcome.take();
        let app = self.remove_entry(key.slot).app;
        lock(&self.apps).outcome_taken(app);
        outcome
    }

    /// Futures of tasks cancelled outside a pass, to drop with no lock held.
    pub(crate) fn take_doomed(&mut self) -> Vec<TaskFuture> {
        std::mem::take(&mut self.doomed)
    }

    /// Every future in the table, taken out to be dropped with no lock
    /// held: the host is going away.
    pub(crate) fn take_all_futures(&mut self) -> Vec<TaskFuture> {
        let mut all = self.take_doomed();
        for e in self.tasks.drain() {
            self.directory.remove(e.id);
            all.extend(e.future);
        }
        self.run_queue.clear();
        self.reactor.clear_timers();
        all
    }

    pub(crate) fn unstarted(&self) -> usize {
        self.unstarted
    }

    pub(crate) fn has_runnable(&self) -> bool {
        !self.run_queue.is_empty()
    }

    pub(crate) fn has_io_waits(&self) -> bool {
        self.io_waits > 0 || self.reactor.has_io_sources()
    }

    pub(crate) fn has_timeouts(&self) -> bool {
        self.reactor.has_timers()
    }
}

/// Logs the end of task `e` (at debug level), and its failure if nobody
/// will take its outcome.
fn report_end(e: &Entry, outcome: &Outcome) {
    let (id, entry) = (e.id, &e.entry);
    let how = outcome
        .as_ref()
        .map_or_else(TaskError::kind, |_| "succeeded");
    debug_in!(e.span, { task = id, outcome = how, }, "task {id} (`{entry}`) ended: {how}");
    if e.holder == Holder::Nobody {
        report_unjoined(e, outcome);
    }
}

/// Logs that a task nobody joined failed (docs/design.md §4 row 12).
fn report_unjoined(e: &Entry, outcome: &Outcome) {
    match outcome {
        Ok(_) | Err(TaskError::Cancelled) => {}
        Err(error) => say!(
            warn,
            in e.span,
            { task = e.id, outcome = error.kind(), },
            "task {} (`{}`) {error}",
            e.id,
            e.entry
        ),
    }
}
