//! The loop an elector's task runs: it sends the requests the schedule asks
//! for and reports their answers back. Decisions live in `record`, timing in
//! `schedule`; here is the I/O, the telemetry and the published state.
//!
//! Phases, in order: campaign and lead (`run`: read, write, renew, wait),
//! then shut down (`shutdown.rs`: stop leading, drain, release).

mod handover;
mod shutdown;

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::watch;

use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::ShutdownOutcome;
use super::schedule::{ActiveTerm, Observation, Schedule, Step, Stop};
use super::telemetry::Telemetry;
use crate::api::LeaseApi;
use crate::candidate::{Candidate, Standing};
use crate::config::Settings;
use crate::error::{Error, LeaseOperation};
use crate::record::{self, TermRecord, Verdict};
use crate::shared::{RenewFailure, Shared};
use crate::state::LeaderState;
use crate::watch::{Inbox, Membership, Update};

/// How a renew went.
#[derive(Debug)]
enum Renewed {
    /// The server stored a new record: the term runs from when it was sent.
    Extended,
    /// The record is no longer ours to renew, or the renew conflicted.
    Lost,
    /// Failed, timed out or stored nothing new: retried by the schedule.
    Failed,
}

/// Where an elector hears of changes (its own watch, or a hub's namespace
/// watch, where it also stands in line with the other candidates for its
/// Lease in this process), and the `LeaseCandidate` it declares itself in
/// for coordinated election, if configured.
#[derive(Debug)]
pub(super) struct Feed {
    pub(super) inbox: Inbox,
    pub(super) line: Option<Membership>,
    pub(super) candidate: Option<Candidate>,
    /// Whether to campaign now, when switched at run time.
    pub(super) campaign: Option<watch::Receiver<bool>>,
}

/// Completes when the campaign switch changes (never without one, or once
/// its sender is gone).
async fn switched(campaign: &mut Option<watch::Receiver<bool>>) {
    if let Some(switch) = campaign
        && switch.changed().await.is_ok()
    {
        return;
    }
    std::future::pending::<()>().await;
}

impl Feed {
    /// Whether this elector is first in line for its Lease, not counting
    /// the successor `named`; alone, it always is.
    fn first_in_line(&self, named: Option<&str>) -> bool {
        self.line
            .as_ref()
            .is_none_or(|line| line.first_in_line(named))
    }

    fn set_leading(&self, leading: bool) {
        if let Some(line) = &self.line {
            line.set_leading(leading);
        }
    }

    /// Whom to name as successor on release: the next candidate in line.
    fn successor(&self) -> Option<std::sync::Arc<str>> {
        self.line.as_ref().and_then(Membership::successor)
    }
}

pub(super) struct Runner {
    api: LeaseApi,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    state: watch::Sender<LeaderState>,
    token: CancellationToken,
    feed: Feed,
    telemetry: Telemetry,
    schedule: Schedule,
    /// Requests that failed in a row: the first is a warning, the rest are
    /// debug until one succeeds, so an outage does not flood the logs.
    failures: u32,
    /// The `LeaseCandidate` of coordinated election, if configured.
    candidate: Option<Candidate>,
    /// The candidate the coordinating controller prefers: the term has to
    /// be handed over to it.
    yield_to: Option<String>,
    /// While a silent watch is checked: the newest `resourceVersion` seen
    /// when it was distrusted. The next read tells whether the watch
    /// missed a change or the holder has simply not renewed.
    silent_watch: Option<SilentWatch>,
}

/// A watch distrusted for its silence, until the next read says why.
#[derive(Debug)]
struct SilentWatch {
    /// The newest `resourceVersion` seen when it was distrusted.
    newest: Option<String>,
}

impl Runner {
    pub(super) fn new(
        api: LeaseApi,
        telemetry: Telemetry,
        settings: Arc<Settings>,
        shared: Arc<Shared>,
        state: watch::Sender<LeaderState>,
        token: CancellationToken,
        mut feed: Feed,
    ) -> Self {
        let candidate = feed.candidate.take();
        let schedule = Schedule::new(&settings, Instant::now());
        Self {
            api,
            settings,
            shared,
            state,
            token,
            feed,
            telemetry,
            schedule,
            failures: 0,
            candidate,
            yield_to: None,
            silent_watch: None,
        }
    }

    // === Campaign and lead ===

