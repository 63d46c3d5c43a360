//! What an elector knows and when it acts next: the view of the Lease, the
//! term it holds, the records it wrote, the health of its watch, and the
//! instants it waits for.
//!
//! No I/O and no clock reading here: every method takes `now`, the runner
//! reports what its requests answered, and [`Schedule::next_step`] says
//! what to do. The verdicts come from `record`; this is where they are
//! scheduled. Tested under paused time below.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::Settings;
use crate::record::{self, Observed, Own, TermRecord, Verdict};
use crate::state::{Deadline, Term};

/// How many of the records this elector wrote it remembers (its last terms,
/// acquires whose answers it never saw).
const REMEMBERED: usize = 4;

/// What is known of the Lease.
#[derive(Debug)]
pub(super) enum View {
    /// Nothing yet, or a write conflicted or was cut off: read before deciding.
    Unknown,
    /// There is no Lease, as first observed at `since`.
    Missing { since: Instant },
    /// The Lease as last observed.
    Present(Box<Observed>),
}

/// The term this elector holds.
#[derive(Debug)]
pub(super) struct ActiveTerm {
    pub(super) term: Term,
    /// The record that tells this term from any other (holder, transitions,
    /// acquire time): the term holds only while the Lease carries it.
    pub(super) record: TermRecord,
    /// When the request of the last successful acquire or renew was sent.
    renewed_sent: Instant,
    /// When the term ends unless a renew extends it: stored once, here and
    /// in the guards' shared deadline (`term.ends`).
    pub(super) ends_at: Instant,
    /// When the next renew is due.
    pub(super) renew_at: Instant,
    /// Closed once every `Leadership` guard of this term is dropped.
    pub(super) drained: mpsc::Receiver<()>,
    /// Cancels the term's token if the task ends on any path (a panic, a
    /// dropped runtime), so leader work never outlives the loop.
    _cancel_on_drop: DropGuard,
}

impl ActiveTerm {
    fn set_end(&mut self, ends_at: Instant) {
        self.ends_at = ends_at;
        self.term.ends.set(ends_at);
    }

    /// From now on the term keeps nobody out: its guards say so.
    pub(super) fn unprotect(&self, now: Instant) {
        self.term.ends.set(now.min(self.ends_at));
    }
}

/// Why a term ended.
#[derive(Debug)]
pub(super) enum Stop {
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
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    Read,
    Write(Verdict),
    Wait(Instant),
}

/// What an observation changed, for the runner to act on.
#[derive(Debug, Default)]
pub(super) struct Observation {
    /// The term must end, for this reason.
    pub(super) stop: Option<Stop>,
    /// The Lease records a shorter duration than ours: the term was
    /// shortened and a renew is due at once.
    pub(super) shortened: Option<Shortened>,
}

/// The duration a Lease records, when it is shorter than ours (`None`: no
/// valid duration at all).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Shortened {
    pub(super) recorded: Option<Duration>,
}

/// The timings and identity the schedule works with.
#[derive(Clone, Debug)]
struct Timing {
    identity: String,
    adopt_own_lease: bool,
    campaign: bool,
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
    request_timeout: Duration,
}

#[derive(Debug)]
pub(super) struct Schedule {
    timing: Timing,
    pub(super) view: View,
    /// The Lease as last seen present: a deletion does not end its holder's
    /// term early (see `record::judge_missing`).
    last_seen: Option<Box<Observed>>,
    /// The newest `resourceVersion` seen: an older answer (a lagging cache)
    /// never replaces a newer observation.
    newest: Option<String>,
    pub(super) term: Option<ActiveTerm>,
    /// The term that ended at shutdown, renewed while its work drains.
    pub(super) draining: Option<ActiveTerm>,
    terms: u64,
    /// Records this elector wrote: a Lease that carries one is its own.
    written: Vec<TermRecord>,
    /// Whether the watch is connected, and when it last delivered something.
    connected: bool,
    progress: Instant,
    distrusted: bool,
    /// No write (acquire or create) before this, after a failed one.
    write_after: Instant,
    /// When a follower polls next while the watch is not trusted.
    poll_at: Instant,
    /// When this elector first found the Lease free to take, since it last
    /// saw it held by another (for the handover metric).
    pub(super) free_since: Option<Instant>,
}

