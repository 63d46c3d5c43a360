//! What a candidate or leader should do about the Lease it observed.

use std::time::Duration;

use tokio::time::Instant;

use super::{Observed, Own, after, lease_duration, spec_of};

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

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    use super::super::fixtures::*;
    use super::*;
    use crate::record::TermRecord;

    #[test]
    fn missing_lease_is_created() {
        assert_eq!(
            judge(None, "me", Own::default(), Instant::now()),
            Verdict::Create
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
}
