//! Ids shared across the host, at the bottom of its module graph.

/// Which app a task, queue or socket belongs to: one per loaded
/// [`crate::Program`] (a tenant, in `serve`).
pub(crate) type AppId = u64;
