//! A handover without a shutdown: the leader ends its term, lets its work
//! drain, and releases the Lease naming who takes it next, then stays a
//! candidate that steps aside for the released record.

use tokio::sync::oneshot;

use crate::error::Error;

/// To whom [`ElectorView::hand_over`](crate::ElectorView::hand_over)
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

impl Successor {
    /// Whether the elector with `identity` is the one this successor names:
    /// for [`Named`](Self::Named), that identity itself or, when `identity`
    /// is a pod's default one (`<POD_NAME>_<random suffix>`), the pod's
    /// name; [`Any`](Self::Any) names every identity. A preStop hook that
    /// handed over can tell from the next leader whether its successor
    /// took the Lease (the elector also warns when another did).
    ///
    /// ```
    /// use kube_elector::handover::Successor;
    /// let pod = Successor::Named("my-operator-7d9f".into());
    /// assert!(pod.matches("my-operator-7d9f_k4m5n6")); // that pod's elector
    /// assert!(pod.matches("my-operator-7d9f"));
    /// assert!(!pod.matches("my-operator-7d9fb_k4m5n6")); // another pod
    /// ```
    #[must_use]
    pub fn matches(&self, identity: &str) -> bool {
        match self {
            Self::Named(named) => crate::successor::names(named, identity),
            Self::Any => true,
        }
    }
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
