//! A term of leadership as its holder sees it: the guard
//! [`ElectorView::became_leader`](crate::ElectorView::became_leader)
//! returns.

use std::sync::Arc;

use crate::state::Term;

/// Completes once `term`'s deadline has passed for good: the elector can
/// no longer keep other replicas out.
pub(crate) async fn unprotected(term: &Term) {
    loop {
        let deadline = term.deadline();
        tokio::time::sleep_until(deadline).await;
        if tokio::time::Instant::now() >= term.deadline() {
            return;
        }
    }
}

// === impl Leadership ===

/// A term of leadership, returned by [`ElectorView::became_leader`](crate::ElectorView::became_leader).
///
/// Its [`token`](crate::state::Term::token) is cancelled the moment leadership ends:
/// scope leader-only work to it. On shutdown the elector waits (up to its
/// drain timeout) for every guard to be dropped before it releases the Lease,
/// renewing the Lease meanwhile, so leader work can finish before the next
/// leader starts. (When leadership is *lost* instead, say to a partition, the
/// Lease is no longer ours to keep: stop the work as soon as the token is
/// cancelled.)
#[must_use = "the guard tells when leadership ends; shutdown waits for it to be dropped"]
#[derive(Clone, Debug)]
pub struct Leadership {
    pub(super) identity: Arc<str>,
    pub(super) term: Term,
    pub(super) _drain: crate::shared::DrainGuard,
}

impl std::ops::Deref for Leadership {
    type Target = Term;

    /// The term this guard holds: its [`fencing_token`](Term::fencing_token),
    /// [`token`](Term::token), [`deadline`](Term::deadline) and
    /// [`is_leading`](Term::is_leading).
    fn deref(&self) -> &Term {
        &self.term
    }
}

impl Leadership {
    /// The identity that leads.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// A future that completes when the term's token is cancelled and owns
    /// what it needs (`'static`): for kube-runtime's
    /// `Controller::graceful_shutdown_on`, without `.token().clone()`.
    pub fn cancelled_owned(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.term.token.clone().cancelled_owned()
    }

    /// Completes when leadership ends: the token is cancelled, or the term's
    /// deadline passes.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn lost(&self) {
        tokio::select! {
            () = self.term.token.cancelled() => {}
            () = unprotected(&self.term) => {}
        }
    }
}
