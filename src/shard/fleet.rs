//! What a replica must know of the fleet beyond who is a member, before it
//! may own shards: whether every live replica shards alike (the shard
//! count each publishes on its member Lease and on the shard Leases it
//! holds), and which members actually serve the shards assigned to them.
//!
//! Pure: observations in, verdicts out, judged at a given `now` on the
//! local monotonic clock from the moments records were observed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::Instant;

use super::assign::Assignment;
use crate::record::{self, Observed};

/// The annotation in which a sharded elector publishes its shard count, on
/// its member Lease and on every shard Lease it writes.
pub(crate) const COUNT_ANNOTATION: &str = "kube-elector.io/shard-count";

/// How long a member found not to serve gets no shards, in lease
/// durations; then it is counted again (and found out again if it still
/// does not serve).
pub(crate) const COOL_DOWN_LEASES: u32 = 4;

/// How long a shard assigned to a member that holds none may stay free
/// before the member is suspected, in lease durations: room for a joiner
/// on a loaded node to take its first shard.
pub(crate) const SUSPECT_AFTER_LEASES: u32 = 2;

/// The shard count `lease` was written under; `None` when it publishes
/// none (a replica of a version before counts were published) or garbage.
pub(crate) fn count_of(lease: &Lease) -> Option<u32> {
    lease
        .metadata
        .annotations
        .as_ref()?
        .get(COUNT_ANNOTATION)?
        .parse()
        .ok()
        .filter(|&count| count > 0)
}

// === Shard Leases ===

/// The shard Leases of the prefix seen, of any count, each as last
/// observed.
#[derive(Debug)]
pub(crate) struct ShardLeases {
    /// `<prefix>-`: the rest of a shard Lease's name is its number.
    prefix: String,
    leases: HashMap<u32, Observed>,
}

impl ShardLeases {
    pub(crate) fn new(prefix: String) -> Self {
        Self {
            prefix,
            leases: HashMap::new(),
        }
    }

    /// The shard number `name` stands for, if it is a shard Lease of the
    /// prefix (of any count).
    fn shard(&self, name: &str) -> Option<u32> {
        let rest = name.strip_prefix(&self.prefix)?;
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        rest.parse().ok()
    }

    /// Folds in `lease` as seen at `now` (ignored unless it is a shard
    /// Lease of the prefix; an older version than the one held is ignored).
    /// Whether its holder or count changed (a renew changes neither).
    pub(crate) fn observe(&mut self, lease: Lease, now: Instant) -> bool {
        let Some(shard) = lease.metadata.name.as_deref().and_then(|n| self.shard(n)) else {
            return false;
        };
        let previous = self.leases.get(&shard);
        if let Some(previous) = previous
            && !record::is_newer(
                lease.metadata.resource_version.as_deref(),
                previous.lease.metadata.resource_version.as_deref(),
            )
        {
            return false;
        }
        let changed = previous.is_none_or(|previous| {
            previous.holder() != record::holder(record::spec_of(&lease))
                || count_of(&previous.lease) != count_of(&lease)
        });
        let observed = Observed::update(previous, lease, now);
        self.leases.insert(shard, observed);
        changed
    }

    /// A shard Lease was deleted.
    pub(crate) fn deleted(&mut self, name: &str) {
        if let Some(shard) = self.shard(name) {
            self.leases.remove(&shard);
        }
    }

    /// The live shard Leases at `now` held under a count other than
    /// `mine` (a Lease without a count counts as `mine`): shard and count.
    pub(crate) fn foreign(&self, mine: u32, now: Instant) -> BTreeMap<u32, u32> {
        self.leases
            .iter()
            .filter(|(_, observed)| observed.holder().is_some() && now < observed.expires_at())
            .filter_map(|(shard, observed)| {
                let count = count_of(&observed.lease)?;
                (count != mine).then_some((*shard, count))
            })
            .collect()
    }

