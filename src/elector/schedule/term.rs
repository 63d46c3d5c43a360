//! The term an elector holds, why terms end, and what an observation
//! changed about them.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::DropGuard;

use crate::record::TermRecord;
use crate::state::Term;

/// The term this elector holds.
#[derive(Debug)]
pub(crate) struct ActiveTerm {
    pub(crate) term: Term,
    /// The record that tells this term from any other (holder, transitions,
    /// acquire time): the term holds only while the Lease carries it.
    pub(crate) record: TermRecord,
    /// When the request of the last successful acquire or renew was sent.
    pub(crate) renewed_sent: Instant,
    /// When the term ends unless a renew extends it: stored once, here and
    /// in the guards' shared deadline (`term.ends`).
    pub(crate) ends_at: Instant,
    /// When the next renew is due.
    pub(crate) renew_at: Instant,
    /// Closed once every `Leadership` guard of this term is dropped.
    pub(crate) drained: crate::shared::Drained,
    /// Cancels the term's token if the task ends on any path (a panic, a
    /// dropped runtime), so leader work never outlives the loop.
    pub(crate) _cancel_on_drop: DropGuard,
}

impl ActiveTerm {
    pub(crate) fn set_end(&mut self, ends_at: Instant) {
        self.ends_at = ends_at;
        self.term.ends.set(ends_at);
    }

    /// From now on the term keeps nobody out: its guards say so.
    pub(crate) fn unprotect(&self, now: Instant) {
        self.term.ends.set(now.min(self.ends_at));
    }
}

/// Why a term ended.
#[derive(Debug)]
pub(crate) enum Stop {
    /// No renew succeeded within the renew deadline.
    Deadline,
    /// Another holder (or none) was observed in the Lease.
    Taken(Option<String>),
    /// Another instance with our identity took the Lease as a new term.
    Twin,
    /// The Lease was deleted.
    Deleted,
    /// The elector is shutting down.
    Shutdown,
    /// The elector hands the Lease over (and stays a candidate).
    Handover,
    /// In coordinated election, the controller prefers another candidate
    /// (`preferredHolder`): the term ends and the Lease is handed over.
    Preferred(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Deadline => f.write_str("no successful renew within the renew deadline"),
            Self::Taken(Some(holder)) => write!(f, "the Lease is now held by {holder}"),
            Self::Taken(None) => f.write_str("the Lease was released by someone else"),
            Self::Twin => f.write_str(
                "the Lease names this identity in a term this elector did not start \
                 (another instance uses the same identity)",
            ),
            Self::Deleted => f.write_str("the Lease was deleted"),
            Self::Shutdown => f.write_str("shutting down"),
            Self::Handover => f.write_str("handing the Lease over"),
            Self::Preferred(preferred) => write!(
                f,
                "the coordinating controller prefers {preferred}: handing the Lease over"
            ),
        }
    }
}

/// What an observation changed, for the runner to act on.
#[derive(Debug, Default)]
pub(crate) struct Observation {
    /// The term must end, for this reason.
    pub(crate) stop: Option<Stop>,
    /// The Lease records a shorter duration than ours: the term was
    /// shortened and a renew is due at once.
    pub(crate) shortened: Option<Shortened>,
}

/// The duration a Lease records, when it is shorter than ours (`None`: no
/// valid duration at all).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Shortened {
    pub(crate) recorded: Option<Duration>,
}
