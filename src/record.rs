//! The Lease record as an elector reads it, and the pure arithmetic on it.
//!
//! Nothing here does I/O or reads a clock: every function takes "now" and the
//! observed record and returns a decision or the spec to write. The loop in
//! `elector` and the [`LeaseLock`](crate::lock::LeaseLock) do the talking.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use tokio::time::Instant;

use crate::error::LeaseOperation;

/// A Lease as this replica observed it, and when.
///
/// `observed_at` is the local monotonic instant at which the record (the
/// spec) was first seen in its current form. Expiry is judged from it, never
/// from the remote `renewTime`, which makes clock skew between replicas
/// harmless (client-go's `observedTime`).
#[derive(Clone, Debug)]
pub(crate) struct Observed {
    /// The object as read, with the `resourceVersion` the next write is based on.
    pub(crate) lease: Lease,
    /// When the current spec was first observed, on the local monotonic clock.
    pub(crate) observed_at: Instant,
}

impl Observed {
    /// Holder of the Lease; `None` when the field is missing, null or empty.
    pub(crate) fn holder(&self) -> Option<&str> {
        holder(spec_of(&self.lease))
    }

    /// The instant after which a holder other than us may be displaced.
    pub(crate) fn expires_at(&self) -> Instant {
        after(
            self.observed_at,
            lease_duration(spec_of(&self.lease)).unwrap_or(Duration::ZERO),
        )
    }

    /// Which term of which holder this record belongs to.
    pub(crate) fn term_record(&self) -> TermRecord {
        TermRecord::of(spec_of(&self.lease))
    }

    /// Folds a newer read of the same Lease into this observation.
    ///
    /// `observed_at` moves only when the spec changed: a holder that stops
    /// renewing leaves the spec as it was, so its Lease expires even while
    /// other parts of the object (labels, annotations) keep changing.
    pub(crate) fn update(previous: Option<&Self>, lease: Lease, now: Instant) -> Self {
        let observed_at = match previous {
            Some(prev) if prev.lease.spec == lease.spec => prev.observed_at,
            _ => now,
        };
        Self { lease, observed_at }
    }
}

/// The spec of a Lease, or an empty one when the object has none.
pub(crate) fn spec_of(lease: &Lease) -> &LeaseSpec {
    static EMPTY: LeaseSpec = LeaseSpec {
        acquire_time: None,
        holder_identity: None,
        lease_duration_seconds: None,
        lease_transitions: None,
        preferred_holder: None,
        renew_time: None,
        strategy: None,
    };
    lease.spec.as_ref().unwrap_or(&EMPTY)
}

/// Holder of a spec; missing, null and empty all mean "free".
pub(crate) fn holder(spec: &LeaseSpec) -> Option<&str> {
    spec.holder_identity.as_deref().filter(|h| !h.is_empty())
}

/// `leaseDurationSeconds`; `None` when missing, zero or negative, which the
/// reference treats as "expired as soon as observed".
pub(crate) fn lease_duration(spec: &LeaseSpec) -> Option<Duration> {
    spec.lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .filter(|&s| s > 0)
        .map(Duration::from_secs)
}

/// `leaseTransitions`, with missing or negative values read as 0.
pub(crate) fn transitions(spec: &LeaseSpec) -> i32 {
    spec.lease_transitions.unwrap_or(0).max(0)
}

/// `now + d`, saturating far in the future instead of overflowing: an
/// absurd duration (`Duration::MAX`) must not panic the loop.
pub(crate) fn after(now: Instant, d: Duration) -> Instant {
    /// About thirty years: later than anything an elector waits for.
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    now.checked_add(d.min(FAR))
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

/// The next instant after `now` at which one of the held records in
/// `observed` expires: a table of Leases must be judged again then, with no
/// event to wake for.
pub(crate) fn next_expiry<'a>(
    observed: impl IntoIterator<Item = &'a Observed>,
    now: Instant,
) -> Option<Instant> {
    observed
        .into_iter()
        .filter(|observed| observed.holder().is_some())
        .map(Observed::expires_at)
        .filter(|at| *at > now)
        .min()
}

/// What tells one term of a holder from another: the holder alone does not,
/// since two instances can share an identity (a `StatefulSet` pod and its
/// replacement). Every acquisition writes a new `acquireTime` and raises
/// `leaseTransitions`; a renew keeps both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TermRecord {
    pub(crate) holder: Option<String>,
    pub(crate) transitions: i32,
    pub(crate) acquire_time: Option<Timestamp>,
}

impl TermRecord {
    pub(crate) fn of(spec: &LeaseSpec) -> Self {
        Self {
            holder: holder(spec).map(str::to_owned),
            transitions: transitions(spec),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
        }
    }
}

/// What this replica knows about the records it wrote itself, for judging a
/// Lease that names its identity.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Own<'a> {
    /// The record of the term this replica leads now, if it leads.
    pub(crate) leading: Option<&'a TermRecord>,
    /// Records this replica wrote (its last term, an acquire whose answer it
    /// never saw): a Lease that carries one of them is this replica's own.
    pub(crate) written: &'a [TermRecord],
    /// Take a live Lease that names this identity but none of its records at
    /// once (client-go's behaviour) instead of waiting it out.
    pub(crate) adopt: bool,
}

impl Own<'_> {
    fn wrote(&self, record: &TermRecord) -> bool {
        self.leading == Some(record) || self.written.contains(record)
    }
}

// === Decisions ===

/// What a candidate or leader should do about the Lease it observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// There is no Lease: create it (a POST).
    Create,
    /// The Lease is free, expired, or names us while we are not leading:
    /// take it as a new term (a conditional PUT).
    Acquire,
    /// We lead and the Lease still names us: renew it (a conditional PUT).
    Renew,
    /// Another holder has it until `expires_at` (local monotonic clock).
    Wait {
        /// The holder as observed.
        holder: String,
        /// When the holder may be displaced unless the record changes.
        expires_at: Instant,
    },
}