    /// The next instant a held shard Lease may expire, after `now`.
    pub(crate) fn next_expiry(&self, now: Instant) -> Option<Instant> {
        record::next_expiry(self.leases.values(), now)
    }

    /// Who holds a live shard Lease at `now`.
    fn holders(&self, now: Instant) -> BTreeSet<&str> {
        self.leases
            .values()
            .filter(|observed| now < observed.expires_at())
            .filter_map(Observed::holder)
            .collect()
    }

    /// Whether `shard` is free at `now` as observed, and since when.
    fn free_since(&self, shard: u32, now: Instant) -> Free {
        let Some(observed) = self.leases.get(&shard) else {
            return Free::NeverSeen;
        };
        if observed.holder().is_none() {
            return Free::Since(observed.observed_at);
        }
        let expires = observed.expires_at();
        if now >= expires {
            Free::Since(expires)
        } else {
            Free::Held
        }
    }
}

/// A shard Lease as [`ShardLeases::free_since`] judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Free {
    /// Held, and not expired by what was observed.
    Held,
    /// Free (released) or expired since then.
    Since(Instant),
    /// Not seen (not created yet, or deleted): free as long as known.
    NeverSeen,
}

// === Members that do not serve ===

/// Which members were found not to take the shards assigned to them: a
/// shard assigned to a member that holds no shard Lease, free or expired
/// for a lease duration as observed here, makes the member a suspect, and
/// a suspect gets no shards for a cool-down.
#[derive(Debug)]
pub(crate) struct Serving {
    /// How long a shard may stay free while assigned (a lease duration).
    bound: Duration,
    cool_down: Duration,
    /// Each shard's owner in the last assignment judged, and since when.
    assigned: HashMap<u32, (Arc<str>, Instant)>,
    /// Suspects, and when each is counted again.
    suspects: BTreeMap<String, Instant>,
}

impl Serving {
    pub(crate) fn new(lease_duration: Duration) -> Self {
        Self {
            bound: lease_duration * SUSPECT_AFTER_LEASES,
            cool_down: lease_duration * COOL_DOWN_LEASES,
            assigned: HashMap::new(),
            suspects: BTreeMap::new(),
        }
    }

    /// The members that get no shards at `now` (their cool-down runs).
    pub(crate) fn suspects(&mut self, now: Instant) -> BTreeSet<String> {
        self.suspects.retain(|_, until| now < *until);
        self.suspects.keys().cloned().collect()
    }

    /// When the next suspect is counted again.
    pub(crate) fn next_return(&self) -> Option<Instant> {
        self.suspects.values().min().copied()
    }

