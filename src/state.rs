//! What an elector tells its users: the current state, and the events
//! derived from its changes.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The state of an elector, as published on its `watch` channel.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LeaderState {
    /// The holder of the Lease as last observed; `None` while it is free or
    /// missing, or before the first read.
    pub leader: Option<String>,
    /// Set while this elector leads.
    pub term: Option<Term>,
    /// When this state was entered, on the local monotonic clock.
    pub since: Instant,
}

impl LeaderState {
    pub(crate) fn initial() -> Self {
        Self {
            leader: None,
            term: None,
            since: Instant::now(),
        }
    }

    /// Whether this elector leads: it has a term, and that term has neither
    /// ended nor run past its deadline (see [`Term::is_leading`]).
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.term.as_ref().is_some_and(Term::is_leading)
    }

    /// Whether `other` differs from `self` in anything but `since`.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        self.leader == other.leader
            && self.term.as_ref().map(|t| t.id) == other.term.as_ref().map(|t| t.id)
    }
}

/// One term of leadership held by this elector.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Term {
    /// Counts this elector's terms, from 1.
    pub(crate) id: u64,
    /// The `resourceVersion` of the write that started this term, which
    /// kube-apiserver takes from etcd's revision: a later term of any leader
    /// on this Lease has a larger token, across deletions and re-creations
    /// of the Lease. A fencing token for writes that must come from the
    /// current leader (see [`crate::state::Term::fencing_token`](crate::state::Term::fencing_token)).
    pub(crate) fencing_token: u64,
    /// When the elector started leading, on the local monotonic clock.
    pub(crate) started_at: Instant,
    /// Cancelled the moment this term ends; owned by the elector, which
    /// hands out children of it only ([`token`](Self::token)).
    pub(crate) token: CancellationToken,
    /// When the term ends unless a renew extends it; shared with the elector.
    pub(crate) ends: Deadline,
}

impl Term {
    /// Counts this elector's terms, from 1.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
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
        self.fencing_token
    }

    /// When the elector started leading, on the local monotonic clock.
    #[must_use]
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// A token cancelled the moment this term ends: a child of the
    /// elector's own (a new one per call), so cancelling it stops only what
    /// listens to it, never the term or its renews.
    #[must_use]
    pub fn token(&self) -> CancellationToken {
        self.token.child_token()
    }

    /// Whether this term still holds: its token is not cancelled *and* its
    /// deadline (the renew deadline counted from the last successful renew)
    /// has not passed. The deadline is judged here, on the caller's clock, so
    /// the answer is right even when the elector's task cannot run (a blocked
    /// runtime) to cancel the token.
    #[must_use]
    pub fn is_leading(&self) -> bool {
        !self.token.is_cancelled() && Instant::now() < self.ends.get()
    }

    /// The instant this term ends unless a renew extends it (local monotonic
    /// clock). Work that must not outlive the term can stop by it.
    #[must_use]
    pub fn deadline(&self) -> Instant {
        self.ends.get()
    }
}

/// An instant the elector moves and guards read.
#[derive(Clone, Debug)]
pub(crate) struct Deadline(Arc<Mutex<Instant>>);

impl Deadline {
    pub(crate) fn new(at: Instant) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    pub(crate) fn get(&self) -> Instant {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set(&self, at: Instant) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }
}

/// A change of leadership, as seen by one elector.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaderEvent {
    /// This elector started leading.
    StartedLeading,
    /// This elector stopped leading.
    StoppedLeading,
    /// The observed holder of the Lease changed (`None`: the Lease is free).
    NewLeader {
        /// The new holder.
        identity: Option<String>,
    },
}

/// The [`LeaderEvent`]s of one elector, as a [`Stream`].
///
/// The stream first yields the events that describe the state when it was
/// created (the current leader, and `StartedLeading` if this elector leads),
/// then the events of each later change. It is derived from the state channel: a subscriber that
/// falls behind skips intermediate states but always ends on the true one,
/// never sees `StartedLeading` for a term that is already over, and sees
/// `StoppedLeading` for every `StartedLeading` it saw. The stream ends when
/// the elector has stopped.
///
/// # Cancel safety
/// `StreamExt::next` on it is cancel safe: an event is taken from the
/// stream's queue only when it is returned, so a `select!` that drops the
/// future loses nothing.
#[must_use = "streams do nothing unless polled"]
pub struct LeaderEvents {
    inner: BoxStream<'static, LeaderEvent>,
}

impl std::fmt::Debug for LeaderEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderEvents").finish_non_exhaustive()
    }
}

impl Stream for LeaderEvents {
    type Item = LeaderEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LeaderEvent>> {
        self.inner.poll_next_unpin(cx)
    }
}

enum Pending {
    Event(LeaderEvent),
    Started { term: u64, token: CancellationToken },
}

struct Deriver {
    rx: watch::Receiver<LeaderState>,
    closed: bool,
    leader: Option<String>,
    term: Option<u64>,
    queue: VecDeque<Pending>,
}

