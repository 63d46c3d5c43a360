//! The loop an elector's task runs: it schedules reads and writes, and
//! leaves every decision about the Lease to `record`.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::telemetry::{RenewFailure, Telemetry};
use super::watcher::Update;
use super::{Settings, Shared, ShutdownOutcome};
use crate::api::LeaseApi;
use crate::error::{Action, Error};
use crate::event::{LeaderState, Term};
use crate::record::{self, Observed, Verdict};

/// What is known of the Lease.
#[derive(Debug)]
enum View {
    /// Nothing yet, or a write conflicted: read before deciding.
    Unknown,
    /// There is no Lease, as first observed at `since`.
    Missing {
        version: Option<String>,
        since: Instant,
    },
    /// The Lease as last observed.
    Present(Box<Observed>),
}

/// The term this elector holds.
#[derive(Debug)]
struct ActiveTerm {
    term: Term,
    /// When the request of the last successful acquire or renew was sent.
    /// Leadership ends at `renewed_sent + renew_deadline` unless a newer
    /// renew succeeds.
    renewed_sent: Instant,
    /// When the next renew is due.
    renew_at: Instant,
    /// Closed once every `Leadership` guard of this term is dropped.
    drained: mpsc::Receiver<()>,
}

/// Why a term ended.
#[derive(Debug)]
enum Stop {
    /// No renew succeeded within the renew deadline.
    Deadline,
    /// Another holder (or none) was observed in the Lease.
    Taken(Option<String>),
    /// The Lease was deleted.
    Deleted,
    /// The elector is shutting down.
    Shutdown,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Deadline => f.write_str("no successful renew within the renew deadline"),
            Self::Taken(Some(holder)) => write!(f, "the Lease is now held by {holder}"),
            Self::Taken(None) => f.write_str("the Lease was released by someone else"),
            Self::Deleted => f.write_str("the Lease was deleted"),
            Self::Shutdown => f.write_str("shutting down"),
        }
    }
}

/// What to do next.
#[derive(Debug)]
enum Step {
    Read,
    Write(Verdict),
    Wait(Instant),
}

pub(super) struct Runner {
    pub(super) api: LeaseApi,
    pub(super) settings: Arc<Settings>,
    pub(super) shared: Arc<Shared>,
    pub(super) state: watch::Sender<LeaderState>,
    pub(super) token: CancellationToken,
    pub(super) updates: mpsc::Receiver<Update>,
    telemetry: Telemetry,
    view: View,
    /// The Lease as last seen present: a deletion does not end its holder's
    /// term early (see `record::judge_missing`).
    last_seen: Option<Box<Observed>>,
    term: Option<ActiveTerm>,
    terms: u64,
    watching: bool,
    /// No write (acquire or create) before this, after a failed one.
    write_after: Instant,
    /// When a follower polls next while the watch is down.
    poll_at: Instant,
    /// When this elector first found the Lease free to take, since it last
    /// saw it held by another (for the handover metric).
    free_since: Option<Instant>,
    /// Requests that failed in a row: the first is a warning, the rest are
    /// debug until one succeeds, so an outage does not flood the logs.
    failures: u32,
}

impl Runner {
    pub(super) fn new(
        api: LeaseApi,
        telemetry: Telemetry,
        settings: Arc<Settings>,
        shared: Arc<Shared>,
        state: watch::Sender<LeaderState>,
        token: CancellationToken,
        updates: mpsc::Receiver<Update>,
    ) -> Self {
        let now = Instant::now();
        Self {
            api,
            settings,
            shared,
            state,
            token,
            updates,
            telemetry,
            view: View::Unknown,
            last_seen: None,
            term: None,
            terms: 0,
            watching: false,
            write_after: now,
            poll_at: now,
            free_since: None,
            failures: 0,
        }
    }

    pub(super) async fn run(mut self) -> Result<ShutdownOutcome, Error> {
        tracing::debug!("elector started");
        while !self.token.is_cancelled() {
            let now = Instant::now();
            if let Some(active) = &self.term
                && record::term_over(active.renewed_sent, self.settings.renew_deadline, now)
            {
                self.stop_leading(&Stop::Deadline);
            }
            match self.next_step(now) {
                Step::Read => self.read().await,
                Step::Write(verdict) => {
                    if verdict != Verdict::Renew {
                        self.free_since.get_or_insert(now);
                    }
                    self.write(verdict).await;
                }
                Step::Wait(until) => {
                    tokio::select! {
                        biased;
                        () = self.token.cancelled() => {}
                        Some(update) = self.updates.recv() => self.on_update(update),
                        () = sleep_until(until) => {}
                    }
                }
            }
        }
        self.shutdown().await
    }

    fn me(&self) -> &str {
        &self.settings.identity
    }

    // === Scheduling ===

