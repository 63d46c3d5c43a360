//! Sharded leadership over real HTTP: replicas, each a `ShardedElector`
//! on its own client (as in its own process), own exactly the shards the
//! assignment gives them; a join or a graceful leave moves the shards the
//! assignment moves, by handover; a crash's shards are taken once its
//! member Lease expires; and under a chaos schedule no shard is owned by
//! two replicas at one instant.
//!
//! Balance, joins and leaves run against the real kube-apiserver too;
//! crashes, partitions and request counts need the embedded server.
//! `KUBE_ELECTOR_CHAOS=long` runs the chaos schedule over many seeds.

// Counts of shards and requests, far below where a cast loses anything.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

mod support;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use kube_elector::{
    ElectorConfig,
    hub::LeaseHub,
    shard::{Assignment, ShardConfig, ShardEvent, ShardedElector, ShardedHandle},
};
use kube_elector_testing::{FaultTarget, Verb};
use tokio::time::Instant;

use support::recorder::{Interval, Recorder};
use support::shard_keys::{self, KeyRecorder};
use support::{Target, eventually, unique_name};

/// Timings with room for a loaded two-core machine: a request may take
/// 1.25 s before it counts as failed.
const LEASE: Duration = Duration::from_secs(4);
const RENEW_DEADLINE: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_millis(500);
const PATIENCE: Duration = Duration::from_secs(30);

/// Replicas of one sharded workload, and a recorder of every shard's terms.
struct Fleet<'a> {
    target: &'a Target,
    prefix: String,
    shards: u32,
    replicas: Vec<(String, ShardedHandle)>,
    /// One per shard: who believed it owned the shard, when.
    recorders: Vec<Recorder>,
    /// Who owned which shard, as users see it, with each replica's count.
    keys: KeyRecorder,
}

impl<'a> Fleet<'a> {
    fn new(target: &'a Target, shards: u32) -> Self {
        Self {
            target,
            prefix: unique_name("shard"),
            shards,
            replicas: Vec::new(),
            recorders: (0..shards).map(|_| Recorder::default()).collect(),
            keys: KeyRecorder::default(),
        }
    }

    fn config(&self, identity: &str) -> ShardConfig {
        self.config_with(identity, self.shards)
    }

    /// The configuration of a replica of this prefix with `shards` shards.
    fn config_with(&self, identity: &str, shards: u32) -> ShardConfig {
        ShardConfig::new(
            ElectorConfig::new(&self.prefix)
                .namespace(self.target.namespace())
                .identity(identity)
                .lease_duration(LEASE)
                .renew_deadline(RENEW_DEADLINE)
                .retry_period(RETRY)
                .drain_timeout(Duration::from_secs(1)),
            shards,
        )
    }

    /// Starts a replica whose client (and so whose faults) is `identity`.
    fn join(&mut self, identity: &str) {
        self.join_with(identity, self.shards);
    }

    /// Starts a replica of this prefix with `shards` shards (its shards'
    /// terms are recorded where their numbers are the fleet's too).
    fn join_with(&mut self, identity: &str, shards: u32) {
        let hub = LeaseHub::new(self.target.client_for(identity));
        let handle = ShardedElector::in_hub(&hub, self.config_with(identity, shards))
            .expect("a valid configuration")
            .spawn();
        if shards == self.shards {
            for (shard, recorder) in (0..).zip(&self.recorders) {
                recorder.watch_state(handle.shard(shard).expect("a shard").subscribe(), identity);
            }
        }
        self.keys.watch(handle.subscribe(), identity, shards);
        self.replicas.push((identity.to_owned(), handle));
    }

    fn handle(&self, identity: &str) -> &ShardedHandle {
        &self
            .replicas
            .iter()
            .find(|(id, _)| id == identity)
            .expect("a replica of that name")
            .1
    }

    /// The shards the replicas named own between them now.
    fn owned_by(&self, identities: &[&str]) -> BTreeSet<u32> {
        identities
            .iter()
            .flat_map(|id| self.handle(id).owned().shards().collect::<Vec<_>>())
            .collect()
    }

    fn take(&mut self, identity: &str) -> ShardedHandle {
        let i = self
            .replicas
            .iter()
            .position(|(id, _)| id == identity)
            .expect("a replica of that name");
        self.replicas.remove(i).1
    }

    fn identities(&self) -> Vec<String> {
        self.replicas.iter().map(|(id, _)| id.clone()).collect()
    }