/// Judges an observation at `now`.
///
/// A Lease that names us is renewed only while it carries the record of the
/// term we lead. One that names us with a record we wrote ourselves (a term
/// that ended, an acquire whose answer was lost) is ours to take at once, as
/// a new term. One that names us with a record we never wrote belongs to
/// another instance with our identity: it is waited out like any other
/// holder's, unless `own.adopt` says to take it at once.
pub(crate) fn judge(observed: Option<&Observed>, me: &str, own: Own<'_>, now: Instant) -> Verdict {
    let Some(observed) = observed else {
        return Verdict::Create;
    };
    let Some(holder) = observed.holder() else {
        return Verdict::Acquire;
    };
    if holder == me {
        let record = observed.term_record();
        if own.leading == Some(&record) {
            return Verdict::Renew;
        }
        if own.leading.is_none() && (own.adopt || own.wrote(&record)) {
            return Verdict::Acquire;
        }
    }
    let expires_at = observed.expires_at();
    if now >= expires_at {
        Verdict::Acquire
    } else {
        Verdict::Wait {
            holder: holder.to_owned(),
            expires_at,
        }
    }
}

/// Judges a missing Lease. `last` is the Lease as observed before it
/// vanished, if it was, and `missing_since` when its absence was first
/// observed: a deletion does not end the last holder's term early. The
/// deletion counts as a change of the record, so its holder's lease runs
/// from the moment the deletion was seen (and at least as long as before):
/// the deleted holder, whose last renew was sent before the deletion, stops
/// at its renew deadline before then, even if this replica had missed its
/// latest renews.
pub(crate) fn judge_missing(
    last: Option<&Observed>,
    missing_since: Option<Instant>,
    me: &str,
    own: Own<'_>,
    now: Instant,
) -> Verdict {
    let held = last.and_then(|l| {
        let duration = lease_duration(spec_of(&l.lease)).unwrap_or(Duration::ZERO);
        let from_deletion = missing_since.map_or(l.expires_at(), |since| after(since, duration));
        let ours = l.holder() == Some(me) && own.wrote(&l.term_record());
        Some((l.holder()?, ours, l.expires_at().max(from_deletion)))
    });
    match held {
        Some((holder, false, expires_at)) if now < expires_at => Verdict::Wait {
            holder: holder.to_owned(),
            expires_at,
        },
        _ => Verdict::Create,
    }
}

/// When a term ends, counted from the moment its last successful renew (or
/// acquire) was *sent*: followers count from a later observation, so the
/// leader stops first.
///
/// The term lasts `renew_deadline`, shortened in proportion when the Lease
/// records a shorter duration than ours (an outside writer edited
/// `leaseDurationSeconds`): followers count from what the Lease records, so
/// a leader never counts on more. A record with no valid duration ends the
/// term at once (followers treat it as expired once observed).
pub(crate) fn term_end(
    renewed_sent: Instant,
    renew_deadline: Duration,
    lease_duration: Duration,
    recorded: Option<Duration>,
) -> Instant {
    let Some(recorded) = recorded else {
        return renewed_sent;
    };
    let own = lease_duration.max(Duration::from_nanos(1));
    if recorded >= own {
        return after(renewed_sent, renew_deadline);
    }
    // recorded × renew_deadline / lease_duration, in nanoseconds (exact).
    let scaled = recorded.as_nanos() * renew_deadline.as_nanos() / own.as_nanos();
    let scaled = Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX));
    after(renewed_sent, scaled.min(renew_deadline))
}

/// Whether a leader whose term is `term` still holds a Lease that carries
/// `record`: the same holder *and* the same term (transitions, acquire time),
/// not the holder name alone.
pub(crate) fn still_holds(record: &TermRecord, term: &TermRecord) -> bool {
    record.holder.is_some() && record == term
}

/// Whether a write changed the record: the server answers a write that
/// leaves the object as it was (the same spec) with the same
/// `resourceVersion` and sends no watch event, so followers did not observe
/// it, and it must not extend a term.
pub(crate) fn write_changed(before: Option<&str>, after: Option<&str>) -> bool {
    match (before, after) {
        (_, None) => false,
        (Some(b), Some(a)) => a != b && is_newer(Some(a), Some(b)),
        (None, Some(_)) => true,
    }
}

/// The fencing token of a term: the `resourceVersion` of the write that
/// started it. kube-apiserver takes resourceVersions from etcd's revision,
/// which grows with every write to any object, and a re-created Lease gets a
/// newer one than the deleted Lease ever had: so a later term of any leader
/// has a larger token, whoever wrote it, across deletions. `None` when the
/// server's resourceVersions are not integers.
pub(crate) fn fencing_token(lease: &Lease) -> Option<u64> {
    lease.metadata.resource_version.as_deref()?.parse().ok()
}

/// Whether a watch can be trusted to report changes of the Lease.
///
/// Connected is not enough: a watch that delivers nothing while the Lease is
/// held (a held Lease changes at every renew, each retry period) has stalled,
/// and one that errors right after connecting never delivers at all. A watch
/// is trusted while it is connected and has delivered an event within
/// `silence` of `now`, or while the Lease is not held (then no events are
/// due). `progress` is when the watch last delivered an event (or, before
/// the first, when watching began).
pub(crate) fn watch_trusted(
    connected: bool,
    progress: Instant,
    held: bool,
    silence: Duration,
    now: Instant,
) -> bool {
    connected && (!held || now < after(progress, silence))
}

/// How long a watch may stay silent while the Lease is held before it is
/// distrusted: one renew interval and a margin, a fifth of it but at least
/// [`SILENCE_FLOOR`].
///
/// The holder renews every `retry_period`, so a healthy watch delivers an
/// event about every `retry_period`, however late each one is (a watch
/// that lags steadily keeps the interval). The margin is for a healthy but
/// loaded watch: a renew sent late by a busy leader, or a round trip or a
/// delivery that takes longer than the one before, still arrives in time
/// if the difference stays within it (a fifth: the same 1.2 as client-go's
/// jitter factor; the floor: a busy node's scheduling delays and an API
/// server's slow writes, which do not shrink with the retry period). An
/// event later than that costs one read, and the watch is trusted again
/// at its next event. With the default 2 s retry period a silent watch is
/// distrusted after 2.4 s, so a release is found within 1.25 retry periods
/// on a quick server; below 1 s the floor dominates (250 ms: 450 ms).
pub(crate) fn watch_silence(retry_period: Duration) -> Duration {
    retry_period.saturating_add((retry_period / 5).max(SILENCE_FLOOR))
}