    fn next_step(&self, now: Instant) -> Step {
        let leading = self.term.is_some();
        let polling = !self.watching && !leading;
        let verdict = match &self.view {
            View::Unknown => return self.not_before(now, self.write_after, Step::Read),
            _ if polling && now >= self.poll_at => return Step::Read,
            View::Missing { since, .. } => {
                record::judge_missing(self.last_seen.as_deref(), Some(*since), self.me(), now)
            }
            View::Present(observed) => record::judge(Some(observed), self.me(), leading, now),
        };
        let wake = match (&verdict, &self.term) {
            (Verdict::Renew, Some(active)) => {
                let deadline = active.renewed_sent + self.settings.renew_deadline;
                return self.not_before(now, active.renew_at.min(deadline), Step::Write(verdict));
            }
            (Verdict::Wait { expires_at, .. }, _) => *expires_at,
            (Verdict::Create | Verdict::Acquire, _) => {
                return self.not_before(now, self.write_after, Step::Write(verdict));
            }
            // `judge` renews only while leading; should that change, poll.
            (Verdict::Renew, None) => now + self.settings.retry_period,
        };
        Step::Wait(if polling {
            wake.min(self.poll_at)
        } else {
            wake
        })
    }

    /// `step` if `at` has come, else a wait until `at` (or the deadline).
    fn not_before(&self, now: Instant, at: Instant, step: Step) -> Step {
        if now >= at {
            step
        } else if let Some(active) = &self.term {
            Step::Wait(at.min(active.renewed_sent + self.settings.renew_deadline))
        } else {
            Step::Wait(at)
        }
    }

    /// How long a request may take: up to the renew deadline, and while
    /// leading never past the end of the term.
    fn request_deadline(&self, sent: Instant) -> Duration {
        let limit = self.settings.request_timeout;
        match &self.term {
            Some(active) => (active.renewed_sent + self.settings.renew_deadline)
                .saturating_duration_since(sent)
                .min(limit)
                .max(Duration::from_millis(1)),
            None => limit,
        }
    }

    // === Reading ===

    async fn read(&mut self) {
        let timeout = self.request_deadline(Instant::now());
        let result = tokio::select! {
            biased;
            () = self.token.cancelled() => return,
            result = self.api.get(timeout) => result,
        };
        let now = Instant::now();
        self.poll_at = now + self.settings.retry_period;
        match result {
            Ok(Some(lease)) => {
                self.answered();
                self.observe(lease, now);
            }
            Ok(None) => {
                self.answered();
                self.observe_missing(None);
            }
            Err(error) => {
                self.failed(&error);
                self.write_after = now + self.settings.retry_period;
            }
        }
    }

    fn on_update(&mut self, update: Update) {
        match update {
            Update::Lease(lease) => {
                if self.is_newer(lease.metadata.resource_version.as_deref()) {
                    self.observe(*lease, Instant::now());
                }
            }
            Update::Missing { version } => {
                if self.is_newer(version.as_deref()) {
                    self.observe_missing(version);
                }
            }
            Update::Healthy(healthy) => {
                self.watching = healthy;
                if !healthy {
                    self.poll_at = Instant::now();
                }
            }
        }
    }

    fn is_newer(&self, version: Option<&str>) -> bool {
        let current = match &self.view {
            View::Unknown => return true,
            View::Missing { version, .. } => version.as_deref(),
            View::Present(observed) => observed.resource_version(),
        };
        record::is_newer(version, current)
    }

    fn observe(&mut self, lease: Lease, now: Instant) {
        // The last Lease seen, even across a failed write: the observation
        // time of an unchanged record must not move.
        let observed = Box::new(Observed::update(self.last_seen.as_deref(), lease, now));
        let holder = observed.holder().map(str::to_owned);
        self.last_seen = Some(observed.clone());
        self.view = View::Present(observed);
        self.telemetry.observed();
        if holder.as_deref().is_some_and(|holder| holder != self.me()) {
            self.free_since = None;
        }
        if self.term.is_some() && !record::still_holds(holder.as_deref(), self.me()) {
            self.stop_leading(&Stop::Taken(holder));
        }
        self.publish();
    }

    fn observe_missing(&mut self, version: Option<String>) {
        let since = match &self.view {
            View::Missing { since, .. } => *since,
            _ => Instant::now(),
        };
        self.view = View::Missing { version, since };
        self.telemetry.observed();
        if self.term.is_some() {
            self.stop_leading(&Stop::Deleted);
        }
        self.publish();
    }

    // === Writing ===

