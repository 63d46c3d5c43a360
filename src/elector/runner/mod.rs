//! The loop an elector's task runs: it sends the requests the schedule asks
//! for and reports their answers back. Decisions live in `record`, timing in
//! `schedule`; here is the I/O, the telemetry and the published state.
//!
//! Phases, in order: campaign and lead (`run`: read, write, renew, wait),
//! then shut down (`shutdown.rs`: stop leading, drain, release).

mod handover;
mod outage;
mod read;
mod shutdown;

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::watch;

use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::ShutdownOutcome;
use super::schedule::{ActiveTerm, Input, Schedule, Started, Step, Stop, Write};
use super::telemetry::Telemetry;
use crate::api::LeaseApi;
use crate::candidate::{Candidate, Standing};
use crate::config::Settings;
use crate::error::Error;
use crate::record::{self, Verdict};
use crate::shared::{RenewFailure, Shared};
use crate::state::LeaderState;
use crate::watch::{Inbox, Membership};

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

/// Completes with the new value when the campaign switch changes (never
/// without one, or once its sender is gone).
async fn switched(campaign: &mut Option<watch::Receiver<bool>>) -> bool {
    if let Some(switch) = campaign
        && switch.changed().await.is_ok()
    {
        return *switch.borrow_and_update();
    }
    std::future::pending().await
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

/// Thirteen fields: the elector's task owns its connections (API, shared
/// state, published state, token, feed, telemetry, candidate), its
/// schedule and the few things that shape only its logs and handovers.
pub(super) struct Runner {
    api: LeaseApi,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    state: watch::Sender<LeaderState>,
    token: CancellationToken,
    feed: Feed,
    telemetry: Telemetry,
    schedule: Schedule,
    /// Requests that fail in a row: the first is a warning, the rest are
    /// debug until the failure ends, so an outage does not flood the logs.
    outage: outage::Outage,
    /// The `LeaseCandidate` of coordinated election, if configured.
    candidate: Option<Candidate>,
    /// The candidate the coordinating controller prefers: the term has to
    /// be handed over to it.
    yield_to: Option<String>,
    /// While a silent watch is checked: the newest `resourceVersion` seen
    /// when it was distrusted. The next read tells whether the watch
    /// missed a change or the holder has simply not renewed.
    silent_watch: Option<SilentWatch>,
    /// The successor the last handover named, until someone takes the
    /// Lease: a name that matches nobody is said, not silent.
    named_out: Option<String>,
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
        let mut schedule = Schedule::new(&settings, Instant::now());
        if let Some(switch) = &mut feed.campaign {
            // The switch's value as it starts; later changes come as inputs.
            schedule.input(Input::Campaign(*switch.borrow_and_update()));
        }
        Self {
            api,
            settings,
            shared,
            state,
            token,
            feed,
            telemetry,
            schedule,
            outage: outage::Outage::default(),
            candidate,
            yield_to: None,
            silent_watch: None,
            named_out: None,
        }
    }

    // === Campaign and lead ===

    pub(super) async fn run(mut self) -> Result<ShutdownOutcome, Error> {
        // One line for a lone elector (the quick start's), debug for the
        // many a hub or a sharded elector runs.
        if self.settings.campaign && self.feed.line.is_none() {
            tracing::info!("campaigning for the Lease");
        } else {
            tracing::debug!(campaign = self.settings.campaign, "elector started");
        }
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
            if let Some(switch) = &mut self.feed.campaign
                && switch.has_changed().unwrap_or(false)
            {
                let campaign = *switch.borrow_and_update();
                self.schedule.input(Input::Campaign(campaign));
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
            self.tell_what_changed();
            match self.schedule.next_step(now) {
                Step::Read => self.read().await,
                Step::Write(Verdict::Renew) => self.renew_in_loop().await,
                Step::Write(verdict) => self.write(&verdict, now).await,
                Step::Wait(until) => {
                    tokio::select! {
                        biased;
                        () = self.token.cancelled() => {}
                        update = self.feed.inbox.recv() => self.on_update(update),
                        () = self.shared.handover_asked() => {}
                        campaign = switched(&mut self.feed.campaign) => {
                            self.schedule.input(Input::Campaign(campaign));
                        }
                        () = sleep_until(until) => {}
                    }
                }
            }
        }
        // Boxed: run once, it would otherwise widen every state of the loop
        // (and hold the moved `self` a second time).
        Box::pin(self.shutdown()).await
    }

    /// Tells the schedule what changed around it since the last turn: its
    /// standing in coordinated election, its place in line (both change
    /// in other tasks, so they are looked at here, and sent only when they
    /// changed).
    fn tell_what_changed(&mut self) {
        let coordinated = self
            .candidate
            .as_ref()
            .is_some_and(|c| matches!(c.standing(), Standing::Registered | Standing::Withdrawn));
        if coordinated != self.schedule.coordinated() {
            self.schedule.input(Input::Coordinated(coordinated));
        }
        let first = self.feed.first_in_line(self.schedule.named_successor());
        if first != self.schedule.first_in_line() {
            self.schedule.input(Input::FirstInLine(first));
        }
    }

    fn me(&self) -> &str {
        &self.settings.identity
    }

    // === Writing ===

    /// Creates or takes the Lease for a new term, as `verdict` says at `now`.
    async fn write(&mut self, verdict: &Verdict, now: Instant) {
        let wall = self.settings.clock.now();
        let Some(write) = self.schedule.write(verdict, wall, now) else {
            return;
        };
        let sent = Instant::now();
        let operation = write.operation;
        self.say_why_taking(write.based_on.as_ref(), sent);
        let timeout = self.schedule.request_timeout(sent);
        tracing::trace!(?verdict, "writing the Lease");
        let request = match &write.based_on {
            None => futures::future::Either::Left(self.api.create(write.spec, timeout)),
            Some(lease) => futures::future::Either::Right(self.api.replace(
                write.operation,
                crate::successor::to_write(lease, write.spec, None),
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
                self.answered(operation);
                self.observe(lease, now);
                self.start_leading(sent, now);
            }
            Err(Error::Conflict { .. }) => {
                self.answered(operation);
                tracing::debug!(
                    ?verdict,
                    "the Lease changed since it was read; reading it again"
                );
                self.schedule.write_conflicted(verdict, now);
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
            let recorded = previous.and_then(|l| record::lease_duration(record::spec_of(l)));
            if let Some(lease) = recorded {
                tracing::info!(
                    %holder,
                    "{holder} has not renewed the Lease for {silent:.1?} (its lease is \
                     {lease:?}): taking the Lease",
                );
            } else {
                tracing::info!(
                    %holder,
                    "{holder} has not renewed the Lease for {silent:.1?} (it records no lease \
                     duration): taking the Lease",
                );
            }
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
        let Some(Write {
            operation,
            based_on: Some(based_on),
            spec,
        }) = self.schedule.renew_write(self.settings.clock.now())
        else {
            return Renewed::Lost;
        };
        let sent = Instant::now();
        let timeout = self.schedule.request_timeout(sent);
        let result = self
            .api
            .replace(
                operation,
                crate::successor::to_write(&based_on, spec, None),
                timeout,
            )
            .await;
        let now = Instant::now();
        match result {
            Ok(lease) => {
                self.answered(operation);
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
                self.answered(operation);
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

    /// The API server answered `operation` (a conflict is an answer too).
    fn answered(&mut self, operation: crate::error::LeaseOperation) {
        self.outage.answered(operation);
    }

    fn failed(&mut self, error: &Error) {
        self.outage.failed(error, self.settings.retry_period);
    }

    // === Leadership ===

    fn start_leading(&mut self, sent: Instant, now: Instant) {
        let (drain, drained) = crate::shared::drain();
        let Some(Started {
            term,
            fencing,
            free_since,
        }) = self.schedule.start_term(sent, now, drained)
        else {
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
            term: self.schedule.term().map(|active| active.term.clone()),
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