/// The least margin a watch gets past one renew interval (see
/// [`watch_silence`]).
pub(crate) const SILENCE_FLOOR: Duration = Duration::from_millis(200);

/// How long a term of a polled `LeaseLock` is valid after the write that
/// took or renewed it was sent: two thirds of the TTL (client-go's ratio of
/// renew deadline to lease duration), so that it ends before any other lock
/// may count the TTL as run out from its own, later observation.
pub(crate) fn lock_validity(ttl: Duration) -> Duration {
    ttl / 3 * 2
}

/// How long one request may take: two attempts fit within the time a leader
/// has for a renew (the renew deadline less the retry period it waited), so
/// one hung request does not cost the term.
pub(crate) fn attempt_timeout(renew_deadline: Duration, retry_period: Duration) -> Duration {
    (renew_deadline.saturating_sub(retry_period) / 2).max(Duration::from_millis(1))
}

// === Records to write ===

/// The spec that takes a Lease for a new term (or creates it, when `previous`
/// is `None`): `leaseTransitions` is raised by one for an existing Lease, and
/// `acquireTime` = `renewTime` = now. Fields this crate does not manage
/// (`strategy`, `preferredHolder`) are kept.
pub(crate) fn acquire(
    previous: Option<&LeaseSpec>,
    me: &str,
    lease_duration_secs: i32,
    now: Timestamp,
) -> LeaseSpec {
    let now = micros(now);
    let transitions = previous.map_or(0, |prev| transitions(prev).saturating_add(1));
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(lease_duration_secs),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..previous.cloned().unwrap_or_default()
    }
}

/// The write a verdict calls for, and the spec it writes, computed from the
/// record the verdict judged (`previous`: `None` for a missing Lease): a
/// create or acquire starts a term, a renew keeps it. `None` for a wait.
pub(crate) fn write_for(
    verdict: &Verdict,
    previous: Option<&LeaseSpec>,
    me: &str,
    lease_duration_secs: i32,
    now: Timestamp,
) -> Option<(LeaseOperation, LeaseSpec)> {
    match (verdict, previous) {
        (Verdict::Wait { .. }, _) => None,
        (Verdict::Renew, Some(previous)) => Some((
            LeaseOperation::Renew,
            renew(previous, me, lease_duration_secs, now),
        )),
        (Verdict::Create, _) | (Verdict::Acquire | Verdict::Renew, None) => Some((
            LeaseOperation::Create,
            acquire(None, me, lease_duration_secs, now),
        )),
        (Verdict::Acquire, Some(previous)) => Some((
            LeaseOperation::Acquire,
            acquire(Some(previous), me, lease_duration_secs, now),
        )),
    }
}

/// The spec that renews our own term: `renewTime` = now, `acquireTime` and
/// `leaseTransitions` kept.
pub(crate) fn renew(
    previous: &LeaseSpec,
    me: &str,
    lease_duration_secs: i32,
    now: Timestamp,
) -> LeaseSpec {
    let now = micros(now);
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(lease_duration_secs),
        acquire_time: previous.acquire_time.clone().or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(later_than(previous.renew_time.as_ref(), now))),
        lease_transitions: Some(transitions(previous)),
        ..previous.clone()
    }
}

/// `t` cut to whole microseconds, as a `MicroTime` is stored: a record this
/// replica wrote then compares equal to the record it reads back.
fn micros(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

/// `now`, or a second after `previous` if `now` is not later: a renew
/// always changes the record, so the server stores it (a new
/// `resourceVersion`) and followers observe it, even when the wall clock
/// stands still or steps back. A whole second, because client-go compares
/// records at one-second resolution: a smaller step would be invisible to a
/// client-go follower.
fn later_than(previous: Option<&MicroTime>, now: Timestamp) -> Timestamp {
    match previous {
        Some(MicroTime(prev)) if *prev >= now => prev
            .checked_add(jiff::SignedDuration::from_secs(1))
            .unwrap_or(now),
        _ => now,
    }
}

/// The spec that releases a Lease, as client-go writes it: `holderIdentity:
/// ""` (not null: some peers fail on a missing holder), `leaseDurationSeconds:
/// 1`, `acquireTime` = `renewTime` = now, `leaseTransitions` kept.
pub(crate) fn release(previous: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    let now = micros(now);
    LeaseSpec {
        holder_identity: Some(String::new()),
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions(previous)),
        ..previous.clone()
    }
}

// === Coordinated election ===

/// Whether the Lease is run by coordinated election: it carries a
/// `strategy` (kube-apiserver's controller sets it; the API server drops
/// it while the `CoordinatedLeaderElection` gate is off).
pub(crate) fn coordinated(spec: &LeaseSpec) -> bool {
    spec.strategy.as_deref().is_some_and(|s| !s.is_empty())
}

/// Whether the coordinating controller wrote this record for its holder:
/// it names a holder and carries no `acquireTime`. kube-apiserver's
/// controller writes none, neither when it creates the Lease for the
/// candidate it elects nor when it resets an expired one for a new holder
/// (`reconcileElectionStep`), while every elector's acquire (this crate's
/// and client-go's) writes one.
pub(crate) fn controller_pick(spec: &LeaseSpec) -> bool {
    holder(spec).is_some() && spec.acquire_time.is_none()
}

/// Whether a declared candidate of coordinated election that does not lead
/// takes a Lease the controller runs, at `now`. Only a Lease that names it,
/// and then:
/// - the controller's pick ([`controller_pick`]) at once: its term starts
///   with this acquire (two instances of one identity both see the pick;
///   the acquire is conditional, so one wins, and the other then sees the
///   winner's record);
/// - any other record as [`judge`] says of a Lease naming us: a record this
///   instance wrote at once (or any, adopting); another instance's term (a
///   twin, with an `acquireTime` we did not write) only once it expired by
///   the rules of the plain election. Expired, it must be taken: the
///   controller does not re-elect a Lease whose holder already is the
///   candidate it would pick, so nobody else will.
pub(crate) fn elected(observed: &Observed, me: &str, own: Own<'_>, now: Instant) -> bool {
    own.leading.is_none()
        && observed.holder() == Some(me)
        && (controller_pick(spec_of(&observed.lease))
            || judge(Some(observed), me, own, now) == Verdict::Acquire)
}