impl Schedule {
    pub(super) fn new(settings: &Settings, now: Instant) -> Self {
        Self {
            timing: Timing {
                identity: settings.identity.clone(),
                adopt_own_lease: settings.adopt_own_lease,
                campaign: settings.campaign,
                lease_duration: settings.lease_duration,
                renew_deadline: settings.renew_deadline,
                retry_period: settings.retry_period,
                request_timeout: settings.request_timeout,
            },
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
        }
    }

    fn me(&self) -> &str {
        &self.timing.identity
    }

    fn own(&self) -> Own<'_> {
        Own {
            leading: self.term.as_ref().map(|t| &t.record),
            written: &self.written,
            adopt: self.timing.adopt_own_lease,
        }
    }

    /// Until an answer says otherwise, a write of `record` may land: a Lease
    /// that carries it is ours.
    pub(super) fn remember(&mut self, record: TermRecord) {
        if !self.written.contains(&record) {
            if self.written.len() == REMEMBERED {
                self.written.remove(0);
            }
            self.written.push(record);
        }
    }

    /// Whether `record` is one this elector wrote.
    pub(super) fn wrote(&self, record: &TermRecord) -> bool {
        self.written.contains(record)
    }

    /// Whether this elector ever sent a write (so that it may hold the
    /// Lease without knowing it).
    pub(super) fn wrote_anything(&self) -> bool {
        !self.written.is_empty()
    }

    /// Another holder, and how long its record has been seen unchanged.
    pub(super) fn other_holder_silent_for(&self, now: Instant) -> Option<(&str, Duration)> {
        let View::Present(observed) = &self.view else {
            return None;
        };
        let holder = observed.holder().filter(|h| *h != self.me())?;
        Some((holder, now.saturating_duration_since(observed.observed_at)))
    }

    /// Who leads at `now`, as an observer judges it: the holder, while its
    /// record has not expired by the same rules candidates follow (counted
    /// from the observation, on the local clock).
    pub(super) fn live_leader(&self, now: Instant) -> Option<&str> {
        match &self.view {
            View::Present(observed) => observed.holder().filter(|_| now < observed.expires_at()),
            _ => None,
        }
    }

    /// Whether this schedule campaigns (an observer does not).
    pub(super) fn campaigns(&self) -> bool {
        self.timing.campaign
    }

    /// The holder of the Lease as last observed.
    pub(super) fn leader(&self) -> Option<&str> {
        match &self.view {
            View::Present(observed) => observed.holder(),
            _ => None,
        }
    }

    /// The Lease as last observed, if it is present.
    pub(super) fn lease(&self) -> Option<&Lease> {
        match &self.view {
            View::Present(observed) => Some(&observed.lease),
            _ => None,
        }
    }

    // === Watch health ===

    fn silence(&self) -> Duration {
        record::watch_silence(self.timing.retry_period)
    }

    fn watch_trusted(&self, now: Instant) -> bool {
        record::watch_trusted(
            self.connected,
            self.progress,
            self.leader().is_some(),
            self.silence(),
            now,
        )
    }

    /// Whether the watch has just stopped being trusted (it is connected
    /// but shows no progress): the runner says so once, and polling starts.
    pub(super) fn newly_distrusted(&mut self, now: Instant) -> bool {
        let trusted = self.watch_trusted(now);
        let newly = !trusted && self.connected && !self.distrusted && self.term.is_none();
        if newly {
            self.poll_at = now;
        }
        self.distrusted = !trusted;
        newly
    }

    // === Scheduling ===

    /// Whether the term has run past its deadline.
    pub(super) fn term_over(&self, now: Instant) -> bool {
        self.term.as_ref().is_some_and(|t| now >= t.ends_at)
    }

    /// What to do at `now`.
    pub(super) fn next_step(&self, now: Instant) -> Step {
        let leading = self.term.is_some();
        let polling = !self.watch_trusted(now) && !leading;
        let verdict = match &self.view {
            View::Unknown => return self.not_before(now, self.write_after, Step::Read),
            _ if polling && now >= self.poll_at => return Step::Read,
            View::Missing { since } => record::judge_missing(
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
            // An observer never writes: it waits for the next change.
            (Verdict::Create | Verdict::Acquire, _) if !self.timing.campaign => {
                record::after(now, Duration::from_secs(86_400))
            }
            (Verdict::Create | Verdict::Acquire, _) => {
                return self.not_before(now, self.write_after, Step::Write(verdict));
            }
            // `judge` renews only while leading; should that change, poll.
            (Verdict::Renew, None) => now + self.timing.retry_period,
        };
        Step::Wait(match (&self.term, polling) {
            (Some(active), _) => wake.min(active.ends_at),
            (None, true) => wake.min(self.poll_at),
            // A trusted watch of a held Lease must show progress by then.
            (None, false) if self.leader().is_some() => {
                wake.min(record::after(self.progress, self.silence()))
            }
            (None, false) => wake,
        })
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

    /// How long a request sent at `sent` may take: one attempt (two fit in
    /// a renew deadline), and while a term runs never past its end.
    pub(super) fn request_timeout(&self, sent: Instant) -> Duration {
        let limit = self.timing.request_timeout;
        match self.term.as_ref().or(self.draining.as_ref()) {
            Some(active) => active
                .ends_at
                .saturating_duration_since(sent)
                .min(limit)
                .max(Duration::from_millis(1)),
            None => limit,
        }
    }

    // === Observing ===

    /// Whether `version` is newer than every version seen so far.
    pub(super) fn is_newer(&self, version: Option<&str>) -> bool {
        self.newest.is_none() || record::is_newer(version, self.newest.as_deref())
    }

    /// Whether `version` is older than one already seen (a lagging cache):
    /// such an answer must not replace the newer observation. The same
    /// version again is not stale: it is the record, still unchanged.
    pub(super) fn is_stale(&self, version: Option<&str>) -> bool {
        version.is_some_and(|v| {
            self.newest
                .as_deref()
                .is_some_and(|newest| newest != v && record::is_newer(Some(newest), Some(v)))
        })
    }

    fn saw_version(&mut self, version: Option<&str>) {
        if let Some(version) = version
            && self.is_newer(Some(version))
        {
            self.newest = Some(version.to_owned());
        }
    }

    /// A read answered: polls are due a retry period later.
    pub(super) fn read_answered(&mut self, now: Instant) {
        self.poll_at = now + self.timing.retry_period;
    }

    /// A request failed, or a read was older than what was seen: no write
    /// before a retry period has passed.
    pub(super) fn back_off(&mut self, now: Instant) {
        self.write_after = now + self.timing.retry_period;
    }

    /// The watch delivered an event, or connected or broke.
    pub(super) fn watch_progress(&mut self, now: Instant) {
        self.progress = now;
    }

    pub(super) fn watch_connected(&mut self, connected: bool, now: Instant) {
        self.connected = connected;
        if !connected {
            self.poll_at = now;
        }
    }

    /// The Lease as read at `now`.
    pub(super) fn observe(&mut self, lease: Lease, now: Instant) -> Observation {
        self.saw_version(lease.metadata.resource_version.as_deref());
        // The last Lease seen, even across a failed write: the observation
        // time of an unchanged record must not move.
        let observed = Box::new(Observed::update(self.last_seen.as_deref(), lease, now));
        let record = observed.term_record();
        let recorded = record::lease_duration(record::spec_of(&observed.lease));
        self.last_seen = Some(observed.clone());
        self.view = View::Present(observed);
        if record.holder.as_deref().is_some_and(|h| h != self.me()) {
            self.free_since = None;
        }
        let timing = &self.timing;
        let Some(active) = &mut self.term else {
            return Observation::default();
        };
        if !record::still_holds(&record, &active.record) {
            let stop = if record.holder.as_deref() == Some(timing.identity.as_str()) {
                Stop::Twin
            } else {
                Stop::Taken(record.holder)
            };
            return Observation {
                stop: Some(stop),
                shortened: None,
            };
        }
        let end = record::term_end(
            active.renewed_sent,
            timing.renew_deadline,
            timing.lease_duration,
            recorded,
        );
        if end >= active.ends_at {
            return Observation::default();
        }
        active.set_end(end);
        active.renew_at = now;
        Observation {
            stop: None,
            shortened: Some(Shortened { recorded }),
        }
    }

    /// The Lease was found missing at `now`.
    pub(super) fn observe_missing(&mut self, version: Option<&str>, now: Instant) -> Option<Stop> {
        self.saw_version(version);
        let since = match &self.view {
            View::Missing { since } => *since,
            _ => now,
        };
        self.view = View::Missing { since };
        self.term.is_some().then_some(Stop::Deleted)
    }

    /// A write was cut off, conflicted or failed: what the Lease holds now
    /// is unknown until it is read again.
    pub(super) fn forget_view(&mut self) {
        self.view = View::Unknown;
    }

    // === Writing ===

    /// A create or acquire conflicted: read again. After a create, also wait
    /// a retry period: someone else created it and leads, and a read that
    /// still says "missing" (a lagging cache) must not turn into a loop.
    pub(super) fn write_conflicted(&mut self, verdict: &Verdict, now: Instant) {
        self.view = View::Unknown;
        if *verdict == Verdict::Create {
            self.back_off(now);
        }
    }

    /// The term being renewed (the current one, or the one draining), and
    /// the Lease to base the renew on, if the Lease still carries its record.
    pub(super) fn renew_basis(&self) -> Option<Lease> {
        let active = self.term.as_ref().or(self.draining.as_ref())?;
        match &self.view {
            View::Present(observed)
                if record::still_holds(&observed.term_record(), &active.record) =>
            {
                Some(observed.lease.clone())
            }
            _ => None,
        }
    }

    /// A renew sent at `sent` was answered at `now`; `extended` if the
    /// server stored a new record (the term then runs from `sent`), else the
    /// next attempt is `retry_at`.
    pub(super) fn renewed(&mut self, sent: Instant, extended: bool, retry_at: Instant) {
        let timing = self.timing.clone();
        let Some(active) = self.term.as_mut().or(self.draining.as_mut()) else {
            return;
        };
        if extended {
            active.renewed_sent = sent;
            active.renew_at = sent + timing.retry_period;
            active.set_end(record::term_end(
                sent,
                timing.renew_deadline,
                timing.lease_duration,
                Some(timing.lease_duration),
            ));
        } else {
            active.renew_at = retry_at;
        }
    }

    /// When a failed renew is retried: at once after a timeout (the
    /// timed-out connection is dropped, so the retry uses a fresh one), a
    /// retry period later otherwise.
    pub(super) fn retry_at(&self, timed_out: bool, now: Instant) -> Instant {
        if timed_out {
            now
        } else {
            now + self.timing.retry_period
        }
    }

    // === Terms ===

    /// Starts a term with the Lease just written (by a request sent at
    /// `sent`), if the answer came within the renew deadline; `drained`
    /// closes when the term's guards are gone. Returns the term, and the
    /// fencing token if the server's resourceVersion is one.
    pub(super) fn start_term(
        &mut self,
        sent: Instant,
        now: Instant,
        drained: mpsc::Receiver<()>,
    ) -> Option<(Term, Option<u64>)> {
        if now >= record::after(sent, self.timing.renew_deadline) {
            self.back_off(now);
            return None;
        }
        let View::Present(observed) = &self.view else {
            return None;
        };
        let record = observed.term_record();
        let fencing = record::fencing_token(&observed.lease);
        let ends_at = record::term_end(
            sent,
            self.timing.renew_deadline,
            self.timing.lease_duration,
            record::lease_duration(record::spec_of(&observed.lease)),
        );
        self.terms += 1;
        let token = CancellationToken::new();
        let term = Term {
            id: self.terms,
            fencing_token: fencing.unwrap_or(0),
            started_at: now,
            token: token.clone(),
            ends: Deadline::new(ends_at),
        };
        self.remember(record.clone());
        self.term = Some(ActiveTerm {
            term: term.clone(),
            record,
            renewed_sent: sent,
            ends_at,
            renew_at: sent + self.timing.retry_period,
            drained,
            _cancel_on_drop: token.drop_guard(),
        });
        Some((term, fencing))
    }

    /// Ends the current term, if any: its token is cancelled at once.
    pub(super) fn stop_term(&mut self) -> Option<ActiveTerm> {
        let active = self.term.take()?;
        active.term.token.cancel();
        Some(active)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use tokio::time::advance;

    use super::*;
    use crate::clock::SystemClock;

    const LEASE: Duration = Duration::from_secs(2);
    const DEADLINE: Duration = Duration::from_secs(1);
    const RETRY: Duration = Duration::from_millis(250);

    fn settings() -> Settings {
        Settings {
            identity: "me".into(),
            lease_duration_secs: 2,
            lease_duration: LEASE,
            renew_deadline: DEADLINE,
            retry_period: RETRY,
            request_timeout: record::attempt_timeout(DEADLINE, RETRY),
            release_on_cancel: true,
            drain_timeout: Duration::from_secs(5),
            adopt_own_lease: false,
            campaign: true,
            clock: Arc::new(SystemClock),
            reporting: crate::config::Reporting::default(),
        }
    }

    fn lease(spec: LeaseSpec, rv: u64) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("l".into()),
                resource_version: Some(rv.to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        }
    }

    fn held_by(holder: &str, rv: u64) -> Lease {
        lease(
            LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(2),
                ..LeaseSpec::default()
            },
            rv,
        )
    }

    /// A schedule that leads, with its term started by a write sent now.
    fn leading() -> Schedule {
        let now = Instant::now();
        let mut s = Schedule::new(&settings(), now);
        let spec = record::acquire(None, "me", 2, jiff::Timestamp::now());
        s.remember(TermRecord::of(&spec));
        s.observe(lease(spec, 1), now);
        assert!(s.start_term(now, now, mpsc::channel(1).1).is_some());
        s
    }

    #[tokio::test(start_paused = true)]
    async fn a_term_ends_at_the_renew_deadline_unless_a_renew_extends_it() {
        let s = leading();
        let sent = Instant::now();
        advance(Duration::from_millis(999)).await;
        assert!(!s.term_over(Instant::now()));
        advance(Duration::from_millis(1)).await;
        assert!(s.term_over(Instant::now()));
        // A renew sent half-way extends the term to its own deadline.
        let mut s2 = leading();
        advance(DEADLINE / 2).await;
        let renew_sent = Instant::now();
        s2.renewed(renew_sent, true, renew_sent);
        advance(DEADLINE / 2).await;
        assert!(!s2.term_over(Instant::now()));
        assert!(s.term.as_ref().unwrap().ends_at == sent + DEADLINE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_renew_that_changed_nothing_does_not_extend_the_term() {
        let mut s = leading();
        let end = s.term.as_ref().unwrap().ends_at;
        advance(RETRY).await;
        let now = Instant::now();
        s.renewed(now, false, now + RETRY);
        assert_eq!(s.term.as_ref().unwrap().ends_at, end);
    }

    #[tokio::test(start_paused = true)]
    async fn the_leader_renews_every_retry_period() {
        let s = leading();
        let now = Instant::now();
        assert_eq!(s.next_step(now), Step::Wait(now + RETRY));
        advance(RETRY).await;
        assert_eq!(s.next_step(Instant::now()), Step::Write(Verdict::Renew));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_renew_is_retried_at_once_another_failure_a_retry_period_later() {
        let mut s = leading();
        advance(RETRY).await;
        let now = Instant::now();
        let at = s.retry_at(true, now);
        s.renewed(now, false, at);
        assert_eq!(s.next_step(now), Step::Write(Verdict::Renew));
        let at = s.retry_at(false, now);
        s.renewed(now, false, at);
        assert_eq!(s.next_step(now), Step::Wait(now + RETRY));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_request_backs_off_a_retry_period_before_the_next_write() {
        let now = Instant::now();
        let mut s = Schedule::new(&settings(), now);
        s.back_off(now);
        assert_eq!(s.next_step(now), Step::Wait(now + RETRY));
        advance(RETRY).await;
        assert_eq!(s.next_step(Instant::now()), Step::Read);
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_arms_one_timer_at_observed_plus_lease_duration() {
        let now = Instant::now();
        let mut s = Schedule::new(&settings(), now);
        s.watch_connected(true, now);
        s.observe(held_by("other", 5), now);
        // The watch must show progress within three retry periods; the
        // takeover timer is at observed + lease.
        assert_eq!(s.next_step(now), Step::Wait(now + RETRY * 3));
        for _ in 0..8 {
            advance(RETRY).await;
            s.watch_progress(Instant::now());
        }
        assert_eq!(s.next_step(Instant::now()), Step::Write(Verdict::Acquire));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_watch_of_a_held_lease_turns_into_polling() {
        let now = Instant::now();
        let mut s = Schedule::new(&settings(), now);
        s.watch_connected(true, now);
        s.observe(held_by("other", 5), now);
        s.read_answered(now);
        assert!(!s.newly_distrusted(now));
        advance(RETRY * 3).await;
        let later = Instant::now();
        assert!(s.newly_distrusted(later), "three silent retry periods");
        assert_eq!(s.next_step(later), Step::Read);
        s.read_answered(later);
        assert_eq!(s.next_step(later), Step::Wait(later + RETRY));
        assert!(!s.newly_distrusted(later), "said once");
    }

    #[tokio::test(start_paused = true)]
    async fn an_observer_never_writes_and_sees_an_expired_holder_as_no_leader() {
        let now = Instant::now();
        let mut s = Schedule::new(
            &Settings {
                campaign: false,
                ..settings()
            },
            now,
        );
        s.watch_connected(true, now);
        assert_eq!(s.observe_missing(None, now).map(|_| ()), None);
        assert!(matches!(s.next_step(now), Step::Wait(_)), "no create");
        s.observe(held_by("other", 5), now);
        assert_eq!(s.live_leader(now), Some("other"));
        for _ in 0..8 {
            advance(RETRY).await;
            s.watch_progress(Instant::now());
        }
        let later = Instant::now();
        assert_eq!(
            s.live_leader(later),
            None,
            "expired by the observed-time rule"
        );
        assert!(matches!(s.next_step(later), Step::Wait(_)), "no acquire");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_older_than_what_was_seen_is_not_newer() {
        let now = Instant::now();
        let mut s = Schedule::new(&settings(), now);
        s.observe(held_by("other", 7), now);
        assert!(!s.is_newer(Some("6")));
        assert!(!s.is_newer(Some("7")));
        assert!(s.is_newer(Some("8")));
    }

    #[tokio::test(start_paused = true)]
    async fn polls_that_find_the_record_unchanged_do_not_postpone_the_takeover() {
        let now = Instant::now();
        let mut s = Schedule::new(&settings(), now);
        s.observe(held_by("gone", 5), now);
        assert!(
            !s.is_stale(Some("5")),
            "the same version again is not stale"
        );
        assert!(s.is_stale(Some("4")));
        for _ in 0..8 {
            advance(RETRY).await;
            let now = Instant::now();
            s.read_answered(now);
            s.observe(held_by("gone", 5), now);
        }
        assert_eq!(s.next_step(Instant::now()), Step::Write(Verdict::Acquire));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shortened_lease_shortens_the_term_and_renews_at_once() {
        let mut s = leading();
        let observed = s.lease().cloned().unwrap();
        let mut edited = observed.clone();
        edited.spec.as_mut().unwrap().lease_duration_seconds = Some(1);
        edited.metadata.resource_version = Some("2".into());
        let now = Instant::now();
        let seen = s.observe(edited, now);
        assert!(seen.stop.is_none());
        assert_eq!(
            seen.shortened,
            Some(Shortened {
                recorded: Some(Duration::from_secs(1))
            })
        );
        assert_eq!(s.term.as_ref().unwrap().ends_at, now + DEADLINE / 2);
        assert_eq!(s.next_step(now), Step::Write(Verdict::Renew));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_after_the_renew_deadline_starts_no_term() {
        let now = Instant::now();
        let mut s = Schedule::new(&settings(), now);
        s.observe(held_by("me", 1), now);
        advance(DEADLINE).await;
        assert!(
            s.start_term(now, Instant::now(), mpsc::channel(1).1)
                .is_none()
        );
    }
}
