//! What users of a sharded elector hold: the shards owned now, their
//! events, the work per shard, and the way out.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::DropGuard;

use super::assign::Assignment;
use super::coordinator::Plan;
use super::key::shard_for_key;
use crate::elector::{ElectorView, Leadership};
use crate::error::Error;
use crate::state::Term;

// === impl OwnedShards ===

/// The shards this replica owns now, each with its term.
///
/// Every answer is judged when it is asked, from each term's own deadline
/// (as [`Term::is_leading`]): a term past its deadline is not listed, even
/// while the task that would end it has not run (a blocked runtime).
#[derive(Clone, Debug, Default)]
pub struct OwnedShards {
    terms: BTreeMap<u32, Term>,
}

impl OwnedShards {
    /// Whether this replica owns `shard` (its term has neither ended nor
    /// run past its deadline).
    #[must_use]
    pub fn contains(&self, shard: u32) -> bool {
        self.term(shard).is_some()
    }

    /// The owned shards, in order.
    pub fn shards(&self) -> impl Iterator<Item = u32> + '_ {
        self.leading().map(|(shard, _)| shard)
    }

    /// How many shards this replica owns.
    #[must_use]
    pub fn len(&self) -> usize {
        self.leading().count()
    }

    /// Whether this replica owns no shard.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.leading().next().is_none()
    }

    /// The term of `shard`, if owned.
    #[must_use]
    pub fn term(&self, shard: u32) -> Option<&Term> {
        self.terms.get(&shard).filter(|term| term.is_leading())
    }

    /// The terms that hold now.
    fn leading(&self) -> impl Iterator<Item = (u32, &Term)> + '_ {
        self.terms
            .iter()
            .filter(|(_, term)| term.is_leading())
            .map(|(shard, term)| (*shard, term))
    }

    /// Records `term` (or its absence) for `shard`; whether that changed
    /// anything.
    pub(crate) fn set(&mut self, shard: u32, term: Option<Term>) -> bool {
        let before = self.terms.get(&shard).map(|t| t.id);
        match term {
            Some(term) => {
                self.terms.insert(shard, term);
            }
            None => {
                self.terms.remove(&shard);
            }
        }
        before != self.terms.get(&shard).map(|t| t.id)
    }
}

// === impl ShardEvent ===

/// A change of the shards this replica owns.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardEvent {
    /// This replica started owning `shard`.
    ShardAcquired {
        /// The shard.
        shard: u32,
        /// The fencing token of the term (see
        /// [`crate::state::Term::fencing_token`]).
        fencing_token: u64,
    },
    /// This replica stopped owning `shard` (handed over, lost or shut
    /// down).
    ShardReleased {
        /// The shard.
        shard: u32,
    },
}

/// The [`ShardEvent`]s of one replica, as a [`Stream`].
///
/// It first yields a `ShardAcquired` for each shard owned when it was
/// created, then the events of each later change. Derived from the watch
/// of [`OwnedShards`]: a subscriber that falls behind skips terms that
/// began and ended meanwhile, but always ends on the true set, and sees a
/// `ShardReleased` for every `ShardAcquired` it saw. A term is released
/// at its deadline (see [`Term::is_leading`]) even when nothing is
/// published then (the tasks' runtime is blocked), and a term so released
/// is not acquired again. It ends when the sharded elector has stopped.
///
/// # Cancel safety
/// `StreamExt::next` on it is cancel safe.
#[must_use = "streams do nothing unless polled"]
pub struct ShardEvents {
    inner: BoxStream<'static, ShardEvent>,
}

impl std::fmt::Debug for ShardEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardEvents").finish_non_exhaustive()
    }
}