/// The candidate the coordinating controller prefers over the holder, if
/// it names one other than `me`: the holder's cue to hand the Lease over.
pub(crate) fn preferred_other<'a>(spec: &'a LeaseSpec, me: &str) -> Option<&'a str> {
    spec.preferred_holder
        .as_deref()
        .filter(|p| !p.is_empty() && *p != me)
}

// === Naming a successor ===

/// The annotation in which a releasing leader names who takes over.
///
/// An annotation, not `spec.preferredHolder`: kube-apiserver drops
/// `preferredHolder` (and `strategy`) while its `CoordinatedLeaderElection`
/// gate is off, rejects it without `strategy` while the gate is on, and
/// client-go's writes rebuild the spec; an annotation survives all three.
/// Its value is `<leaseTransitions>/<identity>`: the name applies only to
/// the record it was written with, so a later term (any acquire raises
/// `leaseTransitions`, client-go's too) makes a stale name inert even if a
/// peer carries the annotation along.
pub const SUCCESSOR_ANNOTATION: &str = "kube-elector.io/successor";

/// The value of [`SUCCESSOR_ANNOTATION`] naming `identity` on a release
/// that keeps `spec`'s `leaseTransitions`.
pub(crate) fn successor_value(spec: &LeaseSpec, identity: &str) -> String {
    format!("{}/{identity}", transitions(spec))
}

/// Who the Lease names as its successor, if the name was written with the
/// record it carries now (and the Lease is free to take: a held Lease has
/// no successor yet).
pub(crate) fn successor(lease: &Lease) -> Option<&str> {
    let value = lease
        .metadata
        .annotations
        .as_ref()?
        .get(SUCCESSOR_ANNOTATION)?;
    let (recorded, identity) = value.split_once('/')?;
    let spec = spec_of(lease);
    (recorded.parse::<i32>().ok()? == transitions(spec) && !identity.is_empty()).then_some(identity)
}

/// Sets the successor annotation of `metadata` to `value`, or removes it.
pub(crate) fn set_successor(metadata: &mut ObjectMeta, value: Option<String>) {
    match value {
        Some(value) => {
            metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(SUCCESSOR_ANNOTATION.to_owned(), value);
        }
        None => {
            if let Some(annotations) = metadata.annotations.as_mut() {
                annotations.remove(SUCCESSOR_ANNOTATION);
                if annotations.is_empty() {
                    metadata.annotations = None;
                }
            }
        }
    }
}

/// How long a candidate waits, once the Lease is free to take (released,
/// expired or missing), before it writes: the named successor at once; when
/// none is named, the first candidate in line at once; everyone else a
/// bound (`grace`) later, and when a name is out, the first in line after
/// `grace` and the rest after twice that. So one release or expiry costs
/// one write per process whatever the number of candidates in it, and a
/// successor that never comes is replaced after `grace` (by one candidate,
/// then, if it does not come either, by the rest: no one waits forever).
/// A candidate that handed the Lease over (`aside`) writes last, three
/// bounds later, whatever the release named: it takes its Lease back only
/// if no one else did.
/// Deferring only delays a write; every write stays conditional, so the
/// order of the line decides nothing about safety.
pub(crate) fn deferral(
    named: Option<&str>,
    me: &str,
    first_in_line: bool,
    aside: bool,
    grace: Duration,
) -> Duration {
    if aside {
        return grace.saturating_mul(3);
    }
    match named {
        Some(named) if named == me => Duration::ZERO,
        Some(_) if first_in_line => grace,
        Some(_) => grace.saturating_mul(2),
        None if first_in_line => Duration::ZERO,
        None => grace,
    }
}