    async fn write(&mut self, verdict: Verdict) {
        let settings = Arc::clone(&self.settings);
        let sent = Instant::now();
        let timeout = self.request_deadline(sent);
        let wall: Timestamp = settings.clock.now();
        let secs = settings.lease_duration_secs;
        let request = match (&verdict, &self.view) {
            (Verdict::Create, _) => {
                let spec = record::acquire(None, &settings.identity, secs, wall);
                futures::future::Either::Left(self.api.create(spec, timeout))
            }
            (Verdict::Acquire | Verdict::Renew, View::Present(observed)) => {
                let spec = record::spec_of(&observed.lease);
                let (action, spec) = if verdict == Verdict::Renew {
                    (
                        Action::Renew,
                        record::renew(spec, &settings.identity, secs, wall),
                    )
                } else {
                    (
                        Action::Acquire,
                        record::acquire(Some(spec), &settings.identity, secs, wall),
                    )
                };
                futures::future::Either::Right(self.api.replace(
                    action,
                    &observed.lease,
                    spec,
                    timeout,
                ))
            }
            _ => return,
        };
        let result = tokio::select! {
            biased;
            () = self.token.cancelled() => return,
            result = request => result,
        };
        let now = Instant::now();
        if !matches!(result, Err(Error::Api { .. } | Error::Timeout { .. })) {
            self.answered();
        }
        match result {
            Ok(lease) => {
                self.observe(lease, now);
                if verdict == Verdict::Renew {
                    if let Some(active) = &mut self.term {
                        active.renewed_sent = sent;
                        active.renew_at = sent + settings.retry_period;
                        self.telemetry.renewed(sent);
                        tracing::debug!(round_trip = ?now - sent, "renewed the Lease");
                    }
                } else if !record::term_over(sent, settings.renew_deadline, now) {
                    self.start_leading(sent);
                } else {
                    tracing::warn!(
                        "the Lease was taken, but the answer came after the renew deadline; not leading this term"
                    );
                    self.write_after = now + settings.retry_period;
                }
            }
            Err(Error::Conflict { .. }) => {
                if verdict == Verdict::Renew {
                    self.telemetry.renew_failed(RenewFailure::Conflict);
                }
                tracing::debug!(
                    ?verdict,
                    "the Lease changed since it was read; reading it again"
                );
                self.view = View::Unknown;
            }
            Err(error) => {
                if verdict == Verdict::Renew {
                    self.telemetry.renew_failed(RenewFailure::Error);
                }
                self.failed(&error);
                self.write_after = now + settings.retry_period;
                if let Some(active) = &mut self.term {
                    active.renew_at = now + settings.retry_period;
                }
            }
        }
    }

    /// The API server answered (a conflict is an answer too).
    fn answered(&mut self) {
        if self.failures > 0 {
            tracing::info!(failed = self.failures, "the API server answers again");
            self.failures = 0;
        }
    }

    fn failed(&mut self, error: &Error) {
        let retry = self.settings.retry_period;
        let error = error as &dyn std::error::Error;
        if self.failures == 0 {
            tracing::warn!(
                error,
                "request failed; retrying every {retry:?} (further failures in a row are logged at debug)"
            );
        } else {
            tracing::debug!(error, failures = self.failures + 1, "request failed again");
        }
        self.failures = self.failures.saturating_add(1);
    }

    // === Leadership ===

    fn start_leading(&mut self, sent: Instant) {
        let View::Present(observed) = &self.view else {
            return;
        };
        let fencing_token =
            u32::try_from(record::transitions(record::spec_of(&observed.lease))).unwrap_or(0);
        self.terms += 1;
        let term = Term {
            id: self.terms,
            fencing_token,
            started_at: Instant::now(),
            token: CancellationToken::new(),
        };
        let (drain, drained) = mpsc::channel(1);
        self.shared.set_drain(Some((term.id, drain)));
        self.term = Some(ActiveTerm {
            term,
            renewed_sent: sent,
            renew_at: sent + self.settings.retry_period,
            drained,
        });
        let uid = observed.lease.metadata.uid.clone();
        self.telemetry
            .started_leading(sent, self.free_since.take(), uid.as_deref());
        tracing::info!(fencing_token, "started leading");
        self.publish();
    }

    /// Ends the current term, if any: the guard token is cancelled and the
    /// state published before anything else happens.
    fn stop_leading(&mut self, reason: &Stop) -> Option<ActiveTerm> {
        let active = self.term.take()?;
        active.term.token.cancel();
        self.shared.set_drain(None);
        let uid = match &self.view {
            View::Present(observed) => observed.lease.metadata.uid.clone(),
            _ => None,
        };
        self.telemetry.stopped_leading(uid.as_deref());
        if matches!(reason, Stop::Shutdown) {
            tracing::info!(%reason, "stopped leading");
        } else {
            tracing::warn!(%reason, "lost the Lease: stopped leading");
        }
        self.publish();
        Some(active)
    }