    /// Judges `assignment` at `now` against the shard Leases: returns the
    /// members newly found not to serve (never `me`: this replica's own
    /// shards are its own workers' business), and the next instant a
    /// member may be found so without any event.
    pub(crate) fn judge(
        &mut self,
        assignment: &Assignment,
        leases: &ShardLeases,
        me: &str,
        now: Instant,
    ) -> (Vec<String>, Option<Instant>) {
        let mut found = Vec::new();
        let mut next: Option<Instant> = None;
        let holders = leases.holders(now);
        for shard in 0..assignment.shards() {
            let Some(owner) = assignment.owner(shard) else {
                self.assigned.remove(&shard);
                continue;
            };
            let since = match self.assigned.get(&shard) {
                Some((was, since)) if **was == *owner => *since,
                _ => {
                    self.assigned.insert(shard, (Arc::from(owner), now));
                    now
                }
            };
            // A member that holds a shard serves, if slowly: only one
            // that holds none is suspected.
            if owner == me || self.suspects.contains_key(owner) || holders.contains(owner) {
                continue;
            }
            let unserved = match leases.free_since(shard, now) {
                Free::Held => continue,
                Free::Since(free) => free.max(since),
                Free::NeverSeen => since,
            };
            let due = record::after(unserved, self.bound);
            if now >= due {
                self.suspects
                    .insert(owner.to_owned(), record::after(now, self.cool_down));
                found.push(owner.to_owned());
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        found.sort();
        found.dedup();
        (found, next)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use kube::api::ObjectMeta;

    use super::*;

    fn shard(n: u32, holder: &str, count: Option<u32>, version: u32) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(format!("work-{n}")),
                resource_version: Some(version.to_string()),
                annotations: count.map(|c| [(COUNT_ANNOTATION.to_owned(), c.to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                lease_duration_seconds: Some(2),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn only_live_shard_leases_of_another_count_are_foreign_and_none_counts_as_mine() {
        let t0 = Instant::now();
        let mut leases = ShardLeases::new("work-".into());
        leases.observe(shard(3, "a", Some(16), 1), t0);
        leases.observe(shard(19, "b", Some(32), 2), t0);
        leases.observe(shard(4, "c", None, 3), t0);
        leases.observe(shard(5, "", Some(16), 4), t0);
        leases.observe(shard(6, "d", Some(16), 5), t0);
        // Not a shard Lease of the prefix.
        let mut other = shard(0, "e", Some(16), 6);
        other.metadata.name = Some("work-member-e".into());
        leases.observe(other, t0);
        assert_eq!(leases.foreign(32, t0), BTreeMap::from([(3, 16), (6, 16)]));
        assert_eq!(leases.foreign(16, t0), BTreeMap::from([(19, 32)]));
        // Expired by what was observed: no longer anyone's.
        assert!(leases.foreign(32, t0 + Duration::from_secs(2)).is_empty());
    }

    #[test]
    fn a_member_whose_assigned_shard_stays_free_for_a_lease_duration_is_a_suspect_for_the_cool_down()
     {
        let t0 = Instant::now();
        let lease = Duration::from_secs(2);
        let mut serving = Serving::new(lease / SUSPECT_AFTER_LEASES);
        let mut leases = ShardLeases::new("work-".into());
        let assignment = Assignment::compute(2, &["me", "ghost"]);
        let ghosts: Vec<u32> = assignment.shards_of("ghost").collect();
        // The ghost's shard was released (free) at t0.
        leases.observe(shard(ghosts[0], "", None, 1), t0);
        let (found, next) = serving.judge(&assignment, &leases, "me", t0);
        assert!(found.is_empty());
        assert_eq!(next, Some(t0 + lease));
        let (found, _) = serving.judge(&assignment, &leases, "me", t0 + lease);
        assert_eq!(found, ["ghost"]);
        assert!(serving.suspects(t0 + lease).contains("ghost"));
        let back = t0 + lease + lease / SUSPECT_AFTER_LEASES * COOL_DOWN_LEASES;
        assert!(
            serving.suspects(back).is_empty(),
            "counted again after the cool-down"
        );
    }

    #[test]
    fn a_member_that_holds_its_shard_or_takes_it_in_time_is_no_suspect() {
        let t0 = Instant::now();
        let lease = Duration::from_secs(2);
        let mut serving = Serving::new(lease / SUSPECT_AFTER_LEASES);
        let mut leases = ShardLeases::new("work-".into());
        let assignment = Assignment::compute(1, &["other"]);
        leases.observe(shard(0, "", None, 1), t0);
        serving.judge(&assignment, &leases, "me", t0);
        // Taken before the bound: held from then on.
        leases.observe(shard(0, "other", None, 2), t0 + Duration::from_secs(1));
        let (found, next) = serving.judge(&assignment, &leases, "me", t0 + lease);
        assert!(found.is_empty());
        assert_eq!(next, None);
        // This replica never suspects itself.
        let mine = Assignment::compute(1, &["me"]);
        let mut serving = Serving::new(lease / SUSPECT_AFTER_LEASES);
        serving.judge(&mine, &ShardLeases::new("work-".into()), "me", t0);
        let (found, _) = serving.judge(
            &mine,
            &ShardLeases::new("work-".into()),
            "me",
            t0 + lease * 5,
        );
        assert!(found.is_empty());
    }
}