impl Stream for ShardEvents {
    type Item = ShardEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ShardEvent>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// The events that lead from `seen` (shard → term id) to `now`, in shard
/// order, judging each term by its deadline now; `seen` becomes `now`.
/// A term reported released because its deadline passed is never reported
/// acquired again (`over`), whatever its task does later.
fn diff(
    seen: &mut BTreeMap<u32, u64>,
    over: &mut BTreeMap<u32, u64>,
    now: &OwnedShards,
    out: &mut VecDeque<ShardEvent>,
) {
    seen.retain(|shard, id| {
        let same = now.term(*shard).is_some_and(|t| t.id == *id);
        if !same {
            over.insert(*shard, *id);
            out.push_back(ShardEvent::ShardReleased { shard: *shard });
        }
        same
    });
    for (shard, term) in now.leading() {
        if !seen.contains_key(&shard) && over.get(&shard) != Some(&term.id) {
            seen.insert(shard, term.id);
            out.push_back(ShardEvent::ShardAcquired {
                shard,
                fencing_token: term.fencing_token,
            });
        }
    }
}

/// Where a [`ShardEvents`] stream is: the terms it reported, the events
/// not yet yielded, and whether it has looked at the current set yet.
struct Cursor {
    rx: watch::Receiver<OwnedShards>,
    /// The set last looked at, for its terms' deadlines.
    last: OwnedShards,
    seen: BTreeMap<u32, u64>,
    over: BTreeMap<u32, u64>,
    queue: VecDeque<ShardEvent>,
    started: bool,
}

impl Cursor {
    /// The earliest deadline of a term reported acquired and not yet
    /// released: the stream must look again then, even without a change
    /// (the task that would publish the term's end may not run). A deadline
    /// already past counts (the stream may be polled late), and a term
    /// once released is not looked at again.
    fn next_deadline(&self) -> Option<tokio::time::Instant> {
        self.seen
            .iter()
            .filter_map(|(shard, id)| self.last.terms.get(shard).filter(|t| t.id == *id))
            .map(Term::deadline)
            .min()
    }

    async fn next(mut self) -> Option<(ShardEvent, Self)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((event, self));
            }
            let stopped = if self.started {
                // A change, or a deadline that passes with none (the task
                // that would publish the term's end cannot run).
                let deadline = self.next_deadline();
                tokio::select! {
                    changed = self.rx.changed() => changed.is_err(),
                    () = sleep_until_some(deadline) => false,
                }
            } else {
                false
            };
            self.started = true;
            let now = if stopped {
                // Whatever was owned is released; then the stream ends.
                OwnedShards::default()
            } else {
                self.rx.borrow_and_update().clone()
            };
            diff(&mut self.seen, &mut self.over, &now, &mut self.queue);
            self.last = now;
            if stopped && self.queue.is_empty() {
                return None;
            }
        }
    }
}

/// Sleeps until `at`, or for ever without one.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn events(rx: watch::Receiver<OwnedShards>) -> ShardEvents {
    let cursor = Cursor {
        rx,
        last: OwnedShards::default(),
        seen: BTreeMap::new(),
        over: BTreeMap::new(),
        queue: VecDeque::new(),
        started: false,
    };
    ShardEvents {
        inner: futures::stream::unfold(cursor, Cursor::next).boxed(),
    }
}

// === impl ShardedHandle ===

/// The handle of a running [`ShardedElector`](crate::shard::ShardedElector).
///
/// Dropping it makes the replica leave (release the member Lease, hand
/// every owned shard over), as cancelling its token does;
/// [`shutdown`](Self::shutdown) does the same and waits for it.
#[must_use = "dropping the handle makes the replica leave"]
#[derive(Debug)]
pub struct ShardedHandle {
    pub(super) identity: Arc<str>,
    pub(super) shards: u32,
    pub(super) views: Vec<ElectorView>,
    pub(super) owned: watch::Receiver<OwnedShards>,
    pub(super) plan: watch::Receiver<Arc<Plan>>,
    pub(super) coordinator: JoinHandle<()>,
    pub(super) workers: Vec<JoinHandle<()>>,
    pub(super) leave_on_drop: DropGuard,
}

impl ShardedHandle {
    /// This replica's identity.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// How many shards there are.
    #[must_use]
    pub fn shard_count(&self) -> u32 {
        self.shards
    }

    /// The shards this replica owns now.
    #[must_use]
    pub fn owned(&self) -> OwnedShards {
        self.owned.borrow().clone()
    }

