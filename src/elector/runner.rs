//! The loop an elector's task runs: it schedules reads and writes, and
//! leaves every decision about the Lease to `record`.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::telemetry::{RenewFailure, Telemetry};
use super::watcher::Update;
use super::{Settings, Shared, ShutdownOutcome};
use crate::api::LeaseApi;
use crate::error::{Action, Error};
use crate::event::{Deadline, LeaderState, Term};
use crate::record::{self, Observed, Own, TermRecord, Verdict};

/// How many of the records this elector wrote it remembers (its last terms,
/// acquires whose answers it never saw).
const REMEMBERED: usize = 4;

/// What is known of the Lease.
#[derive(Debug)]
enum View {
    /// Nothing yet, or a write conflicted or was cut off: read before deciding.
    Unknown,
    /// There is no Lease, as first observed at `since`.
    Missing { since: Instant },
    /// The Lease as last observed.
    Present(Box<Observed>),
}

/// The term this elector holds.
#[derive(Debug)]
struct ActiveTerm {
    term: Term,
    /// The record that tells this term from any other (holder, transitions,
    /// acquire time): the term holds only while the Lease carries it.
    record: TermRecord,
    /// When the request of the last successful acquire or renew was sent.
    renewed_sent: Instant,
    /// When the term ends unless a renew extends it: stored once, here and
    /// in the guards' shared deadline (`term.ends`).
    ends_at: Instant,
    /// When the next renew is due.
    renew_at: Instant,
    /// Closed once every `Leadership` guard of this term is dropped.
    drained: mpsc::Receiver<()>,
    /// Cancels the term's token if the task ends on any path (a panic, a
    /// dropped runtime), so leader work never outlives the loop.
    _cancel_on_drop: DropGuard,
}

impl ActiveTerm {
    fn set_end(&mut self, ends_at: Instant) {
        self.ends_at = ends_at;
        self.term.ends.set(ends_at);
    }
}

