//! Term arithmetic: when a term ends, whether a leader still holds it,
//! whether a write changed the record, the fencing token.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::Instant;

use super::{TermRecord, after, is_newer};

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

/// How long a term of a polled `LeaseLock` is valid after the write that
/// took or renewed it was sent: two thirds of the TTL (client-go's ratio of
/// renew deadline to lease duration), so that it ends before any other lock
/// may count the TTL as run out from its own, later observation.
pub(crate) fn lock_validity(ttl: Duration) -> Duration {
    ttl / 3 * 2
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::record::{acquire, release, renew, watch_trusted};

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
    fn fencing_tokens_are_the_resource_version_of_the_write() {
        let mut l = lease(Some("me"), Some(10), "42");
        assert_eq!(fencing_token(&l), Some(42));
        l.metadata.resource_version = Some("not-a-number".into());
        assert_eq!(fencing_token(&l), None);
    }

    #[test]
    fn a_lock_term_ends_well_before_its_ttl() {
        let ttl = Duration::from_secs(15);
        assert_eq!(lock_validity(ttl), Duration::from_secs(10));
        assert!(lock_validity(Duration::from_secs(1)) < Duration::from_secs(1));
    }
}
