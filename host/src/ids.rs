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