    pub(super) async fn run(mut self) -> Result<ShutdownOutcome, Error> {
        tracing::debug!("elector started");
        while !self.token.is_cancelled() {
            if let Some(preferred) = self.yield_to.take() {
                let to = crate::elector::Successor::Named(preferred);
                if let Err(error) = Box::pin(self.hand_over(&to)).await {
                    self.failed(&error);
                }
                continue;
            }
            if let Some(request) = self.shared.take_handover() {
                // Boxed, as the shutdown: it would widen every state of the loop.
                let outcome = Box::pin(self.hand_over(&request.to)).await;
                // The caller may have stopped waiting: nothing to tell then.
                let _ = request.reply.send(outcome);
                continue;
            }
            if let Some(switch) = &self.feed.campaign {
                self.schedule.set_campaign(*switch.borrow());
            }
            let now = Instant::now();
            if self.schedule.term_over(now) {
                self.stop_leading(&Stop::Deadline);
            }
            if self.schedule.newly_distrusted(now) {
                tracing::debug!(
                    "the watch has delivered nothing for {:?} while the Lease is held; reading the Lease",
                    record::watch_silence(self.settings.retry_period),
                );
                self.silent_watch = Some(SilentWatch {
                    newest: self.schedule.newest().map(str::to_owned),
                });
            }
            if !self.schedule.campaigns() {
                // An observer's view of who leads also changes when a
                // holder expires, without any event.
                self.publish();
            }
            self.schedule
                .set_coordinated(self.candidate.as_ref().is_some_and(|c| {
                    matches!(c.standing(), Standing::Registered | Standing::Withdrawn)
                }));
            let in_line = self.feed.first_in_line(self.schedule.named_successor());
            self.schedule.set_first_in_line(in_line);
            match self.schedule.next_step(now) {
                Step::Read => self.read().await,
                Step::Write(Verdict::Renew) => self.renew_in_loop().await,
                Step::Write(verdict) => {
                    self.schedule.free_since.get_or_insert(now);
                    self.write(verdict).await;
                }
                Step::Wait(until) => {
                    tokio::select! {
                        biased;
                        () = self.token.cancelled() => {}
                        update = self.feed.inbox.recv() => self.on_update(update),
                        () = self.shared.handover_asked() => {}
                        () = switched(&mut self.feed.campaign) => {}
                        () = sleep_until(until) => {}
                    }
                }
            }
        }
        // Boxed: run once, it would otherwise widen every state of the loop
        // (and hold the moved `self` a second time).
        Box::pin(self.shutdown()).await
    }

    fn me(&self) -> &str {
        &self.settings.identity
    }

    // === Reading ===

    async fn read(&mut self) {
        let timeout = self.schedule.request_timeout(Instant::now());
        let result = tokio::select! {
            biased;
            () = self.token.cancelled() => return,
            result = self.api.get(timeout) => result,
        };
        self.read_answered(result, Instant::now());
    }

    fn read_answered(&mut self, result: Result<Option<Lease>, Error>, now: Instant) {
        self.schedule.read_answered(now);
        match result {
            Ok(Some(lease)) => {
                self.answered();
                if self
                    .schedule
                    .is_stale(lease.metadata.resource_version.as_deref())
                {
                    tracing::debug!(
                        version = ?lease.metadata.resource_version,
                        "the read answered an older resourceVersion than one already seen; ignored"
                    );
                    self.schedule.back_off(now);
                } else {
                    self.observe(lease, now);
                }
            }
            Ok(None) => {
                self.answered();
                self.observe_missing(None, now);
            }
            Err(error) => {
                self.failed(&error);
                self.schedule.back_off(now);
                return;
            }
        }
        self.checked_silent_watch(now);
    }

    /// After the first read since the watch was distrusted: a warning if
    /// the read found a change the watch did not deliver; if not, nothing
    /// is wrong with the watch (a holder that stopped renewing, as a
    /// crashed one, sends no events): debug.
    fn checked_silent_watch(&mut self, now: Instant) {
        let Some(SilentWatch { newest: before }) = self.silent_watch.take() else {
            return;
        };
        let retry = self.settings.retry_period;
        let missed = self.schedule.lease().is_none() || self.schedule.newest() != before.as_deref();
        if missed {
            tracing::warn!(
                "the watch missed a change of the Lease (it delivered nothing for {:?} while the Lease \
                 is held); polling every {retry:?} until it delivers again",
                record::watch_silence(retry),
            );
        } else if let Some((holder, silent)) = self.schedule.other_holder_silent_for(now) {
            tracing::debug!(
                %holder,
                "{holder} has not renewed the Lease for {silent:.1?}; the watch missed nothing \
                 (polling every {retry:?} until it renews, or the Lease expires)"
            );
        }
    }

