//! What the shard coordinator publishes for the workers and the handle.

use std::sync::Arc;

use super::assign::Assignment;

/// What the workers act on: the assignment, and whether this replica is
/// leaving (then every shard goes to its next owner, and the workers end).
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) assignment: Assignment,
    pub(crate) leaving: bool,
    /// Whether this replica may own shards: every live replica it sees
    /// shards with its count, or the one that keeps serving in a
    /// disagreement does. While not, it takes no shard and lets go of
    /// those it holds.
    pub(crate) serving: bool,
    /// Why not serving, for users (`ShardedHandle::blocked`).
    pub(crate) blocked: Option<Arc<str>>,
}

impl Plan {
    pub(crate) fn empty(shards: u32) -> Self {
        Self {
            assignment: Assignment::compute::<&str>(shards, &[]),
            leaving: false,
            serving: true,
            blocked: None,
        }
    }
}
