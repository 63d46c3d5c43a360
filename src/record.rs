//! The Lease record as an elector reads it, and the pure arithmetic on it.
//!
//! Nothing here does I/O or reads a clock: every function takes "now" and the
//! observed record and returns a decision or the spec to write. The loop in
//! `elector` and the [`LeaseLock`](crate::LeaseLock) do the talking.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use tokio::time::Instant;

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
        self.observed_at + lease_duration(spec_of(&self.lease)).unwrap_or(Duration::ZERO)
    }

    /// The `resourceVersion` a conditional write must carry.
    pub(crate) fn resource_version(&self) -> Option<&str> {
        self.lease.metadata.resource_version.as_deref()
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
/// `leading` is whether this replica currently believes it leads. A Lease
/// that names us while we do not lead (a restart, or a renew that landed
/// after we gave up) is ours to take at once: no other replica uses our
/// identity, and the write is conditional anyway.
pub(crate) fn judge(observed: Option<&Observed>, me: &str, leading: bool, now: Instant) -> Verdict {
    let Some(observed) = observed else {
        return Verdict::Create;
    };
    match observed.holder() {
        Some(holder) if holder == me => {
            if leading {
                Verdict::Renew
            } else {
                Verdict::Acquire
            }
        }
        Some(holder) => {
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
        None => Verdict::Acquire,
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
    now: Instant,
) -> Verdict {
    let held = last.and_then(|l| {
        let duration = lease_duration(spec_of(&l.lease)).unwrap_or(Duration::ZERO);
        let from_deletion = missing_since.map_or(l.expires_at(), |since| since + duration);
        Some((l.holder()?, l.expires_at().max(from_deletion)))
    });
    match held {
        Some((holder, expires_at)) if holder != me && now < expires_at => Verdict::Wait {
            holder: holder.to_owned(),
            expires_at,
        },
        _ => Verdict::Create,
    }
}

/// Whether a term has ended at `now`: a leader counts its term from the
/// moment it *sent* its last successful renew (or acquire), so it stops
/// before any follower, who counts from a later observation, may start.
pub(crate) fn term_over(renewed_sent: Instant, renew_deadline: Duration, now: Instant) -> bool {
    now >= renewed_sent + renew_deadline
}

/// Whether a leader that observes the Lease held by `holder` (`None`: free
/// or deleted) still holds it.
pub(crate) fn still_holds(holder: Option<&str>, me: &str) -> bool {
    holder == Some(me)
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

/// The spec that renews our own term: `renewTime` = now, `acquireTime` and
/// `leaseTransitions` kept.
pub(crate) fn renew(
    previous: &LeaseSpec,
    me: &str,
    lease_duration_secs: i32,
    now: Timestamp,
) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(lease_duration_secs),
        acquire_time: previous.acquire_time.clone().or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions(previous)),
        ..previous.clone()
    }
}

/// The spec that releases a Lease, as client-go writes it: `holderIdentity:
/// ""` (not null: some peers fail on a missing holder), `leaseDurationSeconds:
/// 1`, `acquireTime` = `renewTime` = now, `leaseTransitions` kept.
pub(crate) fn release(previous: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(String::new()),
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions(previous)),
        ..previous.clone()
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
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

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

    #[test]
    fn missing_lease_is_created() {
        assert_eq!(judge(None, "me", false, Instant::now()), Verdict::Create);
    }

    #[test]
    fn a_term_ends_at_the_renew_deadline_counted_from_the_send() {
        let sent = Instant::now();
        let deadline = Duration::from_secs(10);
        assert!(!term_over(
            sent,
            deadline,
            sent + Duration::from_millis(9_999)
        ));
        assert!(term_over(sent, deadline, sent + deadline));
    }

    #[test]
    fn a_leader_holds_only_while_the_lease_names_it() {
        assert!(still_holds(Some("me"), "me"));
        assert!(!still_holds(Some("other"), "me"));
        assert!(!still_holds(None, "me"));
    }

    #[test]
    fn a_deleted_lease_is_recreated_only_once_its_last_holder_expired() {
        let t0 = Instant::now();
        let live = observed(Some("other"), Some(10), t0);
        let wait = |v: Verdict| matches!(v, Verdict::Wait { .. });
        assert!(wait(judge_missing(Some(&live), None, "me", t0)));
        let t10 = t0 + Duration::from_secs(10);
        assert_eq!(judge_missing(Some(&live), None, "me", t10), Verdict::Create);
        // Seen deleted at t0 + 5 s: the holder's lease runs from then.
        let since = Some(t0 + Duration::from_secs(5));
        assert!(wait(judge_missing(Some(&live), since, "me", t10)));
        let t15 = t0 + Duration::from_secs(15);
        assert_eq!(
            judge_missing(Some(&live), since, "me", t15),
            Verdict::Create
        );
        let mine = observed(Some("me"), Some(10), t0);
        assert_eq!(judge_missing(Some(&mine), since, "me", t0), Verdict::Create);
        let free = observed(None, Some(10), t0);
        assert_eq!(judge_missing(Some(&free), since, "me", t0), Verdict::Create);
        assert_eq!(judge_missing(None, since, "me", t0), Verdict::Create);
    }

    #[test]
    fn live_lease_of_another_holder_is_waited_for_until_observed_plus_duration() {
        let t0 = Instant::now();
        let obs = observed(Some("other"), Some(10), t0);
        let expect = Verdict::Wait {
            holder: "other".into(),
            expires_at: t0 + Duration::from_secs(10),
        };
        assert_eq!(judge(Some(&obs), "me", false, t0), expect);
        assert_eq!(
            judge(Some(&obs), "me", false, t0 + Duration::from_millis(9_999)),
            expect
        );
        assert_eq!(
            judge(Some(&obs), "me", false, t0 + Duration::from_secs(10)),
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
                judge(Some(&obs), "me", false, t0),
                Verdict::Wait { .. }
            ));
            assert_eq!(
                judge(Some(&obs), "me", false, t0 + Duration::from_secs(10)),
                Verdict::Acquire
            );
        }
    }

    #[test]
    fn free_lease_is_acquired_whatever_its_duration() {
        let t0 = Instant::now();
        for holder in [None, Some("")] {
            let obs = observed(holder, Some(3600), t0);
            assert_eq!(judge(Some(&obs), "me", false, t0), Verdict::Acquire);
        }
    }

    #[test]
    fn unknown_or_nonpositive_duration_is_expired_once_observed() {
        let t0 = Instant::now();
        for d in [None, Some(0), Some(-5)] {
            let obs = observed(Some("other"), d, t0);
            assert_eq!(
                judge(Some(&obs), "me", false, t0),
                Verdict::Acquire,
                "{d:?}"
            );
        }
    }

    #[test]
    fn own_lease_is_renewed_when_leading_and_retaken_when_not() {
        let t0 = Instant::now();
        let obs = observed(Some("me"), Some(10), t0);
        assert_eq!(judge(Some(&obs), "me", true, t0), Verdict::Renew);
        assert_eq!(judge(Some(&obs), "me", false, t0), Verdict::Acquire);
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
        assert_eq!(same.resource_version(), Some("2"));
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
    fn resource_versions_compare_numerically() {
        assert!(is_newer(Some("10"), Some("9")));
        assert!(!is_newer(Some("9"), Some("10")));
        assert!(!is_newer(Some("9"), Some("9")));
        assert!(is_newer(Some("abc"), Some("9")));
        assert!(is_newer(Some("1"), None));
    }
}