    fn on_update(&mut self, update: Update) {
        let now = Instant::now();
        match update {
            Update::Lease(lease) => {
                self.schedule.watch_progress(now);
                if self
                    .schedule
                    .is_newer(lease.metadata.resource_version.as_deref())
                {
                    self.observe(*lease, now);
                }
            }
            Update::Missing { version } => {
                self.schedule.watch_progress(now);
                if self.schedule.is_newer(version.as_deref()) {
                    self.observe_missing(version.as_deref(), now);
                }
            }
            Update::Progress => self.schedule.watch_progress(now),
            Update::Healthy(healthy) => self.schedule.watch_connected(healthy, now),
        }
    }

    fn observe(&mut self, lease: Lease, now: Instant) {
        tracing::trace!(
            version = ?lease.metadata.resource_version,
            holder = ?record::holder(record::spec_of(&lease)),
            "observed the Lease"
        );
        let held_by_another =
            record::holder(record::spec_of(&lease)).is_some_and(|h| h != self.me());
        let Observation { stop, shortened } = self.schedule.observe(lease, now);
        if held_by_another && let Some(candidate) = &self.candidate {
            // Someone took what this elector handed over: no longer aside.
            candidate.rejoin();
        }
        self.telemetry.observed();
        if let Some(shortened) = shortened {
            tracing::warn!(
                recorded = ?shortened.recorded,
                "the Lease now records a shorter duration than this elector writes; \
                 the term ends by what followers may compute from it unless a renew restores it"
            );
        }
        match stop {
            Some(Stop::Preferred(preferred)) if self.yield_to.is_none() => {
                tracing::info!(
                    %preferred,
                    "the coordinating controller prefers {preferred}: ending the term, draining, releasing"
                );
                self.yield_to = Some(preferred);
            }
            Some(Stop::Preferred(_)) | None => {}
            Some(stop) => {
                self.stop_leading(&stop);
            }
        }
        self.publish();
    }

    fn observe_missing(&mut self, version: Option<&str>, now: Instant) {
        let stop = self.schedule.observe_missing(version, now);
        self.telemetry.observed();
        if let Some(stop) = stop {
            self.stop_leading(&stop);
        }
        self.publish();
    }

    // === Writing ===

    /// Creates or takes the Lease for a new term.
    async fn write(&mut self, verdict: Verdict) {
        let settings = Arc::clone(&self.settings);
        let previous = match (&verdict, self.schedule.lease()) {
            (Verdict::Create, _) => None,
            (Verdict::Acquire, Some(lease)) => Some(lease.clone()),
            _ => return,
        };
        let sent = Instant::now();
        self.say_why_taking(previous.as_ref(), sent);
        let timeout = self.schedule.request_timeout(sent);
        let Some((_, spec)) = record::write_for(
            &verdict,
            previous.as_ref().map(record::spec_of),
            &settings.identity,
            settings.lease_duration_secs,
            settings.clock.now(),
        ) else {
            return;
        };
        self.schedule.remember(TermRecord::of(&spec));
        tracing::trace!(?verdict, "writing the Lease");
        let request = match &previous {
            None => futures::future::Either::Left(self.api.create(spec, timeout)),
            Some(lease) => futures::future::Either::Right(self.api.replace(
                LeaseOperation::Acquire,
                lease,
                spec,
                None,
                timeout,
            )),
        };
        let result = tokio::select! {
            biased;
            () = self.token.cancelled() => {
                // The write may have landed: read before deciding anything.
                self.schedule.forget_view();
                return;
            }
            result = request => result,
        };
        let now = Instant::now();
        match result {
            Ok(lease) => {
                self.answered();
                self.observe(lease, now);
                self.start_leading(sent, now);
            }
            Err(Error::Conflict { .. }) => {
                self.answered();
                tracing::debug!(
                    ?verdict,
                    "the Lease changed since it was read; reading it again"
                );
                self.schedule.write_conflicted(&verdict, now);
            }
            Err(error) => {
                self.failed(&error);
                // The write may have landed without its answer.
                self.schedule.forget_view();
                self.schedule.back_off(now);
            }
        }
    }

    /// A takeover from a holder that stopped renewing says so, at info.
    fn say_why_taking(&self, previous: Option<&Lease>, now: Instant) {
        if let Some((holder, silent)) = self.schedule.other_holder_silent_for(now) {
            tracing::info!(
                %holder,
                "{holder} has not renewed the Lease for {silent:.1?} (its lease is {:?}): taking the Lease",
                previous.and_then(|l| record::lease_duration(record::spec_of(l))),
            );
        }
    }

    /// Renews the term from the loop; cancellation cuts the request off and
    /// leaves the view unknown (the renew may have landed).
    async fn renew_in_loop(&mut self) {
        let token = self.token.clone();
        tokio::select! {
            biased;
            () = token.cancelled() => self.schedule.forget_view(),
            _ = self.renew() => {}
        }
    }

