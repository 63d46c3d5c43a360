//! The Lease record as an elector reads it, and the pure arithmetic on it.
//!
//! Nothing here does I/O or reads a clock: every function takes "now" and the
//! observed record and returns a decision or the spec to write. The loop in
//! `elector` and the [`LeaseLock`](crate::lock::LeaseLock) do the talking.
//!
//! By concept: the observed record and its fields (here), the verdicts
//! (`verdict`), the spec each write sends (`write`), the term arithmetic
//! (`term`), coordinated election's reading of the record (`coordinated`)
//! and the trust in a watch (`watch`).

mod coordinated;
mod term;
mod verdict;
mod watch;
mod write;

pub(crate) use coordinated::{coordinated, elected, preferred_other};
pub(crate) use term::{fencing_token, lock_validity, still_holds, term_end, write_changed};
pub(crate) use verdict::{Verdict, judge, judge_missing};
pub(crate) use watch::{watch_silence, watch_trusted};
#[cfg(test)]
pub(crate) use write::{acquire, renew};
pub(crate) use write::{release, write_for};

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
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

/// Leases for the tests of this module and its children.
#[cfg(test)]
mod fixtures {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    pub(super) fn lease(holder: Option<&str>, duration: Option<i32>, rv: &str) -> Lease {
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

    pub(super) fn observed(holder: Option<&str>, duration: Option<i32>, at: Instant) -> Observed {
        Observed::update(None, lease(holder, duration, "1"), at)
    }

    pub(super) fn lease_of_spec(spec: LeaseSpec) -> Lease {
        Lease {
            metadata: ObjectMeta {
                resource_version: Some("1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    use super::fixtures::*;
    use super::*;

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
    fn resource_versions_compare_numerically() {
        assert!(is_newer(Some("10"), Some("9")));
        assert!(!is_newer(Some("9"), Some("10")));
        assert!(!is_newer(Some("9"), Some("9")));
        assert!(is_newer(Some("abc"), Some("9")));
        assert!(is_newer(Some("1"), None));
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
}