impl Deriver {
    /// Queues the events that lead from what was reported to `state`.
    fn diff(&mut self, state: &LeaderState) {
        let current = state.term.as_ref().map(|t| t.id);
        if self.term.is_some() && self.term != current {
            self.term = None;
            self.queue
                .push_back(Pending::Event(LeaderEvent::StoppedLeading));
        }
        if self.leader != state.leader {
            self.leader.clone_from(&state.leader);
            self.queue.push_back(Pending::Event(LeaderEvent::NewLeader {
                identity: state.leader.clone(),
            }));
        }
        if let Some(term) = &state.term
            && self.term != Some(term.id)
        {
            self.term = Some(term.id);
            self.queue.push_back(Pending::Started {
                term: term.id,
                token: term.token.clone(),
            });
        }
    }

    async fn next(mut self) -> Option<(LeaderEvent, Self)> {
        loop {
            while let Some(pending) = self.queue.pop_front() {
                match pending {
                    Pending::Event(event) => return Some((event, self)),
                    // A term that ended before it was reported is not reported
                    // at all: neither its start nor its end.
                    Pending::Started { term, token } if token.is_cancelled() => {
                        if self.term == Some(term) {
                            self.term = None;
                        }
                    }
                    Pending::Started { .. } => return Some((LeaderEvent::StartedLeading, self)),
                }
            }
            if self.closed {
                return None;
            }
            if self.rx.changed().await.is_err() {
                // The elector is gone: whatever it said last, it leads no more.
                self.closed = true;
                if self.term.take().is_some() {
                    return Some((LeaderEvent::StoppedLeading, self));
                }
                return None;
            }
            let state = self.rx.borrow_and_update().clone();
            self.diff(&state);
        }
    }
}

/// The events of `rx`, starting with those that describe its state now.
pub(crate) fn events(mut rx: watch::Receiver<LeaderState>) -> LeaderEvents {
    let current = rx.borrow_and_update().clone();
    let mut deriver = Deriver {
        rx,
        closed: false,
        leader: None,
        term: None,
        queue: VecDeque::new(),
    };
    deriver.diff(&current);
    LeaderEvents {
        inner: futures::stream::unfold(deriver, Deriver::next)
            .fuse()
            .boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(leader: Option<&str>, term: Option<&Term>) -> LeaderState {
        LeaderState {
            leader: leader.map(Into::into),
            term: term.cloned(),
            since: Instant::now(),
        }
    }

    fn term(id: u64) -> Term {
        Term {
            id,
            fencing_token: 0,
            started_at: Instant::now(),
            token: CancellationToken::new(),
            ends: Deadline::new(Instant::now() + std::time::Duration::from_secs(3600)),
        }
    }

    async fn collect(events: &mut LeaderEvents) -> Vec<LeaderEvent> {
        let mut out = Vec::new();
        while let Ok(Some(e)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), events.next()).await
        {
            out.push(e);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn current_state_comes_first() {
        let t = term(1);
        let (_tx, rx) = watch::channel(state(Some("me"), Some(&t)));
        let mut ev = events(rx);
        assert_eq!(
            collect(&mut ev).await,
            [
                LeaderEvent::NewLeader {
                    identity: Some("me".into())
                },
                LeaderEvent::StartedLeading
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slow_subscriber_ends_on_true_state_and_skips_finished_terms() {
        let (tx, rx) = watch::channel(state(None, None));
        let mut ev = events(rx);
        assert_eq!(collect(&mut ev).await, []);
        // A whole term passes while the subscriber is not polling.
        let t1 = term(1);
        tx.send(state(Some("me"), Some(&t1))).unwrap();
        t1.token.cancel();
        tx.send(state(Some("other"), None)).unwrap();
        assert_eq!(
            collect(&mut ev).await,
            [LeaderEvent::NewLeader {
                identity: Some("other".into())
            }]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn started_is_dropped_if_the_term_ends_before_it_is_yielded() {
        let (tx, rx) = watch::channel(state(None, None));
        let mut ev = events(rx);
        let t1 = term(1);
        tx.send(state(Some("me"), Some(&t1))).unwrap();
        // NewLeader is yielded; StartedLeading waits in the queue.
        assert_eq!(
            ev.next().await,
            Some(LeaderEvent::NewLeader {
                identity: Some("me".into())
            })
        );
        t1.token.cancel();
        tx.send(state(Some("me"), None)).unwrap();
        assert_eq!(collect(&mut ev).await, []);
    }

    #[tokio::test(start_paused = true)]
    async fn every_started_is_matched_by_stopped_even_when_the_elector_vanishes() {
        let (tx, rx) = watch::channel(state(None, None));
        let mut ev = events(rx);
        let t1 = term(1);
        tx.send(state(Some("me"), Some(&t1))).unwrap();
        assert_eq!(
            collect(&mut ev).await.last(),
            Some(&LeaderEvent::StartedLeading)
        );
        let t2 = term(2);
        tx.send(state(Some("me"), Some(&t2))).unwrap();
        assert_eq!(
            collect(&mut ev).await,
            [LeaderEvent::StoppedLeading, LeaderEvent::StartedLeading]
        );
        drop(tx);
        assert_eq!(collect(&mut ev).await, [LeaderEvent::StoppedLeading]);
        assert_eq!(ev.next().await, None);
    }
}
