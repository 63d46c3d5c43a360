//! What an elector knows and when it acts next: the view of the Lease, the
//! term it holds, the records it wrote, the health of its watch, and the
//! instants it waits for.
//!
//! No I/O and no clock reading here: every method takes `now`, the runner
//! reports what its requests answered, and [`Schedule::next_step`] says
//! what to do. The verdicts come from `record`; this is where they are
//! scheduled. Tested under paused time below.

mod term;

pub(crate) use term::{ActiveTerm, Observation, Shortened, Stop};

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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

/// What to do next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    Read,
    Write(Verdict),
    Wait(Instant),
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
    /// No create before this, after a create conflicted (someone else
    /// created the Lease): a lagging cache may still say it is missing.
    create_after: Instant,
    /// When a follower polls next while the watch is not trusted.
    poll_at: Instant,
    /// When this elector first found the Lease free to take, since it last
    /// saw it held by another (for the handover metric).
    pub(super) free_since: Option<Instant>,
    /// Where this elector stands among the other candidates.
    place: Place,
}

/// Where a candidate stands among the others: in its line, after a
/// handover, and in coordinated election.
#[derive(Debug)]
struct Place {
    /// Whether this elector is first in line among the candidates it
    /// knows of (alone, it always is): only the first writes at once when
    /// the Lease comes free without naming a successor.
    first_in_line: bool,
    /// The `leaseTransitions` of the record this elector handed over: while
    /// the Lease is free with that record, it writes last.
    aside: Option<i32>,
    /// Whether this elector is a declared candidate of coordinated
    /// election: where the Lease then carries a `strategy`, it takes the
    /// Lease only when the controller names it the holder.
    coordinated: bool,
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
            create_after: now,
            poll_at: now,
            free_since: None,
            place: Place {
                first_in_line: true,
                aside: None,
                coordinated: false,
            },
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

    /// Switches campaigning on or off (a sharded elector's, at run time).
    pub(super) fn set_campaign(&mut self, campaign: bool) {
        self.timing.campaign = campaign;
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

    /// The successor the observed Lease names, if the name applies to the
    /// record it carries.
    pub(super) fn named_successor(&self) -> Option<&str> {
        match &self.view {
            View::Present(observed) => crate::successor::named(&observed.lease),
            _ => None,
        }
    }

    /// This elector is about to hand over the Lease it holds: until someone
    /// else takes it, it writes after every other candidate.
    pub(super) fn step_aside(&mut self) {
        self.place.aside = self
            .lease()
            .map(|lease| record::transitions(record::spec_of(lease)));
    }

    pub(super) fn set_coordinated(&mut self, coordinated: bool) {
        self.place.coordinated = coordinated;
    }

    /// The observed Lease, if coordinated election runs it for this
    /// elector (a declared candidate, a Lease with a `strategy`).
    fn coordinated_lease(&self) -> Option<&Observed> {
        match &self.view {
            View::Present(observed)
                if self.place.coordinated
                    && record::coordinated(record::spec_of(&observed.lease)) =>
            {
                Some(observed)
            }
            _ => None,
        }
    }

    /// The candidate the coordinating controller prefers over this elector,
    /// in a Lease that coordinated election runs for it.
    fn preferred_over_me(
        &self,
        spec: &k8s_openapi::api::coordination::v1::LeaseSpec,
    ) -> Option<String> {
        (self.place.coordinated && record::coordinated(spec))
            .then(|| record::preferred_other(spec, self.me()).map(str::to_owned))
            .flatten()
    }

    /// The `preferredHolder` of the observed Lease, if any.
    pub(super) fn preferred(&self) -> Option<&str> {
        self.lease()
            .and_then(|lease| record::spec_of(lease).preferred_holder.as_deref())
            .filter(|p| !p.is_empty())
    }

    /// Whether this elector takes, at `now`, a Lease that coordinated
    /// election runs for it and that names it (see `record::elected`): the
    /// controller's pick at once, a record it wrote at once, another
    /// instance's term (a twin's) once it expired.
    pub(super) fn elected(&self, now: Instant) -> bool {
        self.term.is_none()
            && self
                .coordinated_lease()
                .is_some_and(|observed| record::elected(observed, self.me(), self.own(), now))
    }

    pub(super) fn set_first_in_line(&mut self, first: bool) {
        self.place.first_in_line = first;
    }

    /// The earliest this candidate writes to take the Lease: when it came
    /// free (released, expired, missing), plus its place in line (see
    /// `successor::deferral`). A Lease that carries our own record is ours
    /// to take at once.
    fn take_at(&self, verdict: &Verdict) -> Instant {
        let not_before = if *verdict == Verdict::Create {
            self.write_after.max(self.create_after)
        } else {
            self.write_after
        };
        let mut aside = false;
        let came_free = match &self.view {
            View::Present(observed) => match observed.holder() {
                None => {
                    aside = self.place.aside
                        == Some(record::transitions(record::spec_of(&observed.lease)));
                    observed.observed_at
                }
                Some(holder) if holder == self.me() => return not_before,
                Some(_) => observed.expires_at(),
            },
            View::Missing { since } => *since,
            View::Unknown => return not_before,
        };
        let wait = crate::successor::deferral(
            self.named_successor(),
            self.me(),
            self.place.first_in_line,
            aside,
            self.timing.retry_period,
        );
        not_before.max(record::after(came_free, wait))
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
    /// but shows no progress): polling starts at once, and the runner
    /// checks with its first read whether the watch missed a change.
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
        if self.elected(now) {
            // The controller wrote our identity (or a twin's term naming
            // it expired): the acquire starts the term (from when it is
            // sent, as any other). A twin's live term is waited out below,
            // as `judge` says.
            return self.not_before(now, self.write_after, Step::Write(Verdict::Acquire));
        }
        let controller_decides = self.term.is_none() && self.coordinated_lease().is_some();
        let wake = match (&verdict, &self.term) {
            (Verdict::Renew, Some(active)) => {
                let at = active.renew_at.min(active.ends_at);
                return self.not_before(now, at, Step::Write(verdict));
            }
            (Verdict::Wait { expires_at, .. }, _) => *expires_at,
            // An observer never writes, nor does a candidate of coordinated
            // election: it waits for the next change.
            (Verdict::Create | Verdict::Acquire, _)
                if !self.timing.campaign || controller_decides =>
            {
                record::after(now, Duration::from_secs(86_400))
            }
            (Verdict::Create | Verdict::Acquire, _) => {
                return self.not_before(now, self.take_at(&verdict), Step::Write(verdict));
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

    /// The newest `resourceVersion` seen, by the watch or a read.
    pub(super) fn newest(&self) -> Option<&str> {
        self.newest.as_deref()
    }

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
    pub(super) fn observe(&mut self, mut lease: Lease, now: Instant) -> Observation {
        // Never read, and most of a cached Lease (serde_json maps, about
        // 1.8 KB a copy): dropped. A PUT without them keeps the server's.
        lease.metadata.managed_fields = None;
        self.saw_version(lease.metadata.resource_version.as_deref());
        // The last Lease seen, even across a failed write: the observation
        // time of an unchanged record must not move.
        let observed = Box::new(Observed::update(self.last_seen.as_deref(), lease, now));
        let record = observed.term_record();
        let recorded = record::lease_duration(record::spec_of(&observed.lease));
        let preferred = self.preferred_over_me(record::spec_of(&observed.lease));
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
        if let Some(preferred) = preferred {
            return Observation {
                stop: Some(Stop::Preferred(preferred)),
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
            self.create_after = now + self.timing.retry_period;
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
        drained: crate::shared::Drained,
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
mod tests;
