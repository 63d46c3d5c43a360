//! Who is a member: every replica holds its own member Lease
//! (`<prefix>-member-<identity>`), and every replica judges the others'
//! by the rules an elector judges a holder by, on its own monotonic clock
//! from the moment it observed each record. No wall clock is compared.
//!
//! [`MemberTable`] is the pure part (observe, judge at `now`, when to look
//! again); the task that feeds it and publishes the assignment is in
//! `coordinator.rs`.

#[cfg(test)]
use std::collections::BTreeSet;
use std::collections::HashMap;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::Instant;

use crate::record::{self, Observed};

/// The member Leases seen, by name, each as last observed.
#[derive(Debug)]
pub(crate) struct MemberTable {
    /// `<prefix>-member-`: the rest of the name is the member's identity.
    prefix: String,
    leases: HashMap<String, Observed>,
}

impl MemberTable {
    pub(crate) fn new(prefix: String) -> Self {
        Self {
            prefix,
            leases: HashMap::new(),
        }
    }

    /// Folds in `lease` as seen at `now`; an older `resourceVersion` than
    /// the one held (a list that raced the watch) is ignored. The
    /// observation time moves only when the record changed, as an
    /// elector's does.
    pub(crate) fn observe(&mut self, lease: Lease, now: Instant) {
        let Some(name) = lease.metadata.name.clone() else {
            return;
        };
        if !name.starts_with(&self.prefix) {
            return;
        }
        let previous = self.leases.get(&name);
        if let Some(previous) = previous
            && !record::is_newer(
                lease.metadata.resource_version.as_deref(),
                previous.lease.metadata.resource_version.as_deref(),
            )
        {
            return;
        }
        let observed = Observed::update(previous, lease, now);
        self.leases.insert(name, observed);
    }

    /// A member Lease was deleted: its holder is no member from now on.
    /// (A deleted member Lease is outside the protocol; its shards are
    /// still safe, as each is its own Lease.)
    pub(crate) fn deleted(&mut self, name: &str) {
        self.leases.remove(name);
    }

    /// The members at `now`: the identity in the name of each member Lease
    /// that this identity holds and that has not expired by what this
    /// replica observed.
    #[cfg(test)]
    pub(crate) fn members(&self, now: Instant) -> BTreeSet<String> {
        self.leases
            .iter()
            .filter_map(|(name, observed)| {
                let identity = name.strip_prefix(&self.prefix)?;
                (observed.holder() == Some(identity) && now < observed.expires_at())
                    .then(|| identity.to_owned())
            })
            .collect()
    }

    /// The live members at `now`, as [`members`](Self::members), each
    /// with the count its member Lease publishes and the instant its
    /// member Lease's term began (its `acquireTime`, as written).
    pub(crate) fn live(&self, now: Instant) -> Vec<LiveMember> {
        self.leases
            .iter()
            .filter_map(|(name, observed)| {
                let identity = name.strip_prefix(&self.prefix)?;
                (observed.holder() == Some(identity) && now < observed.expires_at()).then(|| {
                    LiveMember {
                        identity: identity.to_owned(),
                        count: super::fleet::count_of(&observed.lease),
                        since: record::spec_of(&observed.lease)
                            .acquire_time
                            .as_ref()
                            .map(|t| t.0),
                    }
                })
            })
            .collect()
    }

    /// The next instant a member may expire, after `now`: the membership
    /// must be judged again then, with no event to wake for.
    pub(crate) fn next_expiry(&self, now: Instant) -> Option<Instant> {
        record::next_expiry(self.leases.values(), now)
    }
}

/// A member as [`MemberTable::live`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LiveMember {
    pub(crate) identity: String,
    /// The shard count it publishes; `None`: a version that publishes none.
    pub(crate) count: Option<u32>,
    /// When its member Lease's term began, as written (a wall clock: it
    /// decides who keeps serving in a disagreement, never safety).
    pub(crate) since: Option<jiff::Timestamp>,
}

impl LiveMember {
    /// Orders members by standing: the earliest term first, a member
    /// without one last, then by identity.
    pub(crate) fn standing(&self) -> (bool, Option<jiff::Timestamp>, &str) {
        (self.since.is_none(), self.since, &self.identity)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use kube::api::ObjectMeta;

    use super::*;

    fn member(identity: &str, holder: &str, version: u32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(format!("work-member-{identity}")),
                resource_version: Some(version.to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                lease_duration_seconds: Some(2),
                renew_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                    jiff::Timestamp::from_second(i64::from(version)).unwrap(),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    fn table() -> MemberTable {
        MemberTable::new("work-member-".into())
    }

    #[test]
    fn a_member_expires_a_lease_duration_after_its_record_was_last_seen_to_change() {
        let t0 = Instant::now();
        let mut table = table();
        table.observe(member("a", "a", 1), t0);
        table.observe(member("b", "b", 2), t0);
        assert_eq!(table.members(t0), BTreeSet::from(["a".into(), "b".into()]));
        // b renews at t0+1 s; a does not.
        table.observe(member("b", "b", 3), t0 + Duration::from_secs(1));
        let at = t0 + Duration::from_secs(2);
        assert_eq!(
            table.next_expiry(t0 + Duration::from_millis(1500)),
            Some(at)
        );
        assert_eq!(table.members(at), BTreeSet::from(["b".into()]));
        assert!(table.members(t0 + Duration::from_secs(3)).is_empty());
    }

    #[test]
    fn the_same_record_seen_again_does_not_extend_a_member() {
        let t0 = Instant::now();
        let mut table = table();
        table.observe(member("a", "a", 1), t0);
        // A relist delivers the same record later: observed time stays.
        table.observe(member("a", "a", 1), t0 + Duration::from_secs(1));
        assert!(table.members(t0 + Duration::from_secs(2)).is_empty());
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let t0 = Instant::now();
        let mut table = table();
        table.observe(member("a", "a", 5), t0);
        table.observe(member("a", "", 4), t0);
        assert_eq!(table.members(t0), BTreeSet::from(["a".into()]));
    }

    #[test]
    fn a_released_or_foreign_held_member_lease_is_no_member() {
        let t0 = Instant::now();
        let mut table = table();
        table.observe(member("a", "", 1), t0);
        table.observe(member("b", "someone-else", 2), t0);
        assert!(table.members(t0).is_empty());
        table.observe(member("c", "c", 3), t0);
        table.deleted("work-member-c");
        assert!(table.members(t0).is_empty());
    }
}
