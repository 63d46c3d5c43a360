//! A term of leadership as its holder sees it: the guard
//! [`ElectorHandle::became_leader`](crate::ElectorHandle::became_leader)
//! returns.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::state::Term;

/// Completes once `term`'s deadline has passed for good: the elector can
/// no longer keep other replicas out.
pub(super) async fn unprotected(term: &Term) {
    loop {
        let deadline = term.deadline();
        tokio::time::sleep_until(deadline).await;
        if tokio::time::Instant::now() >= term.deadline() {
            return;
        }
    }
}

// === impl Leadership ===

/// A term of leadership, returned by [`ElectorHandle::became_leader`](crate::ElectorHandle::became_leader).
///
/// Its [`token`](Leadership::token) is cancelled the moment leadership ends:
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

impl Leadership {
    /// The identity that leads.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The fencing token of this term: the `resourceVersion` of the write
    /// that started it.
    ///
    /// On kube-apiserver a resourceVersion is etcd's revision, which every
    /// write to any object raises, so a later term of any leader on this
    /// Lease, from any replica, has a larger token, also after the Lease was
    /// deleted and re-created. A store that remembers the largest token it
    /// accepted and refuses smaller ones therefore refuses writes from every
    /// earlier term. Tokens order terms only on one cluster (one etcd): a
    /// restore of etcd from a backup, or a server whose resourceVersions are
    /// not integers (then the token is 0), breaks the order.
    #[must_use]
    pub fn fencing_token(&self) -> u64 {
        self.term.fencing_token
    }

    /// The term this guard belongs to.
    #[must_use]
    pub fn term(&self) -> &Term {
        &self.term
    }

    /// A token cancelled the moment leadership ends: a child of the term's
    /// own (a new one per call), so cancelling it stops only what listens
    /// to it, never the term, its renews or its other guards. To give up
    /// leadership, use [`ElectorHandle::hand_over`](crate::ElectorHandle::hand_over)
    /// or a shutdown.
    #[must_use]
    pub fn token(&self) -> CancellationToken {
        self.term.token()
    }

    /// Whether this term still holds: judged from the term's own deadline
    /// as well as its token, so the answer is right even when the elector's
    /// task cannot run (a blocked runtime) to end the term.
    #[must_use]
    pub fn is_leading(&self) -> bool {
        self.term.is_leading()
    }

    /// When this term ends unless a renew extends it (local monotonic clock).
    #[must_use]
    pub fn deadline(&self) -> tokio::time::Instant {
        self.term.deadline()
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