    /// A receiver of the owned shards, woken on each change.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<OwnedShards> {
        self.owned.clone()
    }

    /// The events of this replica's shards; see [`ShardEvents`].
    pub fn events(&self) -> ShardEvents {
        events(self.owned.clone())
    }

    /// The elector of `shard` in this replica: who owns the shard as this
    /// replica sees it ([`ElectorView::state`]), its events, its terms.
    #[must_use]
    pub fn shard(&self, shard: u32) -> Option<&ElectorView> {
        self.views.get(usize::try_from(shard).ok()?)
    }

    /// The assignment this replica acts on now (from the members it sees).
    #[must_use]
    pub fn assignment(&self) -> Assignment {
        self.plan.borrow().assignment.clone()
    }

    /// Why this replica owns no shard while it runs, if something outside
    /// it blocks it: replicas of another shard count serve (the
    /// longest-standing member's count, or shard Leases of the prefix held
    /// under another count). `None` while it takes part. The same reason is
    /// logged once at warn.
    #[must_use]
    pub fn blocked(&self) -> Option<String> {
        self.plan.borrow().blocked.as_deref().map(str::to_owned)
    }

    /// The shard of `key` (see [`shard_for_key`]).
    #[must_use]
    pub fn shard_of(&self, key: &str) -> u32 {
        shard_for_key(key, self.shards)
    }

    /// Whether this replica owns the shard of `key` now: the gate for a
    /// reconcile of that object.
    #[must_use]
    pub fn owns_key(&self, key: &str) -> bool {
        self.owned.borrow().contains(self.shard_of(key))
    }

    /// The guard of `shard`'s current term, if this replica owns it now:
    /// hold it while working on one of the shard's objects, and a handover
    /// of the shard waits for it (up to the drain timeout).
    #[must_use]
    pub fn leadership(&self, shard: u32) -> Option<Leadership> {
        use futures::FutureExt;
        let view = self.views.get(usize::try_from(shard).ok()?)?;
        // `became_leader` is ready at once while a term runs.
        view.became_leader().now_or_never()?.ok()
    }

    /// Waits until this replica owns `shard`, and returns the guard of
    /// that term (its token is cancelled when the shard is lost or handed
    /// over, and the handover waits for the guard to be dropped).
    ///
    /// # Errors
    /// [`Error::Stopped`] if the replica stops first, or `shard` is not a
    /// shard.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn became_owner(&self, shard: u32) -> Result<Leadership, Error> {
        let view = usize::try_from(shard)
            .ok()
            .and_then(|i| self.views.get(i))
            .ok_or(Error::Stopped)?;
        view.became_leader().await
    }

    /// Runs `work(shard, leadership)` for each term of each shard this
    /// replica owns, until the replica has left: as
    /// [`ElectorView::run_while_leading`] per shard, so the work must
    /// return soon after the guard's token is cancelled, and a shard is
    /// handed over only once its work has returned (up to the drain
    /// timeout).
    ///
    /// # Cancel safety
    /// Dropping the future drops every running work future (and its
    /// guard); the shards' elections go on.
    pub async fn run_per_shard<F, Fut>(&self, work: F)
    where
        F: Fn(u32, Leadership) -> Fut + Clone,
        Fut: Future<Output = ()>,
    {
        let per_shard = (0..).zip(&self.views).map(|(shard, view)| {
            let work = work.clone();
            async move {
                view.run_while_leading(|leadership| work(shard, leadership))
                    .await;
            }
        });
        futures::future::join_all(per_shard).await;
    }

    /// Leaves and waits for it: releases the member Lease (so the others
    /// reassign this replica's shards at once), hands every owned shard to
    /// its next owner after its work drained, and ends.
    ///
    /// # Errors
    /// [`Error::Task`] if a task of the sharded elector panicked.
    ///
    /// # Cancel safety
    /// The replica leaves whether or not this future is polled to the end.
    pub async fn shutdown(self) -> Result<(), Error> {
        let Self {
            coordinator,
            workers,
            leave_on_drop,
            ..
        } = self;
        leave_on_drop.disarm().cancel();
        coordinator.await.map_err(Error::Task)?;
        for worker in workers {
            worker.await.map_err(Error::Task)?;
        }
        Ok(())
    }
}
