//! Coordinated election as the record shows it: a `strategy`, the
//! controller's pick, its preferred holder.

use k8s_openapi::api::coordination::v1::LeaseSpec;
use tokio::time::Instant;

use super::{Observed, Own, Verdict, holder, judge, spec_of};

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    use super::super::fixtures::*;
    use super::*;
    use crate::record::{TermRecord, acquire, release};

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
}
