//! A handover without a shutdown: the leader ends its term, lets its work
//! drain, and releases the Lease naming who takes it next, then stays a
//! candidate that steps aside for the released record.

use tokio::sync::oneshot;

use crate::error::Error;

/// To whom [`ElectorHandle::hand_over`](crate::ElectorHandle::hand_over)
/// hands the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Successor {
    /// The candidate with this identity: the release names it (in
    /// [`SUCCESSOR_ANNOTATION`](crate::handover::SUCCESSOR_ANNOTATION)), so it takes
    /// the Lease with the first event it sees, and every other kube-elector
    /// candidate holds back for a bound (one retry period for the first in
    /// line, two for the rest) in case it never comes.
    Named(String),
    /// Any candidate but this one: through a [`LeaseHub`](crate::hub::LeaseHub)
    /// the release names the next in line in this process; otherwise it
    /// names nobody and the others race as after any release.
    Any,
}

/// What a handover did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandoverOutcome {
    /// The term ended, its work drained, and the Lease was released, naming
    /// `successor` (`None`: nobody was named).
    Released {
        /// The identity the release named.
        successor: Option<String>,
    },
    /// This elector did not lead: nothing was handed over.
    NotLeading,
}

/// A handover asked of the task, and where its outcome goes.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) to: Successor,
    pub(crate) reply: oneshot::Sender<Result<HandoverOutcome, Error>>,
}
