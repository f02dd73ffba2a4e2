//! Ids shared across the host, at the bottom of its module graph.

/// Which app a task, queue or socket belongs to: one per loaded
/// [`crate::Program`] (a tenant, in `serve`).
pub(crate) type AppId = u64;

/// Names a task in its scheduler's table: its slot, and its id to detect a
/// reused slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaskKey {
    /// The shard that runs it.
    pub(crate) shard: usize,
    /// Where it sits in the table.
    pub(crate) slot: usize,
    /// Unique over the host's life, never reused; the guest's task id.
    pub(crate) id: u64,
}

/// Where a task is now: its key, which changes when an idle shard takes
/// it from a busy one (docs/design.md §3). Shared by the task's state,
/// its entry, its waker and the handles on it; changed only by a shard
/// that holds the cores of both the shard it leaves and the one it joins,
/// so that a reader who locks the shard a key names and finds the key
/// unchanged knows the task is there.
#[derive(Debug)]
pub(crate) struct TaskCell {
    /// The task's id, for good.
    id: u64,
    /// Its shard (high 16 bits) and slot (low 48 bits).
    place: std::sync::atomic::AtomicU64,
    /// The task has ended (its watchers may drop it).
    ended: std::sync::atomic::AtomicBool,
}

impl TaskCell {
    /// The cell of a task at `key`.
    pub(crate) fn new(key: TaskKey) -> Self {
        Self {
            id: key.id,
            place: std::sync::atomic::AtomicU64::new(pack(key)),
            ended: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Records that the task ended.
    pub(crate) fn mark_ended(&self) {
        self.ended.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the task has ended.
    pub(crate) fn has_ended(&self) -> bool {
        self.ended.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Where the task is now.
    pub(crate) fn key(&self) -> TaskKey {
        let place = self.place.load(std::sync::atomic::Ordering::Acquire);
        TaskKey {
            shard: (place >> SLOT_BITS) as usize,
            slot: (place & ((1 << SLOT_BITS) - 1)) as usize,
            id: self.id,
        }
    }

    /// Records that the task moved to `key` (its id unchanged).
    pub(crate) fn moved_to(&self, key: TaskKey) {
        debug_assert_eq!(key.id, self.id);
        self.place
            .store(pack(key), std::sync::atomic::Ordering::Release);
    }
}

/// Bits of a packed place that hold the slot.
const SLOT_BITS: u32 = 48;

fn pack(key: TaskKey) -> u64 {
    debug_assert!(key.shard < 1 << 16 && (key.slot as u64) < 1 << SLOT_BITS);
    ((key.shard as u64) << SLOT_BITS) | key.slot as u64
}