/// Whether resourceVersion `a` is newer than `b`.
///
/// resourceVersions are opaque to clients, but every kube-apiserver (and the
/// embedded one) hands out increasing integers for one object; the watch and
/// our own writes can deliver them out of order, and an older one must never
/// replace a newer observation. Unparseable versions count as newer, so an
/// unusual server degrades to "last read wins" rather than to "never update".
pub(crate) fn is_newer(a: Option<&str>, b: Option<&str>) -> bool {
    match (
        a.and_then(|a| a.parse::<u64>().ok()),
        b.and_then(|b| b.parse::<u64>().ok()),
    ) {
        (Some(a), Some(b)) => a > b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, duration: Option<i32>, rv: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("l".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(Into::into),
                lease_duration_seconds: duration,
                ..LeaseSpec::default()
            }),
        }
    }

    fn observed(holder: Option<&str>, duration: Option<i32>, at: Instant) -> Observed {
        Observed::update(None, lease(holder, duration, "1"), at)
    }

    fn released(transitions: i32, annotation: Option<&str>) -> Lease {
        let mut lease = lease(Some(""), Some(1), "7");
        lease.spec.as_mut().unwrap().lease_transitions = Some(transitions);
        if let Some(value) = annotation {
            set_successor(&mut lease.metadata, Some(value.to_owned()));
        }
        lease
    }

    #[test]
    fn a_successor_name_applies_only_to_the_record_it_was_written_with() {
        let spec = spec_of(&released(4, None)).clone();
        let value = successor_value(&spec, "next/one");
        assert_eq!(value, "4/next/one");
        assert_eq!(successor(&released(4, Some(&value))), Some("next/one"));
        // A later term (an acquire raised leaseTransitions) makes it inert,
        // even when a peer carried the annotation along.
        assert_eq!(successor(&released(5, Some(&value))), None);
        for garbage in ["", "4", "4/", "x/next", "/next", "-1/next"] {
            assert_eq!(successor(&released(4, Some(garbage))), None, "{garbage:?}");
        }
        assert_eq!(successor(&released(4, None)), None);
    }

    #[test]
    fn setting_and_clearing_the_successor_keeps_other_annotations() {
        let mut meta = ObjectMeta::default();
        set_successor(&mut meta, None);
        assert_eq!(meta.annotations, None);
        meta.annotations = Some([("other".to_owned(), "x".to_owned())].into());
        set_successor(&mut meta, Some("1/a".into()));
        assert_eq!(meta.annotations.as_ref().unwrap().len(), 2);
        set_successor(&mut meta, None);
        assert_eq!(
            meta.annotations,
            Some([("other".to_owned(), "x".to_owned())].into())
        );
        meta.annotations = Some([(SUCCESSOR_ANNOTATION.to_owned(), "1/a".into())].into());
        set_successor(&mut meta, None);
        assert_eq!(meta.annotations, None, "no empty map is left behind");
    }

    #[test]
    fn only_the_named_or_else_the_first_in_line_writes_at_once() {
        let grace = Duration::from_millis(500);
        let d = |named, first| deferral(named, "me", first, false, grace);
        assert_eq!(d(Some("me"), false), Duration::ZERO);
        assert_eq!(d(Some("me"), true), Duration::ZERO);
        assert_eq!(d(Some("other"), true), grace);
        assert_eq!(d(Some("other"), false), grace * 2);
        assert_eq!(d(None, true), Duration::ZERO);
        assert_eq!(d(None, false), grace);
        assert_eq!(
            deferral(Some("other"), "me", false, false, Duration::MAX),
            Duration::MAX,
            "saturates"
        );
    }

    #[test]
    fn a_candidate_that_handed_the_lease_over_writes_after_everyone_else() {
        let grace = Duration::from_millis(500);
        let others = [
            deferral(Some("next"), "me", true, false, grace),
            deferral(Some("next"), "me", false, false, grace),
            deferral(None, "me", true, false, grace),
            deferral(None, "me", false, false, grace),
        ];
        for named in [None, Some("next"), Some("me")] {
            for first in [true, false] {
                let aside = deferral(named, "me", first, true, grace);
                assert!(
                    others.iter().all(|other| aside > *other),
                    "{aside:?} after {others:?}"
                );
            }
        }
    }

    #[test]
    fn missing_lease_is_created() {
        assert_eq!(
            judge(None, "me", Own::default(), Instant::now()),
            Verdict::Create
        );
    }

    #[test]
    fn a_term_ends_at_the_renew_deadline_counted_from_the_send() {
        let sent = Instant::now();
        let (deadline, lease) = (Duration::from_secs(10), Duration::from_secs(15));
        let end = term_end(sent, deadline, lease, Some(lease));
        assert_eq!(end, sent + deadline);
        // A longer recorded duration does not lengthen the term.
        let longer = term_end(sent, deadline, lease, Some(Duration::from_secs(3600)));
        assert_eq!(longer, sent + deadline);
    }

    #[test]
    fn a_term_never_counts_on_more_than_the_duration_the_lease_records() {
        let sent = Instant::now();
        let (deadline, lease) = (Duration::from_secs(3), Duration::from_secs(4));
        // An outside writer set leaseDurationSeconds: 1: followers may take
        // over one second after they observe it, which is after `sent`.
        let end = term_end(sent, deadline, lease, Some(Duration::from_secs(1)));
        assert!(end < sent + Duration::from_secs(1), "{:?}", end - sent);
        assert_eq!(end, sent + Duration::from_millis(750));
        // No valid duration: followers take it once observed; the term ends now.
        assert_eq!(term_end(sent, deadline, lease, None), sent);
    }

    #[test]
    fn absurd_durations_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(86_400 * 365));
        let end = term_end(now, Duration::MAX, Duration::MAX, Some(Duration::MAX));
        assert!(end > now);
        assert!(watch_trusted(true, now, true, Duration::MAX, now));
        assert_eq!(
            attempt_timeout(Duration::from_secs(1), Duration::MAX),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn a_leader_holds_only_while_the_lease_carries_its_own_term() {
        let spec = acquire(None, "me", 15, "2026-11-24T14:00:00Z".parse().unwrap());
        let term = TermRecord::of(&spec);
        assert!(still_holds(&TermRecord::of(&spec), &term));
        let renewed = renew(&spec, "me", 15, "2026-11-24T14:00:02Z".parse().unwrap());
        assert!(still_holds(&TermRecord::of(&renewed), &term));
        // Another instance with the same identity took it: a new term.
        let twin = acquire(
            Some(&spec),
            "me",
            15,
            "2026-11-24T14:00:03Z".parse().unwrap(),
        );
        assert!(!still_holds(&TermRecord::of(&twin), &term));
        let mut other = spec.clone();
        other.holder_identity = Some("other".into());
        assert!(!still_holds(&TermRecord::of(&other), &term));
        let free = release(&spec, "2026-11-24T14:00:04Z".parse().unwrap());
        assert!(!still_holds(&TermRecord::of(&free), &term));
    }

    #[test]
    fn a_write_the_server_kept_as_a_no_op_changed_nothing() {
        assert!(write_changed(Some("5"), Some("6")));
        assert!(!write_changed(Some("5"), Some("5")));
        assert!(!write_changed(Some("6"), Some("5")));
        assert!(!write_changed(Some("5"), None));
        assert!(write_changed(None, Some("1")));
    }

    #[test]
    fn a_renew_changes_the_record_even_when_the_wall_clock_stands_still() {
        let frozen: Timestamp = "2026-11-24T14:00:00Z".parse().unwrap();
        let term = acquire(None, "me", 15, frozen);
        let first = renew(&term, "me", 15, frozen);
        let second = renew(&first, "me", 15, frozen);
        assert_ne!(term, first);
        assert_ne!(first, second);
        assert!(second.renew_time > first.renew_time);
        // By a whole second: client-go compares records at that resolution.
        let (a, b) = (
            first.renew_time.clone().unwrap().0,
            second.renew_time.clone().unwrap().0,
        );
        assert_eq!(b.as_second() - a.as_second(), 1);
        // A clock that steps back does not write an older renewTime either.
        let back = renew(&second, "me", 15, "2026-11-24T13:00:00Z".parse().unwrap());
        assert!(back.renew_time > second.renew_time);
    }

    #[test]
    fn fencing_tokens_are_the_resource_version_of_the_write() {
        let mut l = lease(Some("me"), Some(10), "42");
        assert_eq!(fencing_token(&l), Some(42));
        l.metadata.resource_version = Some("not-a-number".into());
        assert_eq!(fencing_token(&l), None);
    }

    #[test]
    fn a_silent_watch_is_distrusted_only_while_the_lease_is_held() {
        let t0 = Instant::now();
        let silence = watch_silence(Duration::from_secs(2));
        assert_eq!(silence, Duration::from_millis(2400));
        assert_eq!(
            watch_silence(Duration::from_millis(250)),
            Duration::from_millis(450)
        );
        assert_eq!(watch_silence(Duration::MAX), Duration::MAX);
        let later = t0 + silence;
        assert!(watch_trusted(true, t0, true, silence, t0));
        assert!(!watch_trusted(true, t0, true, silence, later));
        assert!(watch_trusted(true, t0, false, silence, later));
        assert!(!watch_trusted(false, t0, false, silence, t0));
    }

    #[test]
    fn a_lock_term_ends_well_before_its_ttl() {
        let ttl = Duration::from_secs(15);
        assert_eq!(lock_validity(ttl), Duration::from_secs(10));
        assert!(lock_validity(Duration::from_secs(1)) < Duration::from_secs(1));
    }

    #[test]
    fn two_attempts_fit_in_what_is_left_of_a_renew_deadline() {
        let (deadline, retry) = (Duration::from_secs(1), Duration::from_millis(250));
        let attempt = attempt_timeout(deadline, retry);
        assert!(retry + attempt * 2 <= deadline);
        assert_eq!(
            attempt_timeout(Duration::from_secs(10), Duration::from_secs(2)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn a_deleted_lease_is_recreated_only_once_its_last_holder_expired() {
        let t0 = Instant::now();
        let live = observed(Some("other"), Some(10), t0);
        let wait = |v: Verdict| matches!(v, Verdict::Wait { .. });
        assert!(wait(judge_missing(
            Some(&live),
            None,
            "me",
            Own::default(),
            t0
        )));
        let t10 = t0 + Duration::from_secs(10);
        assert_eq!(
            judge_missing(Some(&live), None, "me", Own::default(), t10),
            Verdict::Create
        );
        // Seen deleted at t0 + 5 s: the holder's lease runs from then.
        let since = Some(t0 + Duration::from_secs(5));
        assert!(wait(judge_missing(
            Some(&live),
            since,
            "me",
            Own::default(),
            t10
        )));
        let t15 = t0 + Duration::from_secs(15);
        assert_eq!(
            judge_missing(Some(&live), since, "me", Own::default(), t15),
            Verdict::Create
        );
        let mine = observed(Some("me"), Some(10), t0);
        let wrote = [mine.term_record()];
        let own = Own {
            written: &wrote,
            ..Own::default()
        };
        assert_eq!(
            judge_missing(Some(&mine), since, "me", own, t0),
            Verdict::Create
        );
        // Named us, but we never wrote it: another instance's, waited out.
        assert!(wait(judge_missing(
            Some(&mine),
            since,
            "me",
            Own::default(),
            t0
        )));
        let free = observed(None, Some(10), t0);
        assert_eq!(
            judge_missing(Some(&free), since, "me", Own::default(), t0),
            Verdict::Create
        );
        assert_eq!(
            judge_missing(None, since, "me", Own::default(), t0),
            Verdict::Create
        );
    }

    #[test]
    fn live_lease_of_another_holder_is_waited_for_until_observed_plus_duration() {
        let t0 = Instant::now();
        let obs = observed(Some("other"), Some(10), t0);
        let expect = Verdict::Wait {
            holder: "other".into(),
            expires_at: t0 + Duration::from_secs(10),
        };
        assert_eq!(judge(Some(&obs), "me", Own::default(), t0), expect);
        assert_eq!(
            judge(
                Some(&obs),
                "me",
                Own::default(),
                t0 + Duration::from_millis(9_999)
            ),
            expect
        );
        assert_eq!(
            judge(
                Some(&obs),
                "me",
                Own::default(),
                t0 + Duration::from_secs(10)
            ),
            Verdict::Acquire
        );
    }

    #[test]
    fn expiry_ignores_remote_renew_time_entirely() {
        // A renewTime far in the past (a skewed writer) does not make a freshly
        // observed Lease expired; one far in the future does not extend it.
        let t0 = Instant::now();
        for renew in ["1970-01-01T00:00:00Z", "2999-01-01T00:00:00Z"] {
            let mut l = lease(Some("other"), Some(10), "1");
            l.spec.as_mut().unwrap().renew_time = Some(MicroTime(renew.parse().unwrap()));
            let obs = Observed::update(None, l, t0);
            assert!(matches!(
                judge(Some(&obs), "me", Own::default(), t0),
                Verdict::Wait { .. }
            ));
            assert_eq!(
                judge(
                    Some(&obs),
                    "me",
                    Own::default(),
                    t0 + Duration::from_secs(10)
                ),
                Verdict::Acquire
            );
        }
    }

    #[test]
    fn free_lease_is_acquired_whatever_its_duration() {
        let t0 = Instant::now();
        for holder in [None, Some("")] {
            let obs = observed(holder, Some(3600), t0);
            assert_eq!(
                judge(Some(&obs), "me", Own::default(), t0),
                Verdict::Acquire
            );
        }
    }

    #[test]
    fn unknown_or_nonpositive_duration_is_expired_once_observed() {
        let t0 = Instant::now();
        for d in [None, Some(0), Some(-5)] {
            let obs = observed(Some("other"), d, t0);
            assert_eq!(
                judge(Some(&obs), "me", Own::default(), t0),
                Verdict::Acquire,
                "{d:?}"
            );
        }
    }

    #[test]
    fn own_lease_is_renewed_while_it_carries_our_term() {
        let t0 = Instant::now();
        let obs = observed(Some("me"), Some(10), t0);
        let term = obs.term_record();
        let leading = Own {
            leading: Some(&term),
            ..Own::default()
        };
        assert_eq!(judge(Some(&obs), "me", leading, t0), Verdict::Renew);
        // Written by us (a term that ended, a lost answer): ours at once.
        let wrote = Own {
            written: std::slice::from_ref(&term),
            ..Own::default()
        };
        assert_eq!(judge(Some(&obs), "me", wrote, t0), Verdict::Acquire);
    }

    #[test]
    fn a_live_lease_naming_us_that_we_never_wrote_is_waited_out_unless_adopted() {
        let t0 = Instant::now();
        let obs = observed(Some("me"), Some(10), t0);
        let expect = Verdict::Wait {
            holder: "me".into(),
            expires_at: t0 + Duration::from_secs(10),
        };
        assert_eq!(judge(Some(&obs), "me", Own::default(), t0), expect);
        let t10 = t0 + Duration::from_secs(10);
        assert_eq!(
            judge(Some(&obs), "me", Own::default(), t10),
            Verdict::Acquire
        );
        let adopt = Own {
            adopt: true,
            ..Own::default()
        };
        assert_eq!(judge(Some(&obs), "me", adopt, t0), Verdict::Acquire);
        // Leading another term while this record names us: not ours to renew.
        let mine = TermRecord {
            transitions: 9,
            ..obs.term_record()
        };
        let leading = Own {
            leading: Some(&mine),
            adopt: true,
            ..Own::default()
        };
        assert_eq!(judge(Some(&obs), "me", leading, t0), expect);
    }

    #[test]
    fn observation_time_moves_only_when_the_spec_changes() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(5);
        let first = observed(Some("other"), Some(10), t0);
        let mut relabelled = lease(Some("other"), Some(10), "2");
        relabelled.metadata.labels = Some([("a".to_owned(), "b".to_owned())].into());
        let same = Observed::update(Some(&first), relabelled, t1);
        assert_eq!(same.observed_at, t0);
        assert_eq!(same.lease.metadata.resource_version.as_deref(), Some("2"));
        let renewed = Observed::update(Some(&same), lease(Some("other"), Some(11), "3"), t1);
        assert_eq!(renewed.observed_at, t1);
    }

    #[test]
    fn acquire_raises_transitions_and_keeps_unmanaged_fields() {
        let now: Timestamp = "2026-11-24T14:00:00.123456Z".parse().unwrap();
        let prev = LeaseSpec {
            holder_identity: Some("old".into()),
            lease_transitions: Some(4),
            strategy: Some("OldestEmulationVersion".into()),
            preferred_holder: Some("x".into()),
            ..LeaseSpec::default()
        };
        let spec = acquire(Some(&prev), "me", 15, now);
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(5));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        assert_eq!(spec.strategy.as_deref(), Some("OldestEmulationVersion"));
        assert_eq!(spec.preferred_holder.as_deref(), Some("x"));
        assert_eq!(acquire(None, "me", 15, now).lease_transitions, Some(0));
    }

    #[test]
    fn transitions_never_overflow_or_go_negative() {
        let now = Timestamp::UNIX_EPOCH;
        let max = LeaseSpec {
            lease_transitions: Some(i32::MAX),
            ..LeaseSpec::default()
        };
        assert_eq!(
            acquire(Some(&max), "me", 1, now).lease_transitions,
            Some(i32::MAX)
        );
        let negative = LeaseSpec {
            lease_transitions: Some(-3),
            ..LeaseSpec::default()
        };
        assert_eq!(
            acquire(Some(&negative), "me", 1, now).lease_transitions,
            Some(1)
        );
    }

    #[test]
    fn each_verdict_writes_what_it_judged() {
        let now: Timestamp = "2026-11-24T14:00:00Z".parse().unwrap();
        let held = acquire(None, "me", 15, now);
        let wait = Verdict::Wait {
            holder: "x".into(),
            expires_at: Instant::now(),
        };
        assert_eq!(write_for(&wait, Some(&held), "me", 15, now), None);
        let (op, spec) = write_for(&Verdict::Renew, Some(&held), "me", 15, now).unwrap();
        assert_eq!(op, LeaseOperation::Renew);
        assert_eq!(TermRecord::of(&spec), TermRecord::of(&held));
        let (op, spec) = write_for(&Verdict::Acquire, Some(&held), "me", 15, now).unwrap();
        assert_eq!(op, LeaseOperation::Acquire);
        assert_eq!(spec.lease_transitions, Some(1));
        let (op, _) = write_for(&Verdict::Create, None, "me", 15, now).unwrap();
        assert_eq!(op, LeaseOperation::Create);
    }

    #[test]
    fn renew_keeps_acquire_time_and_transitions() {
        let t0: Timestamp = "2026-11-24T14:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-11-24T14:00:02Z".parse().unwrap();
        let term = acquire(None, "me", 15, t0);
        let spec = renew(&term, "me", 15, t1);
        assert_eq!(spec.acquire_time, Some(MicroTime(t0)));
        assert_eq!(spec.renew_time, Some(MicroTime(t1)));
        assert_eq!(spec.lease_transitions, Some(0));
    }

    #[test]
    fn release_writes_what_client_go_writes() {
        let t0: Timestamp = "2026-11-24T14:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-11-24T14:00:09Z".parse().unwrap();
        let mut term = acquire(None, "me", 15, t0);
        term.lease_transitions = Some(7);
        let spec = release(&term, t1);
        assert_eq!(spec.holder_identity.as_deref(), Some(""));
        assert_eq!(spec.lease_duration_seconds, Some(1));
        assert_eq!(spec.acquire_time, Some(MicroTime(t1)));
        assert_eq!(spec.renew_time, Some(MicroTime(t1)));
        assert_eq!(spec.lease_transitions, Some(7));
    }

    #[test]
    fn a_written_record_reads_back_equal_after_the_servers_microsecond_cut() {
        let now: Timestamp = "2026-11-24T14:00:00.123456789Z".parse().unwrap();
        let spec = acquire(None, "me", 15, now);
        let stored: Timestamp = "2026-11-24T14:00:00.123456Z".parse().unwrap();
        assert_eq!(spec.acquire_time, Some(MicroTime(stored)));
        let mut read_back = spec.clone();
        read_back.acquire_time = Some(MicroTime(stored));
        assert_eq!(TermRecord::of(&spec), TermRecord::of(&read_back));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn timestamp() -> impl Strategy<Value = Option<MicroTime>> {
            let (lo, hi) = (Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
            proptest::option::of(
                (lo..=hi).prop_map(|s| MicroTime(Timestamp::from_second(s).unwrap())),
            )
        }

        prop_compose! {
            fn any_spec()(
                holder in proptest::option::of("[a-z]{0,3}"),
                duration in proptest::option::of(any::<i32>()),
                transitions in proptest::option::of(any::<i32>()),
                acquire_time in timestamp(),
                renew_time in timestamp(),
            ) -> LeaseSpec {
                LeaseSpec {
                    holder_identity: holder,
                    lease_duration_seconds: duration,
                    lease_transitions: transitions,
                    acquire_time,
                    renew_time,
                    ..LeaseSpec::default()
                }
            }
        }

        fn lease_of(spec: LeaseSpec, rv: &str) -> Lease {
            Lease {
                metadata: ObjectMeta {
                    resource_version: Some(rv.into()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            }
        }

        proptest! {
            /// Any Lease body is read, judged and rewritten without a panic,
            /// and a holder other than us is never displaced before the
            /// duration it records has passed since we observed it.
            #[test]
            fn any_lease_is_judged_without_panic(
                spec in any_spec(),
                now in timestamp(),
                elapsed_ms in 0u64..100_000,
                rv in "[0-9a-z]{0,4}",
            ) {
                let t0 = Instant::now();
                let at = t0 + Duration::from_millis(elapsed_ms);
                let observed = Observed::update(None, lease_of(spec.clone(), &rv), t0);
                let verdict = judge(Some(&observed), "me", Own::default(), at);
                if let (Some(holder), Some(d)) = (holder(&spec), lease_duration(&spec))
                    && holder != "me"
                    && Duration::from_millis(elapsed_ms) < d
                {
                    prop_assert!(matches!(verdict, Verdict::Wait { .. }), "{verdict:?}");
                }
                let _ = judge_missing(Some(&observed), Some(t0), "me", Own::default(), at);
                let now = now.map_or(Timestamp::UNIX_EPOCH, |t| t.0);
                let taken = acquire(Some(&spec), "me", 15, now);
                prop_assert!(taken.lease_transitions >= spec.lease_transitions.map(|t| t.max(0)));
                let renewed = renew(&taken, "me", 15, now);
                prop_assert_eq!(TermRecord::of(&renewed), TermRecord::of(&taken));
                let _ = release(&spec, now);
                let _ = term_end(t0, Duration::from_secs(10), Duration::from_secs(15), lease_duration(&spec));
                let _ = fencing_token(&observed.lease);
            }
        }
    }

    #[test]
    fn only_a_record_without_acquire_time_is_the_controllers_pick() {
        let now: Timestamp = "2026-11-24T14:00:00Z".parse().unwrap();
        let pick = LeaseSpec {
            holder_identity: Some("me".into()),
            strategy: Some("OldestEmulationVersion".into()),
            lease_duration_seconds: Some(2),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        };
        assert!(controller_pick(&pick));
        // Every acquire writes an acquireTime: an elector's term, not a pick.
        assert!(!controller_pick(&acquire(Some(&pick), "me", 2, now)));
        // A free Lease is nobody's pick.
        assert!(!controller_pick(&release(&pick, now)));
        assert!(!controller_pick(&LeaseSpec::default()));
    }

    #[test]
    fn a_coordinated_lease_naming_us_is_taken_unless_it_is_a_twins_live_term() {
        let t0 = Instant::now();
        let now: Timestamp = "2026-11-24T14:00:00Z".parse().unwrap();
        let with = |spec: LeaseSpec| Observed::update(None, lease_of_spec(spec), t0);
        let pick = LeaseSpec {
            holder_identity: Some("me".into()),
            strategy: Some("OldestEmulationVersion".into()),
            lease_duration_seconds: Some(2),
            ..LeaseSpec::default()
        };
        // The controller's pick: at once, by every instance of "me".
        assert!(elected(&with(pick.clone()), "me", Own::default(), t0));
        assert!(!elected(&with(pick.clone()), "other", Own::default(), t0));
        // Another instance took it: waited out while it lives ...
        let twin = acquire(Some(&pick), "me", 2, now);
        assert!(!elected(&with(twin.clone()), "me", Own::default(), t0));
        let t2 = t0 + Duration::from_secs(2);
        assert!(!elected(
            &with(twin.clone()),
            "me",
            Own::default(),
            t2 - Duration::from_millis(1)
        ));
        // ... and taken once expired: the controller will not rewrite it.
        assert!(elected(&with(twin.clone()), "me", Own::default(), t2));
        // Our own record (a term that ended, a lost answer): at once.
        let wrote = [TermRecord::of(&twin)];
        let own = Own {
            written: &wrote,
            ..Own::default()
        };
        assert!(elected(&with(twin.clone()), "me", own, t0));
        // Leading (another term): never elected anew.
        let leading = Own {
            leading: Some(&wrote[0]),
            ..Own::default()
        };
        assert!(!elected(&with(pick), "me", leading, t0));
    }

    fn lease_of_spec(spec: LeaseSpec) -> Lease {
        Lease {
            metadata: ObjectMeta {
                resource_version: Some("1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        }
    }

    #[test]
    fn resource_versions_compare_numerically() {
        assert!(is_newer(Some("10"), Some("9")));
        assert!(!is_newer(Some("9"), Some("10")));
        assert!(!is_newer(Some("9"), Some("9")));
        assert!(is_newer(Some("abc"), Some("9")));
        assert!(is_newer(Some("1"), None));
    }
}
