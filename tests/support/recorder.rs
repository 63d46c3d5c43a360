//! A record of who believed they led, on one monotonic clock: a term starts
//! at the instant an elector entered it and ends at the instant it published
//! that it no longer leads.

use std::sync::Arc;
use std::time::Duration;

use kube_elector::ElectorHandle;
use tokio::time::{Instant, timeout};

const PATIENCE: Duration = Duration::from_secs(20);

/// One term of one elector.
#[derive(Clone, Debug)]
pub struct Interval {
    pub who: String,
    pub start: Instant,
    pub end: Option<Instant>,
}

/// Records every term of every elector from its state channel: a term starts
/// at the instant the elector entered it and ends at the instant it published
/// that it no longer leads. A subscriber that misses a state in between still
/// bounds the end of a term by the start of the next one.
#[derive(Clone, Default)]
pub struct Recorder {
    intervals: Arc<tokio::sync::watch::Sender<Vec<Interval>>>,
}

impl Recorder {
    pub fn watch(&self, handle: &ElectorHandle) {
        self.watch_as(handle, handle.identity());
    }

    /// Records `handle`'s terms under the name `who` (for electors that
    /// share an identity).
    pub fn watch_as(&self, handle: &ElectorHandle, who: &str) {
        self.watch_state(handle.subscribe(), who);
    }

    /// Records the terms published on `rx` (an elector's state channel,
    /// say of one shard of a sharded elector) under the name `who`.
    pub fn watch_state(
        &self,
        rx: tokio::sync::watch::Receiver<kube_elector::LeaderState>,
        who: &str,
    ) {
        let mut rx = rx;
        let who = who.to_owned();
        let intervals = Arc::clone(&self.intervals);
        tokio::spawn(async move {
            let mut current: Option<(u64, usize)> = None;
            loop {
                {
                    let state = rx.borrow_and_update();
                    let term = state.term.as_ref().map(|t| (t.id(), t.started_at()));
                    intervals.send_modify(|all| {
                        if let Some((id, index)) = current
                            && term.map(|t| t.0) != Some(id)
                        {
                            all[index].end = Some(term.map_or(state.since, |t| t.1));
                            current = None;
                        }
                        if let Some((id, started_at)) = term
                            && current.is_none()
                        {
                            all.push(Interval {
                                who: who.clone(),
                                start: started_at,
                                end: None,
                            });
                            current = Some((id, all.len() - 1));
                        }
                    });
                }
                if rx.changed().await.is_err() {
                    if let Some((_, index)) = current {
                        intervals.send_modify(|all| all[index].end = Some(Instant::now()));
                    }
                    return;
                }
            }
        });
    }

    /// Records that `who` (a candidate the recorder does not watch, such as
    /// another process) started leading at `at`, unless a term of its is open.
    pub fn start_at(&self, who: &str, at: Instant) {
        self.intervals.send_modify(|all| {
            if !all.iter().any(|i| i.who == who && i.end.is_none()) {
                all.push(Interval {
                    who: who.to_owned(),
                    start: at,
                    end: None,
                });
            }
        });
    }

    /// Records that the open term of `who`, if any, ended at `at`.
    pub fn end_at(&self, who: &str, at: Instant) {
        self.intervals.send_if_modified(|all| {
            let open = all.iter_mut().find(|i| i.who == who && i.end.is_none());
            open.map(|i| i.end = Some(at)).is_some()
        });
    }

    /// Whether a term of `who` is open.
    pub fn is_leading(&self, who: &str) -> bool {
        self.intervals
            .borrow()
            .iter()
            .any(|i| i.who == who && i.end.is_none())
    }

    /// Waits until some term is open; `false` if none is by `deadline`.
    pub async fn wait_leading(&self, deadline: Instant) -> bool {
        let mut rx = self.intervals.subscribe();
        tokio::time::timeout_at(
            deadline,
            rx.wait_for(|all| all.iter().any(|i| i.end.is_none())),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    pub fn intervals(&self) -> Vec<Interval> {
        self.intervals.borrow().clone()
    }

    /// Waits until the recorder has seen a term of `who` (ended, if `ended`).
    pub async fn term_of(&self, who: &str, ended: bool) -> Interval {
        let mut rx = self.intervals.subscribe();
        let found = |all: &Vec<Interval>| {
            all.iter()
                .rev()
                .find(|i| i.who == who && (!ended || i.end.is_some()))
                .cloned()
        };
        let all = timeout(PATIENCE, rx.wait_for(|all| found(all).is_some()))
            .await
            .unwrap_or_else(|_| panic!("no recorded term of {who} within {PATIENCE:?}"))
            .expect("recorder alive");
        found(&all).expect("just seen")
    }

    /// Waits until the recorder has seen `n` terms in all.
    pub async fn wait_terms(&self, n: usize) -> Vec<Interval> {
        let mut rx = self.intervals.subscribe();
        let all = timeout(PATIENCE, rx.wait_for(|all| all.len() >= n))
            .await
            .unwrap_or_else(|_| panic!("fewer than {n} terms recorded: {:#?}", self.intervals()))
            .expect("recorder alive");
        all.clone()
    }

    /// How long `earlier` (which must have ended) still believed it led
    /// after `later` started: the overlap of two terms, zero if none.
    pub fn overlap_between(earlier: &Interval, later: &Interval) -> Duration {
        earlier
            .end
            .expect("the earlier term ended")
            .saturating_duration_since(later.start)
    }

    /// A description of the first moment two electors believed they led, if any.
    pub fn overlap(&self) -> Option<String> {
        let mut all = self.intervals();
        all.sort_by_key(|i| i.start);
        all.windows(2).find_map(|pair| {
            let (a, b) = (&pair[0], &pair[1]);
            let a_end = a.end.unwrap_or_else(Instant::now);
            (a_end > b.start).then(|| {
                format!(
                    "{} led until {a_end:?} after {} started leading at {:?}: overlap of {:?}\nall terms: {all:#?}",
                    a.who,
                    b.who,
                    b.start,
                    a_end - b.start
                )
            })
        })
    }

    /// Panics if two electors believed they led at one instant.
    pub fn assert_no_overlap(&self) {
        if let Some(overlap) = self.overlap() {
            panic!("{overlap}");
        }
    }
}