    fn publish(&self) {
        let next = LeaderState {
            leader: match &self.view {
                View::Present(observed) => observed.holder().map(str::to_owned),
                _ => None,
            },
            term: self.term.as_ref().map(|active| active.term.clone()),
            since: Instant::now(),
        };
        let me = self.me();
        self.state.send_if_modified(|current| {
            if current.same_as(&next) {
                false
            } else {
                if let Some(leader) = next.leader.as_deref()
                    && current.leader != next.leader
                    && leader != me
                {
                    tracing::info!(%leader, "new leader observed");
                }
                *current = next;
                true
            }
        });
    }

    // === Shutdown ===

    async fn shutdown(mut self) -> Result<ShutdownOutcome, Error> {
        if let Some(active) = self.stop_leading(&Stop::Shutdown) {
            self.drain(active).await;
        }
        if !self.settings.release_on_cancel {
            self.telemetry.close(self.settings.request_timeout).await;
            return Ok(ShutdownOutcome::ReleaseSkipped);
        }
        let outcome = self.release().await;
        self.publish();
        self.telemetry.close(self.settings.request_timeout).await;
        outcome
    }

    /// Waits (up to the drain timeout) until every guard of the ended term is
    /// dropped, renewing the Lease meanwhile as a leader would: leader work
    /// still running keeps every other replica out, however long the drain
    /// takes. The renews stop at the renew deadline of the last one that
    /// succeeded, as leadership would (the Lease then expires as usual).
    async fn drain(&mut self, mut active: ActiveTerm) {
        let settings = Arc::clone(&self.settings);
        let until = Instant::now() + settings.drain_timeout;
        let mut renewed_sent = active.renewed_sent;
        let mut renew_at = Some(active.renew_at);
        loop {
            tokio::select! {
                biased;
                _ = active.drained.recv() => return,
                () = sleep_until(until) => {
                    tracing::warn!(
                        "leader work did not finish within {:?}; releasing the Lease anyway",
                        settings.drain_timeout
                    );
                    return;
                }
                () = sleep_until(renew_at.unwrap_or(until)), if renew_at.is_some() => {}
            }
            let sent = Instant::now();
            let observed = match &self.view {
                View::Present(observed)
                    if observed.holder() == Some(self.me())
                        && !record::term_over(renewed_sent, settings.renew_deadline, sent) =>
                {
                    observed
                }
                // Not ours any more, or past the deadline: just wait.
                _ => {
                    renew_at = None;
                    continue;
                }
            };
            let spec = record::renew(
                record::spec_of(&observed.lease),
                &settings.identity,
                settings.lease_duration_secs,
                settings.clock.now(),
            );
            let timeout = (renewed_sent + settings.renew_deadline)
                .saturating_duration_since(sent)
                .min(settings.request_timeout)
                .max(Duration::from_millis(1));
            let request = self
                .api
                .replace(Action::Renew, &observed.lease, spec, timeout);
            match request.await {
                Ok(lease) => {
                    self.answered();
                    self.observe(lease, Instant::now());
                    self.telemetry.renewed(sent);
                    tracing::debug!("renewed the Lease while leader work drains");
                    renewed_sent = sent;
                    renew_at = Some(sent + settings.retry_period);
                }
                Err(Error::Conflict { .. }) => {
                    self.answered();
                    self.view = View::Unknown;
                    renew_at = None;
                }
                Err(error) => {
                    self.failed(&error);
                    renew_at = Some(Instant::now() + settings.retry_period);
                }
            }
        }
    }

    /// Releases the Lease if we hold it: conditional on the version we read,
    /// and re-read once after a conflict (another field may have changed).
    async fn release(&mut self) -> Result<ShutdownOutcome, Error> {
        let timeout = self.settings.request_timeout;
        for _ in 0..2 {
            if matches!(self.view, View::Unknown) {
                match self.api.get(timeout).await? {
                    Some(lease) => self.observe(lease, Instant::now()),
                    None => self.observe_missing(None),
                }
            }
            let View::Present(observed) = &self.view else {
                return Ok(ShutdownOutcome::NotHolding);
            };
            if observed.holder() != Some(self.me()) {
                return Ok(ShutdownOutcome::NotHolding);
            }
            let spec = record::release(record::spec_of(&observed.lease), self.settings.clock.now());
            match self
                .api
                .replace(Action::Release, &observed.lease, spec, timeout)
                .await
            {
                Ok(lease) => {
                    tracing::info!("released the Lease");
                    self.observe(lease, Instant::now());
                    return Ok(ShutdownOutcome::Released);
                }
                Err(Error::Conflict { .. }) => self.view = View::Unknown,
                Err(error) => return Err(error),
            }
        }
        Err(Error::Conflict {
            action: Action::Release,
            namespace: self.api.namespace().to_owned(),
            name: self.api.name().to_owned(),
        })
    }
}