/// Why a term ended.
#[derive(Debug)]
enum Stop {
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

/// How a renew went.
#[derive(Debug)]
enum Renewed {
    /// The server stored a new record: the term runs from when it was sent.
    Extended,
    /// The record is no longer ours to renew, or the renew conflicted.
    Lost,
    /// No answer in time: retried at once.
    TimedOut,
    /// Failed otherwise (or stored nothing new): retried after the retry period.
    Failed,
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
    /// The newest `resourceVersion` seen: an older answer (a lagging cache)
    /// never replaces a newer observation.
    newest: Option<String>,
    term: Option<ActiveTerm>,
    /// The term that ended at shutdown, renewed while its work drains.
    draining: Option<ActiveTerm>,
    terms: u64,
    /// Records this elector wrote: a Lease that carries one is its own.
    written: Vec<TermRecord>,
    /// Whether the watch is connected, and when it last delivered something.
    connected: bool,
    progress: Instant,
    distrusted: bool,
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
            newest: None,
            term: None,
            draining: None,
            terms: 0,
            written: Vec::new(),
            connected: false,
            progress: now,
            distrusted: false,
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
            if self.term.as_ref().is_some_and(|t| now >= t.ends_at) {
                self.stop_leading(&Stop::Deadline);
            }
            match self.next_step(now) {
                Step::Read => self.read().await,
                Step::Write(Verdict::Renew) => self.renew_in_loop().await,
                Step::Write(verdict) => {
                    self.free_since.get_or_insert(now);
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

    fn own(&self) -> Own<'_> {
        Own {
            leading: self.term.as_ref().map(|t| &t.record),
            written: &self.written,
            adopt: self.settings.adopt_own_lease,
        }
    }

    fn remember(&mut self, record: TermRecord) {
        if !self.written.contains(&record) {
            if self.written.len() == REMEMBERED {
                self.written.remove(0);
            }
            self.written.push(record);
        }
    }

    // === Scheduling ===

    fn held(&self) -> bool {
        matches!(&self.view, View::Present(observed) if observed.holder().is_some())
    }

    fn watch_trusted(&self, now: Instant) -> bool {
        record::watch_trusted(
            self.connected,
            self.progress,
            self.held(),
            record::watch_silence(self.settings.retry_period),
            now,
        )
    }

    fn next_step(&mut self, now: Instant) -> Step {
        let leading = self.term.is_some();
        let trusted = self.watch_trusted(now);
        if !trusted && self.connected && !self.distrusted && !leading {
            tracing::warn!(
                "the watch has delivered nothing for {:?} while the Lease is held; polling every {:?} until it does",
                record::watch_silence(self.settings.retry_period),
                self.settings.retry_period
            );
            self.poll_at = now;
        }
        self.distrusted = !trusted;
        let polling = !trusted && !leading;
        let verdict = match &self.view {
            View::Unknown => return self.not_before(now, self.write_after, Step::Read),
            _ if polling && now >= self.poll_at => return Step::Read,
            View::Missing { since, .. } => record::judge_missing(
                self.last_seen.as_deref(),
                Some(*since),
                self.me(),
                self.own(),
                now,
            ),
            View::Present(observed) => record::judge(Some(observed), self.me(), self.own(), now),
        };
        let wake = match (&verdict, &self.term) {
            (Verdict::Renew, Some(active)) => {
                let at = active.renew_at.min(active.ends_at);
                return self.not_before(now, at, Step::Write(verdict));
            }
            (Verdict::Wait { expires_at, .. }, _) => *expires_at,
            (Verdict::Create | Verdict::Acquire, _) => {
                return self.not_before(now, self.write_after, Step::Write(verdict));
            }
            // `judge` renews only while leading; should that change, poll.
            (Verdict::Renew, None) => now + self.settings.retry_period,
        };
        let wake = match (&self.term, polling) {
            (Some(active), _) => wake.min(active.ends_at),
            (None, true) => wake.min(self.poll_at),
            // A trusted watch of a held Lease must show progress by then.
            (None, false) if self.held() => wake.min(record::after(
                self.progress,
                record::watch_silence(self.settings.retry_period),
            )),
            (None, false) => wake,
        };
        Step::Wait(wake)
    }

    /// `step` if `at` has come, else a wait until `at` (or the term's end).
    fn not_before(&self, now: Instant, at: Instant, step: Step) -> Step {
        if now >= at {
            step
        } else if let Some(active) = &self.term {
            Step::Wait(at.min(active.ends_at))
        } else {
            Step::Wait(at)
        }
    }

    /// How long a request may take: one attempt (two fit in a renew
    /// deadline), and while leading never past the end of the term.
    fn request_deadline(&self, sent: Instant) -> Duration {
        let limit = self.settings.request_timeout;
        match &self.term {
            Some(active) => active
                .ends_at
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
                if self.is_newer(lease.metadata.resource_version.as_deref()) {
                    self.observe(lease, now);
                } else {
                    tracing::debug!(
                        version = ?lease.metadata.resource_version,
                        newest = ?self.newest,
                        "the read answered an older resourceVersion than one already seen; ignored"
                    );
                    self.write_after = now + self.settings.retry_period;
                }
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
        let now = Instant::now();
        match update {
            Update::Lease(lease) => {
                self.progress = now;
                if self.is_newer(lease.metadata.resource_version.as_deref()) {
                    self.observe(*lease, now);
                }
            }
            Update::Missing { version } => {
                self.progress = now;
                if self.is_newer(version.as_deref()) {
                    self.observe_missing(version.as_deref());
                }
            }
            Update::Progress => self.progress = now,
            Update::Healthy(healthy) => {
                self.connected = healthy;
                if !healthy {
                    self.poll_at = now;
                }
            }
        }
    }

    /// Whether `version` is newer than every version seen so far.
    fn is_newer(&self, version: Option<&str>) -> bool {
        self.newest.is_none() || record::is_newer(version, self.newest.as_deref())
    }

    fn saw_version(&mut self, version: Option<&str>) {
        if let Some(version) = version
            && self.is_newer(Some(version))
        {
            self.newest = Some(version.to_owned());
        }
    }

    fn observe(&mut self, lease: Lease, now: Instant) {
        self.saw_version(lease.metadata.resource_version.as_deref());
        // The last Lease seen, even across a failed write: the observation
        // time of an unchanged record must not move.
        let observed = Box::new(Observed::update(self.last_seen.as_deref(), lease, now));
        let holder = observed.holder().map(str::to_owned);
        let record = observed.term_record();
        let recorded = record::lease_duration(record::spec_of(&observed.lease));
        self.last_seen = Some(observed.clone());
        self.view = View::Present(observed);
        self.telemetry.observed();
        if holder.as_deref().is_some_and(|holder| holder != self.me()) {
            self.free_since = None;
        }
        if let Some(active) = &mut self.term {
            if record::still_holds(&record, &active.record) {
                let settings = &self.settings;
                let end = record::term_end(
                    active.renewed_sent,
                    settings.renew_deadline,
                    settings.lease_duration,
                    recorded,
                );
                if end < active.ends_at {
                    tracing::warn!(
                        recorded = ?recorded,
                        "the Lease now records a shorter duration than this elector writes; \
                         the term ends by what followers may compute from it unless a renew restores it"
                    );
                    active.set_end(end);
                    active.renew_at = now;
                }
            } else {
                let reason = if holder.as_deref() == Some(self.settings.identity.as_str()) {
                    Stop::Twin
                } else {
                    Stop::Taken(holder)
                };
                self.stop_leading(&reason);
            }
        }
        self.publish();
    }

    fn observe_missing(&mut self, version: Option<&str>) {
        self.saw_version(version);
        let since = match &self.view {
            View::Missing { since, .. } => *since,
            _ => Instant::now(),
        };
        self.view = View::Missing { since };
        self.telemetry.observed();
        if self.term.is_some() {
            self.stop_leading(&Stop::Deleted);
        }
        self.publish();
    }

    // === Writing ===

    /// Creates or takes the Lease for a new term.
    async fn write(&mut self, verdict: Verdict) {
        let settings = Arc::clone(&self.settings);
        let sent = Instant::now();
        let timeout = self.request_deadline(sent);
        let wall: Timestamp = settings.clock.now();
        let secs = settings.lease_duration_secs;
        let previous = match (&verdict, &self.view) {
            (Verdict::Create, _) => None,
            (Verdict::Acquire, View::Present(observed)) => Some(observed.lease.clone()),
            _ => return,
        };
        let spec = record::acquire(
            previous.as_ref().map(record::spec_of),
            &settings.identity,
            secs,
            wall,
        );
        // Until an answer says otherwise, the write may land: a Lease that
        // carries this record is ours.
        self.remember(TermRecord::of(&spec));
        let request = match &previous {
            None => futures::future::Either::Left(self.api.create(spec, timeout)),
            Some(lease) => futures::future::Either::Right(self.api.replace(
                Action::Acquire,
                lease,
                spec,
                timeout,
            )),
        };
        let result = tokio::select! {
            biased;
            () = self.token.cancelled() => {
                // The write may have landed: read before deciding anything.
                self.view = View::Unknown;
                return;
            }
            result = request => result,
        };
        let now = Instant::now();
        if !matches!(result, Err(Error::Api { .. } | Error::Timeout { .. })) {
            self.answered();
        }
        match result {
            Ok(lease) => {
                self.observe(lease, now);
                if now < record::after(sent, settings.renew_deadline) {
                    self.start_leading(sent);
                } else {
                    tracing::warn!(
                        "the Lease was taken, but the answer came after the renew deadline; not leading this term"
                    );
                    self.write_after = now + settings.retry_period;
                }
            }
            Err(Error::Conflict { .. }) => {
                tracing::debug!(
                    ?verdict,
                    "the Lease changed since it was read; reading it again"
                );
                self.view = View::Unknown;
                if verdict == Verdict::Create {
                    // Someone else created it: they lead. A read that says
                    // it is still missing (a lagging cache) must not turn
                    // into a loop of creates.
                    self.write_after = now + settings.retry_period;
                }
            }
            Err(error) => {
                self.failed(&error);
                // The write may have landed without its answer.
                self.view = View::Unknown;
                self.write_after = now + settings.retry_period;
            }
        }
    }

    /// Renews the term from the loop; cancellation cuts the request off and
    /// leaves the view unknown (the renew may have landed).
    async fn renew_in_loop(&mut self) {
        let token = self.token.clone();
        tokio::select! {
            biased;
            () = token.cancelled() => self.view = View::Unknown,
            _ = self.renew() => {}
        }
    }

    /// The term being renewed: the current one, or the one draining.
    fn renewing(&mut self) -> Option<&mut ActiveTerm> {
        self.term.as_mut().or(self.draining.as_mut())
    }

    /// One renew of the current (or draining) term, shared by the loop and
    /// the drain. A renew extends the term only if the server stored a new
    /// record.
    async fn renew(&mut self) -> Renewed {
        let settings = Arc::clone(&self.settings);
        let sent = Instant::now();
        let term = self.term.as_ref().or(self.draining.as_ref());
        let (based_on, ends_at) = match (&self.view, term) {
            (View::Present(observed), Some(active))
                if record::still_holds(&observed.term_record(), &active.record) =>
            {
                (observed.lease.clone(), active.ends_at)
            }
            _ => return Renewed::Lost,
        };
        let spec: LeaseSpec = record::renew(
            record::spec_of(&based_on),
            &settings.identity,
            settings.lease_duration_secs,
            settings.clock.now(),
        );
        let timeout = ends_at
            .saturating_duration_since(sent)
            .min(settings.request_timeout)
            .max(Duration::from_millis(1));
        let result = self
            .api
            .replace(Action::Renew, &based_on, spec, timeout)
            .await;
        let now = Instant::now();
        let (renewed, renew_at) = match result {
            Ok(lease) => {
                self.answered();
                let changed = record::write_changed(
                    based_on.metadata.resource_version.as_deref(),
                    lease.metadata.resource_version.as_deref(),
                );
                self.observe(lease, now);
                if changed {
                    self.telemetry.renewed(sent);
                    tracing::debug!(round_trip = ?now - sent, "renewed the Lease");
                    (Renewed::Extended, sent + settings.retry_period)
                } else {
                    tracing::warn!(
                        "the server kept the renew as a no-op (same resourceVersion): not extending the term"
                    );
                    self.telemetry.renew_failed(RenewFailure::Error);
                    (Renewed::Failed, now + settings.retry_period)
                }
            }
            Err(Error::Conflict { .. }) => {
                self.answered();
                self.telemetry.renew_failed(RenewFailure::Conflict);
                tracing::debug!("the Lease changed since it was read; reading it again");
                self.view = View::Unknown;
                (Renewed::Lost, now)
            }
            Err(error) => {
                self.telemetry.renew_failed(RenewFailure::Error);
                self.failed(&error);
                // The renew may have landed; it extends nothing until an
                // answer says so. A timeout is retried at once (the timed-out
                // connection is dropped, so the retry uses a fresh one).
                if matches!(error, Error::Timeout { .. }) {
                    (Renewed::TimedOut, now)
                } else {
                    (Renewed::Failed, now + settings.retry_period)
                }
            }
        };
        if let Some(active) = self.renewing() {
            active.renew_at = renew_at;
            if matches!(renewed, Renewed::Extended) {
                active.renewed_sent = sent;
                active.set_end(record::term_end(
                    sent,
                    settings.renew_deadline,
                    settings.lease_duration,
                    Some(settings.lease_duration),
                ));
            }
        }
        renewed
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
        let record = observed.term_record();
        let fencing_token = record::fencing_token(&observed.lease).unwrap_or_else(|| {
            tracing::warn!(
                version = ?observed.lease.metadata.resource_version,
                "the server's resourceVersion is not an integer: fencing tokens are 0"
            );
            0
        });
        let uid = observed.lease.metadata.uid.clone();
        let ends_at = record::term_end(
            sent,
            self.settings.renew_deadline,
            self.settings.lease_duration,
            record::lease_duration(record::spec_of(&observed.lease)),
        );
        self.terms += 1;
        let token = CancellationToken::new();
        let term = Term {
            id: self.terms,
            fencing_token,
            started_at: Instant::now(),
            token: token.clone(),
            ends: Deadline::new(ends_at),
        };
        let (drain, drained) = mpsc::channel(1);
        self.shared.set_drain(Some((term.id, drain)));
        self.remember(record.clone());
        self.term = Some(ActiveTerm {
            term,
            record,
            renewed_sent: sent,
            ends_at,
            renew_at: sent + self.settings.retry_period,
            drained,
            _cancel_on_drop: token.drop_guard(),
        });
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
            // Not ours to keep: guards see it unprotected at once.
            active.term.ends.set(Instant::now().min(active.ends_at));
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
    /// dropped, renewing the Lease meanwhile as a leader would, so that leader
    /// work still running keeps every other replica out.
    ///
    /// That protection lasts only while renews succeed: the drain also ends
    /// at the term's deadline (the renew deadline after the last renew that
    /// succeeded), since from then on another replica may lead. Work still
    /// running then is unprotected; the guards' deadline says so and
    /// `run_while_leading` drops its work.
    async fn drain(&mut self, active: ActiveTerm) {
        let settings = Arc::clone(&self.settings);
        let until = record::after(Instant::now(), settings.drain_timeout);
        self.draining = Some(active);
        while let Some(active) = self.draining.as_mut() {
            let (ends_at, renew_at) = (active.ends_at, active.renew_at.min(active.ends_at));
            tokio::select! {
                biased;
                _ = active.drained.recv() => break,
                () = sleep_until(until) => {
                    tracing::warn!(
                        "leader work did not finish within the drain timeout ({:?}); releasing the Lease anyway",
                        settings.drain_timeout
                    );
                    break;
                }
                () = sleep_until(ends_at) => {
                    tracing::warn!(
                        "leader work still runs, but the Lease could not be renewed within the renew deadline: \
                         from now on another replica may lead, so the work is no longer protected"
                    );
                    break;
                }
                () = sleep_until(renew_at) => {}
            }
            if matches!(self.view, View::Unknown) {
                self.read_for_drain(ends_at).await;
            }
            if matches!(self.renew().await, Renewed::Lost) && !matches!(self.view, View::Unknown) {
                tracing::warn!("the Lease is no longer ours while leader work drains");
                break;
            }
        }
        // From here on the work is not protected.
        if let Some(active) = self.draining.take() {
            active.term.ends.set(Instant::now().min(active.ends_at));
        }
    }

    /// A read during the drain (after a conflict), bounded by the term.
    async fn read_for_drain(&mut self, ends_at: Instant) {
        let timeout = ends_at
            .saturating_duration_since(Instant::now())
            .min(self.settings.request_timeout)
            .max(Duration::from_millis(1));
        match self.api.get(timeout).await {
            Ok(Some(lease)) => {
                self.answered();
                self.observe(lease, Instant::now());
            }
            Ok(None) => {
                self.answered();
                self.observe_missing(None);
            }
            Err(error) => self.failed(&error),
        }
    }

    /// Releases the Lease if it carries a record this elector wrote:
    /// conditional on the version we read, and re-read first when the view
    /// is unknown (a write cut off by the shutdown may have landed).
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
            let record = observed.term_record();
            if observed.holder() != Some(self.me()) || !self.written.contains(&record) {
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
