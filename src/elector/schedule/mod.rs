//! What an elector knows and when it acts next: the view of the Lease, the
//! term it holds, the records it wrote, the health of its watch, and the
//! instants it waits for.
//!
//! No I/O and no clock reading here: every method takes `now`, the runner
//! reports what its requests answered, and [`Schedule::next_step`] says
//! what to do. The verdicts come from `record`; this is where they are
//! scheduled. Tested under paused time below.

mod lead;
mod observe;
mod term;

pub(in crate::elector) use lead::{Started, Write};
pub(crate) use term::{ActiveTerm, Observation, Shortened, Stop};

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::Instant;

use crate::config::Settings;
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

/// What the runner tells the schedule when it changes: the schedule holds
/// the value from then on, and no one else does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::elector) enum Input {
    /// The campaign was switched on or off (a sharded elector's, at run
    /// time).
    Campaign(bool),
    /// This elector became, or stopped being, a declared candidate of
    /// coordinated election (its `LeaseCandidate` registered or withdrawn).
    Coordinated(bool),
    /// This elector's place in its line changed: whether it is first among
    /// the candidates it knows of, not counting the successor the Lease
    /// names (alone, it always is).
    FirstInLine(bool),
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
    lease_duration_secs: i32,
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
    request_timeout: Duration,
}

/// Thirteen fields: what one elector knows of its Lease, its terms and its
/// place, each read by the decisions of `next_step`; the timings, the
/// watch's health and the place are grouped already.
#[derive(Debug)]
pub(super) struct Schedule {
    timing: Timing,
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
    /// The health of the watch, and when to poll while it is not trusted.
    watch: WatchHealth,
    /// No write (acquire or create) before this, after a failed one.
    write_after: Instant,
    /// No create before this, after a create conflicted (someone else
    /// created the Lease): a lagging cache may still say it is missing.
    create_after: Instant,
    /// When this elector first found the Lease free to take, since it last
    /// saw it held by another (for the handover metric).
    free_since: Option<Instant>,
    /// Where this elector stands among the other candidates.
    place: Place,
}

/// Whether the watch is trusted to report changes, and when to poll
/// while it is not.
#[derive(Debug)]
struct WatchHealth {
    /// Whether the watch is connected.
    connected: bool,
    /// When it last delivered something (or, before that, started).
    progress: Instant,
    /// Whether it was distrusted at the last look.
    distrusted: bool,
    /// When a follower polls next while the watch is not trusted.
    poll_at: Instant,
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
                lease_duration_secs: settings.lease_duration_secs,
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
            watch: WatchHealth {
                connected: false,
                progress: now,
                distrusted: false,
                poll_at: now,
            },
            write_after: now,
            create_after: now,
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
    fn remember(&mut self, record: TermRecord) {
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

    /// Whether what the Lease holds is unknown until it is read again.
    pub(super) fn view_unknown(&self) -> bool {
        matches!(self.view, View::Unknown)
    }

    /// The term this elector leads, if it leads.
    pub(super) fn term(&self) -> Option<&ActiveTerm> {
        self.term.as_ref()
    }

    /// The term that ended at shutdown is renewed while its work drains.
    pub(super) fn drain(&mut self, active: ActiveTerm) {
        self.draining = Some(active);
    }

    /// The term draining, if its drain has not ended.
    pub(super) fn draining(&mut self) -> Option<&mut ActiveTerm> {
        self.draining.as_mut()
    }

    /// Ends the drain: the term drained, if any.
    pub(super) fn end_drain(&mut self) -> Option<ActiveTerm> {
        self.draining.take()
    }

    /// Takes in what changed around the schedule.
    pub(super) fn input(&mut self, input: Input) {
        match input {
            Input::Campaign(campaign) => self.timing.campaign = campaign,
            Input::Coordinated(coordinated) => self.place.coordinated = coordinated,
            Input::FirstInLine(first) => self.place.first_in_line = first,
        }
    }

    /// Whether this elector is a declared candidate of coordinated election.
    pub(super) fn coordinated(&self) -> bool {
        self.place.coordinated
    }

    /// Whether this elector is first in line, as last told.
    pub(super) fn first_in_line(&self) -> bool {
        self.place.first_in_line
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
            _ if polling && now >= self.watch.poll_at => return Step::Read,
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
            (None, true) => wake.min(self.watch.poll_at),
            // A trusted watch of a held Lease must show progress by then.
            (None, false) if self.leader().is_some() => {
                wake.min(record::after(self.watch.progress, self.silence()))
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
}

#[cfg(test)]
mod tests;