    fn assignment(&self) -> Assignment {
        Assignment::compute(self.shards, &self.identities())
    }

    /// Whether every replica sees the replicas running now as the
    /// members, and owns exactly its shards of their assignment.
    fn is_balanced(&self) -> bool {
        let assignment = self.assignment();
        self.replicas.iter().all(|(id, handle)| {
            let owned = handle.owned();
            let mine: BTreeSet<u32> = assignment.shards_of(id).collect();
            handle.assignment() == assignment
                && owned.shards().collect::<BTreeSet<_>>() == mine
                && mine.iter().all(|&s| owned.contains(s))
        })
    }

    async fn balanced(&self, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.is_balanced() {
            if Instant::now() >= deadline {
                let assignment = self.assignment();
                let mut report = String::new();
                for (id, handle) in &self.replicas {
                    let owned: BTreeSet<u32> = handle.owned().shards().collect();
                    let mine: BTreeSet<u32> = assignment.shards_of(id).collect();
                    let _ = writeln!(
                        report,
                        "{id}: sees members {:?}; owns {} of its {}; missing {:?}; extra {:?}",
                        handle.assignment().members(),
                        owned.intersection(&mine).count(),
                        mine.len(),
                        mine.difference(&owned).collect::<Vec<_>>(),
                        owned.difference(&mine).collect::<Vec<_>>(),
                    );
                }
                panic!("not within {PATIENCE:?}: {what}\n{report}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The shards some replica other than their owner in `assignment`
    /// held a term of since `since`.
    fn shards_owned_by_others_since(
        &self,
        assignment: &Assignment,
        since: Instant,
    ) -> BTreeSet<u32> {
        (0..)
            .zip(&self.recorders)
            .filter(|(shard, recorder)| {
                recorder.intervals().iter().any(|i| {
                    i.end.is_none_or(|end| end > since)
                        && Some(i.who.as_str()) != assignment.owner(*shard)
                        && i.start >= since
                })
            })
            .map(|(shard, _)| shard)
            .collect()
    }

    /// Every term of the shards in `shards` that overlaps `since` or
    /// starts after it: who, and from when to when (relative to `since`).
    fn terms_since(&self, shards: &BTreeSet<u32>, since: Instant) -> String {
        let mut report = String::new();
        for (shard, recorder) in (0..).zip(&self.recorders) {
            if !shards.contains(&shard) {
                continue;
            }
            for i in recorder.intervals() {
                if i.end.is_none_or(|end| end > since) {
                    let _ = writeln!(
                        report,
                        "shard {shard}: {} from {:?} to {:?}",
                        i.who,
                        i.start.checked_duration_since(since),
                        i.end.map(|end| end.saturating_duration_since(since)),
                    );
                }
            }
        }
        report
    }

    fn assert_no_shard_owned_twice(&self) {
        for recorder in &self.recorders {
            recorder.assert_no_overlap();
        }
    }

    /// For each shard whose owner changed since `since`: the time from the
    /// end of the old owner's term to the start of the new one's.
    fn gaps_since(&self, since: Instant) -> Vec<Duration> {
        self.recorders
            .iter()
            .filter_map(|recorder| {
                let mut all = recorder.intervals();
                all.sort_by_key(|i| i.start);
                let later = all.iter().rposition(|i| i.start >= since)?;
                let earlier: &Interval = all[..later].last()?;
                Some(
                    all[later]
                        .start
                        .saturating_duration_since(earlier.end.unwrap_or(all[later].start)),
                )
            })
            .collect()
    }

    /// How many terms of any shard were recorded.
    fn term_count(&self) -> usize {
        self.recorders.iter().map(|r| r.intervals().len()).sum()
    }

    async fn shut_down(self) {
        for (_, handle) in self.replicas {
            handle.shutdown().await.expect("a clean leave");
        }
    }
}

fn describe(gaps: &[Duration]) -> String {
    let mut sorted = gaps.to_vec();
    sorted.sort();
    match (sorted.first(), sorted.last()) {
        (Some(min), Some(max)) => format!(
            "{} shards moved, gap min {min:?}, median {:?}, max {max:?}",
            sorted.len(),
            sorted[sorted.len() / 2]
        ),
        _ => "no shard moved".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_own_exactly_their_balanced_share_for_several_shard_and_replica_counts() {
    let target = Target::new().await;
    for (shards, replicas) in [(1, 2), (8, 1), (8, 3), (16, 5), (64, 4)] {
        let mut fleet = Fleet::new(&target, shards);
        for i in 0..replicas {
            fleet.join(&format!("replica-{i}"));
        }
        fleet
            .balanced(&format!("{shards} shards over {replicas} replicas"))
            .await;
        let loads: Vec<usize> = fleet
            .replicas
            .iter()
            .map(|(_, h)| h.owned().len())
            .collect();
        let (floor, ceil) = (
            shards as usize / replicas,
            shards.div_ceil(replicas as u32) as usize,
        );
        assert!(
            loads.iter().all(|&l| l == floor || l == ceil),
            "N={shards} M={replicas}: {loads:?}"
        );
        for (_, handle) in &fleet.replicas {
            assert_eq!(
                handle.assignment(),
                fleet.assignment(),
                "every replica computes alike"
            );
        }
        fleet.assert_no_shard_owned_twice();
        fleet.shut_down().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_moves_only_what_the_assignment_moves_by_handover_and_a_leave_likewise() {
    let target = Target::new().await;
    let mut fleet = Fleet::new(&target, 16);
    for name in ["a", "b", "c"] {
        fleet.join(name);
    }
    fleet.balanced("three replicas share 16 shards").await;
    let before = fleet.assignment();

    let joined = Instant::now();
    fleet.join("d");
    fleet.balanced("a fourth replica gets its share").await;
    let after = fleet.assignment();
    let moved: BTreeSet<u32> = (0..16)
        .filter(|&s| before.owner(s) != after.owner(s))
        .collect();
    let others = fleet.shards_owned_by_others_since(&before, joined);
    assert_eq!(
        others,
        moved,
        "exactly the shards the assignment moves were owned by another replica; \
         their terms since d joined:\n{}",
        fleet.terms_since(&others.union(&moved).copied().collect(), joined)
    );
    assert!(moved.len() >= after.shards_of("d").count());
    let gaps = fleet.gaps_since(joined);
    eprintln!("join: {}", describe(&gaps));
    fleet.assert_no_shard_owned_twice();

    // A graceful leave hands b's shards to their next owners.
    let left = Instant::now();
    let b = fleet.take("b");
    b.shutdown().await.expect("b leaves cleanly");
    fleet.balanced("three replicas take over b's shards").await;
    let gaps = fleet.gaps_since(left);
    eprintln!("leave: {}", describe(&gaps));
    let last = fleet.assignment();
    let moved: BTreeSet<u32> = (0..16)
        .filter(|&s| after.owner(s) != last.owner(s))
        .collect();
    let others = fleet.shards_owned_by_others_since(&after, left);
    assert_eq!(
        others,
        moved,
        "exactly the shards the assignment moves were owned by another replica; \
         their terms since b left:\n{}",
        fleet.terms_since(&others.union(&moved).copied().collect(), left)
    );
    fleet.assert_no_shard_owned_twice();
    fleet.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_report_each_shard_acquired_and_released() {
    use futures::StreamExt;
    let target = Target::new().await;
    let mut fleet = Fleet::new(&target, 4);
    fleet.join("solo");
    fleet.balanced("one replica owns every shard").await;
    let mut events = fleet.replicas[0].1.events();
    let mut acquired = BTreeSet::new();
    for _ in 0..4 {
        match tokio::time::timeout(PATIENCE, events.next())
            .await
            .expect("an event")
        {
            Some(ShardEvent::ShardAcquired { shard, .. }) => assert!(acquired.insert(shard)),
            other => panic!("expected an acquisition, got {other:?}"),
        }
    }
    fleet.join("second");
    fleet.balanced("a second replica takes half").await;
    let mut released = BTreeSet::new();
    while released.len() < 2 {
        match tokio::time::timeout(PATIENCE, events.next())
            .await
            .expect("an event")
        {
            Some(ShardEvent::ShardReleased { shard }) => assert!(released.insert(shard)),
            other => panic!("expected a release, got {other:?}"),
        }
    }
    let second: BTreeSet<u32> = fleet.assignment().shards_of("second").collect();
    assert_eq!(
        released, second,
        "the shards that moved are the released ones"
    );
    fleet.shut_down().await;
}

/// Sleeps `window` in ticks of 50 ms; how many ticks woke over 100 ms late.
async fn late_ticks_in(window: Duration) -> u32 {
    let tick = Duration::from_millis(50);
    let end = Instant::now() + window;
    let mut late = 0;
    while Instant::now() < end {
        let due = Instant::now() + tick;
        tokio::time::sleep_until(due).await;
        if Instant::now().saturating_duration_since(due) > Duration::from_millis(100) {
            late += 1;
        }
    }
    late
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_owners_send_no_request_in_the_steady_state_and_owners_only_renew() {
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        support::skip("request counts");
        return;
    };
    let mut fleet = Fleet::new(&target, 16);
    for name in ["p", "q", "r", "s"] {
        fleet.join(name);
    }
    // A window counts only if nothing changed in it: on a loaded machine
    // a renew may time out, and the reads after it are not the steady state.
    let window = Duration::from_secs(3);
    let mut report = String::new();
    for attempt in 1..=5 {
        fleet.balanced("four replicas share 16 shards").await;
        let terms = fleet.term_count();
        server.reset_counts();
        // A window also counts only if this runtime kept time in it: on a
        // machine too loaded to run a timer within 100 ms, watch events are
        // as late, and a silent watch is rightly distrusted (reads, lists).
        let late = late_ticks_in(window).await;
        let counts = server.requests();
        if fleet.term_count() != terms || !fleet.is_balanced() || late > 0 {
            eprintln!("window {attempt} was not steady ({late} late ticks); again");
            continue;
        }
        report.clear();
        for (id, handle) in &fleet.replicas {
            let owned = handle.owned().len() as u64;
            let updates = counts.get(id, Verb::Update);
            let others: u64 = [
                Verb::Get,
                Verb::List,
                Verb::Create,
                Verb::Patch,
                Verb::Delete,
            ]
            .into_iter()
            .map(|verb| counts.get(id, verb))
            .sum();
            let _ = writeln!(
                report,
                "{id}: owns {owned}, {updates} renews in {window:?} ({:.1}/s), {others} other requests",
                updates as f64 / window.as_secs_f64()
            );
            assert_eq!(others, 0, "{id} sent only renews:\n{report}");
            // Renews of its shards and its member Lease, one each a retry
            // period (the window holds six, and its edges may add one).
            assert!(updates <= (owned + 1) * 7, "{report}");
        }
        break;
    }
    assert!(!report.is_empty(), "no steady window in five");
    eprintln!("{report}");
    fleet.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_replicas_shards_are_taken_once_its_member_lease_expires() {
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        support::skip("a partition that stands for a crash");
        return;
    };
    let mut fleet = Fleet::new(&target, 12);
    for name in ["x", "y", "z"] {
        fleet.join(name);
    }
    fleet.balanced("three replicas share 12 shards").await;
    // From the server's side a crash: nothing of z's arrives any more.
    let crashed = Instant::now();
    server.partition(FaultTarget::Client("z".into()));
    let z = fleet.take("z");
    fleet.balanced("x and y take over z's shards").await;
    let after = crashed.elapsed();
    eprintln!(
        "crash: every shard owned again {after:?} after the crash (lease {LEASE:?}); {}",
        describe(&fleet.gaps_since(crashed))
    );
    fleet.assert_no_shard_owned_twice();
    drop(z);
    fleet.shut_down().await;
}

// === Chaos ===

/// xorshift64*, so that a seed replays the same schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }
}

/// One schedule: replicas join, leave, crash and are partitioned (and
/// healed), for `length`; then the faults stop and the fleet must settle
/// into balance. No shard may be owned twice at any instant throughout.
async fn chaos(seed: u64, length: Duration) {
    let target = Target::new().await;
    let server = target.embedded().expect("the embedded server");
    let mut fleet = Fleet::new(&target, 8);
    let mut rng = Rng(seed | 1);
    let mut log = String::new();
    let started = Instant::now();
    let mut spawned = 0;
    let mut partitioned: Vec<String> = Vec::new();
    let mut crashed: Vec<ShardedHandle> = Vec::new();
    for _ in 0..3 {
        spawned += 1;
        fleet.join(&format!("chaos-{spawned}"));
    }
    while started.elapsed() < length {
        let at = started.elapsed().as_secs_f64();
        let count = fleet.replicas.len();
        match rng.below(5) {
            0 if count < 5 => {
                spawned += 1;
                let id = format!("chaos-{spawned}");
                let _ = writeln!(log, "{at:7.3}s join {id}");
                fleet.join(&id);
            }
            1 if count > 1 => {
                let id = fleet.identities()[rng.below(count)].clone();
                let _ = writeln!(log, "{at:7.3}s graceful leave of {id}");
                partitioned.retain(|p| p != &id);
                server.heal(FaultTarget::Client(id.clone()));
                let handle = fleet.take(&id);
                tokio::spawn(handle.shutdown());
            }
            2 if count > 1 => {
                let id = fleet.identities()[rng.below(count)].clone();
                let _ = writeln!(log, "{at:7.3}s crash of {id}");
                partitioned.retain(|p| p != &id);
                server.partition(FaultTarget::Client(id.clone()));
                crashed.push(fleet.take(&id));
            }
            3 => {
                let id = fleet.identities()[rng.below(count)].clone();
                let _ = writeln!(log, "{at:7.3}s partition {id}");
                server.partition(FaultTarget::Client(id.clone()));
                partitioned.push(id);
            }
            _ if !partitioned.is_empty() => {
                let id = partitioned.remove(rng.below(partitioned.len()));
                let _ = writeln!(log, "{at:7.3}s heal {id}");
                server.heal(FaultTarget::Client(id));
            }
            _ => {}
        }
        let pause = Duration::from_millis(200 + rng.next() % 1800);
        tokio::time::sleep(pause).await;
    }
    let _ = writeln!(log, "{:7.3}s faults stop", started.elapsed().as_secs_f64());
    for id in partitioned {
        server.heal(FaultTarget::Client(id));
    }
    for recorder in &fleet.recorders {
        if let Some(overlap) = recorder.overlap() {
            panic!("seed {seed}: a shard owned twice: {overlap}\n{log}");
        }
    }
    let settled = tokio::time::timeout(PATIENCE, async {
        while !fleet.is_balanced() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "seed {seed}: no balance once the faults stopped\n{log}"
    );
    for recorder in &fleet.recorders {
        if let Some(overlap) = recorder.overlap() {
            panic!("seed {seed}: a shard owned twice: {overlap}\n{log}");
        }
    }
    eprintln!("seed {seed}: no shard owned twice\n{log}");
    drop(crashed);
    fleet.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_shard_is_owned_twice_while_replicas_join_leave_crash_and_are_partitioned() {
    let target = Target::new().await;
    if target.embedded().is_none() {
        support::skip("faults aimed at one client");
        return;
    }
    drop(target);
    if let Ok(seed) = std::env::var("KUBE_ELECTOR_CHAOS_SEED") {
        chaos(seed.parse().expect("a number"), Duration::from_secs(20)).await;
    } else if std::env::var("KUBE_ELECTOR_CHAOS").as_deref() == Ok("long") {
        for seed in 1..=10 {
            chaos(seed, Duration::from_secs(60)).await;
        }
    } else {
        chaos(7, Duration::from_secs(15)).await;
    }
}

// === Membership: settings that differ, members that do not serve ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_shard_count_under_one_prefix_never_owns_a_key_twice_and_the_new_count_takes_over_once_the_old_has_left()
 {
    let target = Target::new().await;
    let keys = shard_keys::keys(256);
    let mut fleet = Fleet::new(&target, 16);
    fleet.join("old-a");
    fleet.join("old-b");
    fleet.balanced("two replicas of 16 shards").await;
    // A rolling upgrade to 32 shards: replicas of the new count join.
    fleet.join_with("new-a", 32);
    fleet.join_with("new-b", 32);
    let all_16: BTreeSet<u32> = (0..16).collect();
    let all_32: BTreeSet<u32> = (0..32).collect();
    // While both counts run, one side serves (the old one, there first);
    // settled, or a key owned twice, whichever comes first.
    let settled = tokio::time::timeout(PATIENCE, async {
        loop {
            // The new replicas have joined and say what blocks them.
            let old_serves = fleet.owned_by(&["old-a", "old-b"]) == all_16
                && fleet.owned_by(&["new-a", "new-b"]).is_empty()
                && ["new-a", "new-b"]
                    .iter()
                    .all(|id| fleet.handle(id).blocked().is_some());
            if old_serves || !fleet.keys.keys_owned_twice(&keys).is_empty() {
                return old_serves;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let twice = fleet.keys.keys_owned_twice(&keys);
    assert!(
        twice.is_empty(),
        "{} of {} keys owned by two replicas at once: {twice:#?}",
        twice.len(),
        keys.len()
    );
    assert_eq!(
        settled,
        Ok(true),
        "while both counts run, the old count owns its 16 shards and the new none, and says why"
    );
    for id in ["new-a", "new-b"] {
        let why = fleet.handle(id).blocked();
        assert!(
            why.as_deref().is_some_and(|why| why.contains("16")),
            "{id} says why it owns nothing: {why:?}"
        );
    }
    assert_eq!(fleet.handle("old-a").blocked(), None);
    // The old replicas leave, one after the other: the new count takes over.
    let left = Instant::now();
    fleet.take("old-a").shutdown().await.expect("a clean leave");
    fleet.take("old-b").shutdown().await.expect("a clean leave");
    eventually("the new count owns its 32 shards", PATIENCE, || {
        fleet.owned_by(&["new-a", "new-b"]) == all_32
    })
    .await;
    assert_eq!(fleet.handle("new-a").blocked(), None);
    eprintln!(
        "count change: the new count owned every shard {:?} after the last old replica left (lease {LEASE:?})",
        left.elapsed()
    );
    let twice = fleet.keys.keys_owned_twice(&keys);
    assert!(twice.is_empty(), "keys owned twice: {twice:#?}");
    fleet.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_one_identity_never_own_a_key_at_once() {
    let target = Target::new().await;
    let keys = shard_keys::keys(256);
    let mut fleet = Fleet::new(&target, 8);
    fleet.join("other");
    fleet.join("twin");
    fleet.balanced("two replicas share 8 shards").await;
    // A second instance of "twin" (a StatefulSet pod and its replacement),
    // recorded apart.
    let hub = LeaseHub::new(target.client_for("twin-again"));
    let again = ShardedElector::in_hub(&hub, fleet.config("twin"))
        .expect("a valid configuration")
        .spawn();
    fleet
        .keys
        .watch(again.subscribe(), "twin (second instance)", 8);
    // Both instances run side by side for a lease duration (the attack,
    // not a wait for an event); then the first leaves, and the second must
    // wait its terms out before it owns anything.
    tokio::time::sleep(LEASE).await;
    fleet.take("twin").shutdown().await.expect("a clean leave");
    let all: BTreeSet<u32> = (0..8).collect();
    eventually(
        "the other replica and the second twin own every shard",
        PATIENCE,
        || {
            fleet
                .owned_by(&["other"])
                .union(&again.owned().shards().collect())
                .copied()
                .collect::<BTreeSet<u32>>()
                == all
        },
    )
    .await;
    let twice = fleet.keys.keys_owned_twice(&keys);
    assert!(twice.is_empty(), "keys owned twice: {twice:#?}");
    again.shutdown().await.expect("a clean leave");
    fleet.shut_down().await;
}

/// Holds and renews the member Lease of `identity` with no replica behind
/// it, as an outside writer, until the returned token is cancelled.
fn outside_member(
    client: kube::Client,
    namespace: &str,
    lease: String,
    identity: &str,
) -> tokio_util::sync::CancellationToken {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use kube::api::{Api, ObjectMeta, PostParams};
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let token = tokio_util::sync::CancellationToken::new();
    let stop = token.clone();
    let identity = identity.to_owned();
    tokio::spawn(async move {
        let now = MicroTime(jiff::Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(lease.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(identity),
                lease_duration_seconds: Some(LEASE.as_secs() as i32),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        api.create(&PostParams::default(), &lease)
            .await
            .expect("the outside writer creates the member Lease");
        while !stop.is_cancelled() {
            tokio::time::sleep(RETRY).await;
            if let Ok(mut current) = api.get(&lease_name(&lease)).await {
                if let Some(spec) = current.spec.as_mut() {
                    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
                }
                let _ = api
                    .replace(&lease_name(&lease), &PostParams::default(), &current)
                    .await;
            }
        }
    });
    token
}

fn lease_name(lease: &k8s_openapi::api::coordination::v1::Lease) -> String {
    lease.metadata.name.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_lease_renewed_with_no_replica_behind_it_loses_its_shards_to_members_that_serve() {
    let target = Target::new().await;
    let mut fleet = Fleet::new(&target, 8);
    fleet.join("a");
    fleet.join("b");
    fleet.balanced("two replicas share 8 shards").await;
    let ghost = outside_member(
        target.client_for("outsider"),
        target.namespace(),
        format!("{}-member-ghost", fleet.prefix),
        "ghost",
    );
    eventually("the replicas count the ghost as a member", PATIENCE, || {
        fleet
            .replicas
            .iter()
            .all(|(_, h)| h.assignment().members().iter().any(|m| &**m == "ghost"))
    })
    .await;
    let joined = Instant::now();
    let all: BTreeSet<u32> = (0..8).collect();
    eventually(
        "every shard owned again by a replica that serves",
        PATIENCE,
        || fleet.owned_by(&["a", "b"]) == all,
    )
    .await;
    eprintln!(
        "a member that serves nothing: every shard owned again {:?} after it was counted (lease {LEASE:?})",
        joined.elapsed()
    );
    fleet.assert_no_shard_owned_twice();
    ghost.cancel();
    fleet.shut_down().await;
}

// === What users gate work on ===

/// Whether `handle` reports any shard as its own in any of the forms a
/// user can gate work on; the forms that still do, named.
fn claims(handle: &ShardedHandle, shards: u32) -> Vec<String> {
    use futures::FutureExt;
    let owned = handle.owned();
    let mut out = Vec::new();
    let len = owned.len();
    if len != 0 {
        out.push(format!("owned().len() = {len}"));
    }
    if !owned.is_empty() {
        out.push("!owned().is_empty()".into());
    }
    if owned.shards().next().is_some() {
        out.push(format!(
            "owned().shards() = {:?}",
            owned.shards().collect::<Vec<_>>()
        ));
    }
    for shard in 0..shards {
        if owned.contains(shard) {
            out.push(format!("owned().contains({shard})"));
        }
        if owned.term(shard).is_some() {
            out.push(format!("owned().term({shard})"));
        }
        if handle.subscribe().borrow().contains(shard) {
            out.push(format!("subscribe() contains {shard}"));
        }
        if handle.leadership(shard).is_some() {
            out.push(format!("leadership({shard})"));
        }
        let view = handle.shard(shard).expect("a shard");
        if let Some(Ok(_)) = view.became_leader().now_or_never() {
            out.push(format!("shard({shard}).became_leader()"));
        }
        if let Some(Ok(_)) = handle.became_owner(shard).now_or_never() {
            out.push(format!("became_owner({shard})"));
        }
    }
    for i in 0..64 {
        if handle.owns_key(&format!("ns/object-{i}")) {
            out.push(format!("owns_key(ns/object-{i})"));
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_runtime_is_blocked_claims_no_shard_in_any_form_once_its_terms_are_over() {
    use futures::StreamExt;
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        support::skip("a runtime blocked in a thread of its own, on the embedded server");
        return;
    };
    let shards = 4;
    let fleet = Fleet::new(&target, shards);
    let config = fleet.config("blocked");
    let kube_config = server.kube_config_for("blocked");
    let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
    let (block_tx, block_rx) = tokio::sync::oneshot::channel::<()>();
    // Unblocks the runtime once the test has seen what it checks (a
    // sleep of a fixed length ran out first on a loaded machine).
    let (unblock_tx, unblock_rx) = std::sync::mpsc::channel::<()>();
    let blocked = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let client = kube::Client::try_from(kube_config).unwrap();
            let handle = ShardedElector::new(client, config).unwrap().spawn();
            let _ = handle_tx.send(handle);
            block_rx.await.unwrap();
            // Work that blocks the runtime until the test is done (or,
            // should the test fail first, for a minute).
            let _ = unblock_rx.recv_timeout(std::time::Duration::from_secs(60));
        });
    });
    let a = timeout_or(PATIENCE, handle_rx, "the blocked replica's handle")
        .await
        .unwrap();
    eventually("the replica owns every shard", PATIENCE, || {
        a.owned().len() == shards as usize && (0..shards).all(|s| a.owned().contains(s))
    })
    .await;
    let mut events = a.events();
    for _ in 0..shards {
        let event = timeout_or(PATIENCE, events.next(), "an acquisition").await;
        assert!(
            matches!(event, Some(ShardEvent::ShardAcquired { .. })),
            "{event:?}"
        );
    }
    block_tx.send(()).unwrap();
    let hub = LeaseHub::new(target.client_for("b"));
    let b = ShardedElector::in_hub(&hub, fleet.config("b"))
        .expect("a valid configuration")
        .spawn();
    eventually("b owns every shard", PATIENCE, || {
        (0..shards).all(|s| b.owned().contains(s))
    })
    .await;
    let stale = claims(&a, shards);
    assert!(
        stale.is_empty(),
        "while b owns every shard, the blocked replica still claims: {stale:?}"
    );
    let mut released = BTreeSet::new();
    while released.len() < shards as usize {
        match timeout_or(
            PATIENCE,
            events.next(),
            "a ShardReleased past the terms' deadlines",
        )
        .await
        {
            Some(ShardEvent::ShardReleased { shard }) => {
                released.insert(shard);
            }
            other => panic!("expected a release, got {other:?}"),
        }
    }
    assert!(
        !blocked.is_finished(),
        "the releases came only once the runtime ran again, not at the terms' deadlines"
    );
    unblock_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || blocked.join().unwrap())
        .await
        .unwrap();
    drop(a);
    b.shutdown().await.unwrap();
}

/// `future`'s output, or a panic naming `what` after `patience`.
async fn timeout_or<F: Future>(patience: Duration, future: F, what: &str) -> F::Output {
    tokio::time::timeout(patience, future)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {patience:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_shard_waits_for_its_guards_up_to_the_drain_timeout_and_is_then_handed_over_with_the_guard_reporting_not_leading()
 {
    let target = Target::new().await;
    let mut fleet = Fleet::new(&target, 2);
    fleet.join("a");
    fleet.balanced("a owns both shards").await;
    // Work on every shard that never returns and holds its guard.
    let guards: Vec<_> = (0..2)
        .map(|shard| fleet.handle("a").leadership(shard).expect("a owns it"))
        .collect();
    let joined = Instant::now();
    fleet.join("b");
    let moved = fleet
        .assignment()
        .shards_of("b")
        .next()
        .expect("b gets a shard");
    let guard = &guards[moved as usize];
    eventually("b owns the moved shard", PATIENCE, || {
        fleet.handle("b").owned().contains(moved)
    })
    .await;
    let waited = joined.elapsed();
    // The guard is still held: the shard moved anyway, after the drain
    // timeout, and the guard says so.
    assert!(
        guard.token().is_cancelled() && !guard.is_leading(),
        "the old owner's guard still says it leads while b owns the shard"
    );
    assert!(
        waited >= Duration::from_secs(1),
        "the move waited for the guard the drain timeout (1 s), not {waited:?}"
    );
    fleet.assert_no_shard_owned_twice();
    drop(guards);
    fleet.shut_down().await;
}

/// An outside writer takes a shard's Lease: its owner stops owning the
/// shard (and its keys) once it sees the record, no replica takes the
/// shard before the intruder's record has expired, and then one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_takeover_of_a_shard_lease_is_waited_out_and_no_key_is_owned_twice() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use kube::api::{Api, PostParams};

    let target = Target::new().await;
    let keys = shard_keys::keys(256);
    let mut fleet = Fleet::new(&target, 4);
    fleet.join("a");
    fleet.join("b");
    fleet.balanced("two replicas share 4 shards").await;
    let owner = if fleet.handle("a").owned().contains(0) {
        "a"
    } else {
        "b"
    };
    let api: Api<Lease> = Api::namespaced(target.client_for("outside"), target.namespace());
    let name = format!("{}-0", fleet.prefix);
    let taken_at = loop {
        let mut lease = api.get(&name).await.expect("shard 0's Lease");
        let spec = lease.spec.get_or_insert_with(Default::default);
        spec.holder_identity = Some("intruder".into());
        spec.lease_duration_seconds = Some(i32::try_from(LEASE.as_secs()).unwrap());
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        let sent = Instant::now();
        match api.replace(&name, &PostParams::default(), &lease).await {
            Ok(_) => break sent,
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("the outside write failed: {e}"),
        }
    };
    eventually("the owner sees that it lost shard 0", PATIENCE, || {
        !fleet.handle(owner).owned().contains(0)
    })
    .await;
    eventually("a replica owns shard 0 again", PATIENCE, || {
        !fleet
            .owned_by(&["a", "b"])
            .is_disjoint(&BTreeSet::from([0]))
    })
    .await;
    let terms = fleet.recorders[0].intervals();
    let after: Vec<&Interval> = terms.iter().filter(|i| i.start > taken_at).collect();
    assert!(
        after.iter().all(|i| i.start >= taken_at + LEASE),
        "shard 0 was taken before the intruder's record expired: {terms:#?}"
    );
    let twice = fleet.keys.keys_owned_twice(&keys);
    assert!(twice.is_empty(), "keys owned twice: {twice:#?}");
    fleet.assert_no_shard_owned_twice();
    fleet.shut_down().await;
}