    /// One renew of the current (or draining) term, shared by the loop and
    /// the drain. A renew extends the term only if the server stored a new
    /// record. (A little over 60 lines: the three answers of one request,
    /// each with its telemetry, read best side by side.)
    async fn renew(&mut self) -> Renewed {
        let settings = Arc::clone(&self.settings);
        let Some(based_on) = self.schedule.renew_basis() else {
            return Renewed::Lost;
        };
        let sent = Instant::now();
        let Some((_, spec)) = record::write_for(
            &Verdict::Renew,
            Some(record::spec_of(&based_on)),
            &settings.identity,
            settings.lease_duration_secs,
            settings.clock.now(),
        ) else {
            return Renewed::Lost;
        };
        let timeout = self.schedule.request_timeout(sent);
        let result = self
            .api
            .replace(LeaseOperation::Renew, &based_on, spec, None, timeout)
            .await;
        let now = Instant::now();
        match result {
            Ok(lease) => {
                self.answered();
                let changed = record::write_changed(
                    based_on.metadata.resource_version.as_deref(),
                    lease.metadata.resource_version.as_deref(),
                );
                self.observe(lease, now);
                self.schedule
                    .renewed(sent, changed, self.schedule.retry_at(false, now));
                if changed {
                    self.telemetry.renewed(sent);
                    tracing::debug!(round_trip = ?now - sent, "renewed the Lease");
                    Renewed::Extended
                } else {
                    tracing::warn!(
                        "the server kept the renew as a no-op (same resourceVersion): not extending the term"
                    );
                    self.telemetry.renew_failed(RenewFailure::Error);
                    Renewed::Failed
                }
            }
            Err(Error::Conflict { .. }) => {
                self.answered();
                self.telemetry.renew_failed(RenewFailure::Conflict);
                tracing::debug!("the Lease changed since it was read; reading it again");
                self.schedule.forget_view();
                self.schedule.renewed(sent, false, now);
                Renewed::Lost
            }
            Err(error) => {
                self.telemetry.renew_failed(RenewFailure::Error);
                self.failed(&error);
                // The renew may have landed; it extends nothing until an
                // answer says so.
                let timed_out = matches!(error, Error::Timeout { .. });
                self.schedule
                    .renewed(sent, false, self.schedule.retry_at(timed_out, now));
                Renewed::Failed
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

    fn start_leading(&mut self, sent: Instant, now: Instant) {
        let (drain, drained) = crate::shared::drain();
        let Some((term, fencing)) = self.schedule.start_term(sent, now, drained) else {
            tracing::warn!(
                "the Lease was taken, but the answer came after the renew deadline; not leading this term"
            );
            return;
        };
        let lease = self.schedule.lease();
        if fencing.is_none() {
            tracing::warn!(
                version = ?lease.and_then(|l| l.metadata.resource_version.as_deref()),
                "the server's resourceVersion is not an integer: fencing tokens are 0"
            );
        }
        let uid = lease.and_then(|l| l.metadata.uid.clone());
        self.shared.set_drain(Some((term.id, drain)));
        self.feed.set_leading(true);
        let free_since = self.schedule.free_since.take();
        self.telemetry
            .started_leading(sent, free_since, uid.as_deref());
        tracing::info!(fencing_token = term.fencing_token, "started leading");
        self.publish();
    }

    /// Ends the current term, if any: the guard token is cancelled and the
    /// state published before anything else happens.
    fn stop_leading(&mut self, reason: &Stop) -> Option<ActiveTerm> {
        let active = self.schedule.stop_term()?;
        self.shared.set_drain(None);
        self.feed.set_leading(false);
        let uid = self.schedule.lease().and_then(|l| l.metadata.uid.clone());
        self.telemetry.stopped_leading(uid.as_deref());
        if matches!(reason, Stop::Shutdown | Stop::Handover) {
            tracing::info!(%reason, "stopped leading");
        } else {
            // Not ours to keep: guards see it unprotected at once.
            active.unprotect(Instant::now());
            tracing::warn!(%reason, "lost the Lease: stopped leading");
        }
        self.publish();
        Some(active)
    }

    fn publish(&self) {
        let now = Instant::now();
        let leader = if self.schedule.campaigns() {
            self.schedule.leader()
        } else {
            self.schedule.live_leader(now)
        };
        let next = LeaderState {
            leader: leader.map(str::to_owned),
            term: self
                .schedule
                .term
                .as_ref()
                .map(|active| active.term.clone()),
            since: now,
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
}
