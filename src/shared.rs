//! What an elector's task shares with its handle and its reporters: the
//! drain channel of the current term, the stamps health checks read, and
//! why renews fail (for metrics). Neither side depends on the other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// Why a renew failed (the `reason` label of the failure counter).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum RenewFailure {
    /// The Lease changed since it was read.
    Conflict,
    /// The request failed or timed out.
    Error,
}

/// Held by the shared slot and by every guard of a term: once the last one
/// is dropped, the term's [`Drained`] completes. (A oneshot that is never
/// sent: a few dozen bytes, where a channel would take a block of slots.)
pub(crate) type DrainGuard = std::sync::Arc<oneshot::Sender<()>>;

/// Completes (with an error, as nothing is ever sent) when every
/// [`DrainGuard`] of its term is gone.
pub(crate) type Drained = oneshot::Receiver<()>;

/// A new term's drain: the guard to share, and what completes when it is gone.
pub(crate) fn drain() -> (DrainGuard, Drained) {
    let (guard, drained) = oneshot::channel();
    (std::sync::Arc::new(guard), drained)
}

/// State shared between the task and its handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The current term's id and the drain guard its guards clone; shutdown
    /// waits until every clone is dropped.
    drain: Mutex<Option<(u64, DrainGuard)>>,
    /// When the last successful acquire or renew was sent (health checks).
    renewed: Mutex<Option<Instant>>,
    /// Whether the task has read the Lease (or learnt it is missing) once,
    /// and what wakes those who wait for that.
    observed: AtomicBool,
    first_read: Notify,
    /// A handover asked of the task, and what wakes it to take it.
    handover: Mutex<Option<crate::elector::HandoverRequest>>,
    handover_asked: Notify,
}

impl Shared {
    pub(crate) fn set_renewed(&self, sent: Instant) {
        *self.renewed.lock().unwrap_or_else(PoisonError::into_inner) = Some(sent);
    }

    pub(crate) fn renewed(&self) -> Option<Instant> {
        *self.renewed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_observed(&self) {
        if !self.observed.swap(true, Ordering::AcqRel) {
            self.first_read.notify_waiters();
        }
    }

    pub(crate) fn has_observed(&self) -> bool {
        self.observed.load(Ordering::Acquire)
    }

    /// Completes once the task has read the Lease (or learnt it is
    /// missing), at once if it already has.
    pub(crate) async fn first_read(&self) {
        let notified = self.first_read.notified();
        tokio::pin!(notified);
        // Registered before the flag is checked, so a read in between wakes it.
        notified.as_mut().enable();
        if self.has_observed() {
            return;
        }
        notified.await;
    }

    /// Asks the task for a handover; an earlier request not yet taken is
    /// replaced (its caller hears that the elector stopped answering it).
    pub(crate) fn ask_handover(&self, request: crate::elector::HandoverRequest) {
        *self.handover.lock().unwrap_or_else(PoisonError::into_inner) = Some(request);
        self.handover_asked.notify_one();
    }

    /// Completes once a handover is asked (at once if one was asked since
    /// the last call).
    pub(crate) async fn handover_asked(&self) {
        self.handover_asked.notified().await;
    }

    pub(crate) fn take_handover(&self) -> Option<crate::elector::HandoverRequest> {
        self.handover
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    pub(crate) fn set_drain(&self, slot: Option<(u64, DrainGuard)>) {
        *self.drain.lock().unwrap_or_else(PoisonError::into_inner) = slot;
    }

    pub(crate) fn drain_for(&self, term: u64) -> Option<DrainGuard> {
        let slot = self.drain.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()
            .filter(|(id, _)| *id == term)
            .map(|(_, tx)| tx.clone())
    }
}
