//! What a leader-gated reconcile receives: the term it runs in, and the
//! application's context.

use std::fmt;
use std::sync::Arc;

use crate::Leadership;

/// The context a reconcile of a [`LeaderController`](super::LeaderController)
/// receives: the application's context (this derefs to it) and the
/// [`Leadership`] guard of the term the reconcile runs in.
///
/// The guard is held as long as this context is: a shutdown releases the
/// Lease only once every reconcile in flight has dropped it (up to the
/// elector's drain timeout). Keep it no longer than the reconcile runs.
pub struct LeaderContext<Ctx> {
    leadership: Leadership,
    data: Arc<Ctx>,
}

impl<Ctx> LeaderContext<Ctx> {
    pub(super) fn new(leadership: Leadership, data: Arc<Ctx>) -> Self {
        Self { leadership, data }
    }

    /// The guard of the term this reconcile runs in: its
    /// [`fencing_token`](crate::state::Term::fencing_token),
    /// [`deadline`](crate::state::Term::deadline),
    /// [`is_leading`](crate::state::Term::is_leading) and a token cancelled
    /// when it ends.
    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    /// The fencing token of the term this reconcile runs in: a later term
    /// of any replica has a larger one. Write it next to what the
    /// reconcile changes (an annotation, a column) and refuse writes that
    /// carry a smaller one; see the controller guide.
    #[must_use]
    pub fn fencing_token(&self) -> u64 {
        self.leadership.fencing_token()
    }

    /// The application's context, as given to
    /// [`LeaderController::run`](super::LeaderController::run).
    #[must_use]
    pub fn data(&self) -> &Arc<Ctx> {
        &self.data
    }
}

impl<Ctx> std::ops::Deref for LeaderContext<Ctx> {
    type Target = Ctx;

    fn deref(&self) -> &Ctx {
        &self.data
    }
}

impl<Ctx> fmt::Debug for LeaderContext<Ctx> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderContext")
            .field("leadership", &self.leadership)
            .finish_non_exhaustive()
    }
}
