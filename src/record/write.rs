//! The spec each write sends: a new term, a renew, a release.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

use super::{Verdict, transitions};
use crate::error::LeaseOperation;

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

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::record::TermRecord;

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
}
