//! Weighted fair share between apps (docs/design.md §3): while the tasks
//! of several apps live on a shard, the CPU time each app's tasks use
//! there is charged to it divided by its `share` ([`AppLimits::share`]),
//! and a pass leaves out the apps served more than half a time slice
//! ahead of the least-served one (what an app gains on the others is then
//! at most that, and a slice's charge): their tasks wait, in order, for a later pass. So
//! over time CPU-bound apps get CPU in proportion to their shares, while an
//! app whose tasks mostly wait loses nothing (it is charged only what it
//! uses). Each shard keeps its own accounts: with tasks on several shards,
//! the shares hold per shard.
//!
//! [`AppLimits::share`]: crate::AppLimits::share

use std::collections::VecDeque;
use std::time::Duration;

use super::Core;
use crate::ids::{AppId, TaskKey};

/// How far behind the most-served app an account may fall, in slices: an
/// app that was idle comes back at most this far behind, not with every
/// slice it did not use (which would let it hold the others back as long).
const MAX_LAG_SLICES: u64 = 4;

impl Core {
    /// Charges `ran` of CPU to `app` of weight `share`, if the shard has
    /// tasks of other apps too (alone, nothing is to be shared).
    pub(super) fn charge(&mut self, app: AppId, share: u32, ran: Duration) {
        if self.app_tasks.len() > 1 {
            let weighted = ran.as_nanos() / u128::from(share.max(1));
            let account = self.served.entry(app).or_default();
            *account = account.saturating_add(weighted.try_into().unwrap_or(u64::MAX));
        }
    }

    /// Moves the tasks in `batch` of apps served too far ahead to the run
    /// queue, for a later pass.
    pub(super) fn hold_back_served(&mut self, batch: &mut VecDeque<TaskKey>) {
        // A key whose task ended (or whose slot was reused) is nobody's:
        // it stays in the batch, which skips it, and counts for no app.
        let app_of = |core: &Core, key: &TaskKey| {
            let e = core.tasks.get(key.slot)?;
            (e.id == key.id && e.future.is_some()).then_some(e.app)
        };
        let mut apps: Vec<(AppId, u64)> = Vec::new();
        for key in batch.iter() {
            let Some(app) = app_of(self, key) else {
                continue;
            };
            if !apps.iter().any(|(a, _)| *a == app) {
                apps.push((app, self.served.get(&app).copied().unwrap_or(0)));
            }
        }
        if apps.len() < 2 {
            return;
        }
        let slice = u64::try_from(self.time_slice.as_nanos()).unwrap_or(u64::MAX);
        let most = apps.iter().map(|&(_, v)| v).max().unwrap_or(0);
        let floor = most.saturating_sub(slice.saturating_mul(MAX_LAG_SLICES));
        for (app, served) in &mut apps {
            if *served < floor {
                *served = floor;
                self.served.insert(*app, floor);
            }
        }
        let least = apps.iter().map(|&(_, v)| v).min().unwrap_or(0);
        let ahead: Vec<AppId> = apps
            .iter()
            .filter(|&&(_, v)| v > least.saturating_add(slice / 2))
            .map(|&(a, _)| a)
            .collect();
        if ahead.is_empty() {
            return;
        }
        let mut kept = VecDeque::with_capacity(batch.len());
        for key in batch.drain(..) {
            if app_of(self, &key).is_some_and(|app| ahead.contains(&app)) {
                self.run_queue.push_back(key);
            } else {
                kept.push_back(key);
            }
        }
        *batch = kept;
    }
}
