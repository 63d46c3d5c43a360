//! Behaviour of `LeaderElector` over real HTTP: against the embedded Lease API
//! server, or a real cluster when `KUBE_ELECTOR_TEST_KUBECONFIG` is set (tests
//! that need fault injection or request counts then skip).

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::SignedDuration;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube_elector::{
    ElectorConfig, ElectorHandle, LeaderElector, LeaderEvent, LeaderEvents, ShutdownOutcome,
    clock::SkewedClock,
};
use kube_elector_testing::{FaultTarget, Verb};
use tokio::time::{Instant, timeout};

use support::Target;
use support::recorder::Recorder;

/// Short timings so elections happen within a test's patience: a follower
/// waits 2 s from its observation; a leader stops 1 s after its last
/// successful renew was sent.
const LEASE: Duration = Duration::from_secs(2);
const RENEW_DEADLINE: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_millis(250);
/// The longest any single wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(20);

fn config(lease: &str, namespace: &str, identity: &str) -> ElectorConfig {
    ElectorConfig::new(lease)
        .namespace(namespace)
        .identity(identity)
        .lease_duration(LEASE)
        .renew_deadline(RENEW_DEADLINE)
        .retry_period(RETRY)
}

fn spawn(target: &Target, lease: &str, identity: &str) -> ElectorHandle {
    spawn_with(
        target,
        config(lease, target.namespace(), identity),
        identity,
    )
}

fn spawn_with(target: &Target, config: ElectorConfig, identity: &str) -> ElectorHandle {
    LeaderElector::new(target.client_for(identity), config)
        .expect("valid config")
        .spawn()
}

async fn next_event(events: &mut LeaderEvents, what: &str) -> LeaderEvent {
    timeout(PATIENCE, events.next())
        .await
        .unwrap_or_else(|_| panic!("no event within {PATIENCE:?} while waiting for {what}"))
        .unwrap_or_else(|| panic!("event stream ended while waiting for {what}"))
}

async fn wait_for(events: &mut LeaderEvents, wanted: &LeaderEvent) {
    let what = format!("{wanted:?}");
    while next_event(events, &what).await != *wanted {}
}

/// Waits until one of `electors` leads and returns its index.
async fn leader_of(electors: &[ElectorHandle]) -> usize {
    leader_except(electors, None).await
}

/// Waits until one of `electors` other than `except` leads.
async fn leader_except(electors: &[ElectorHandle], except: Option<usize>) -> usize {
    let deadline = Instant::now() + PATIENCE;
    let mut receivers: Vec<_> = electors.iter().map(|e| e.subscribe()).collect();
    loop {
        let found = receivers
            .iter()
            .enumerate()
            .position(|(i, rx)| Some(i) != except && rx.borrow().is_leader());
        if let Some(i) = found {
            return i;
        }
        let changes = receivers
            .iter_mut()
            .map(|rx| Box::pin(rx.changed()))
            .collect::<Vec<_>>();
        tokio::time::timeout_at(deadline, futures::future::select_all(changes))
            .await
            .expect("no elector became leader in time")
            .0
            .expect("an elector stopped");
    }
}

// === 1. Mutual exclusion ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_electors_never_lead_at_once_under_latency_and_partitions() {
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        return support::skip("needs fault injection");
    };
    let lease = support::unique_name("mutex");
    server.set_latency(FaultTarget::All, Duration::from_millis(40));
    let recorder = Recorder::default();
    let electors: Vec<_> = (0..5)
        .map(|i| spawn(&target, &lease, &format!("mutex-{i}")))
        .collect();
    for e in &electors {
        recorder.watch(e);
    }

    // Cut the leader off three times; each time another must take over.
    for _ in 0..3 {
        let leader = leader_of(&electors).await;
        let id = electors[leader].identity().to_owned();
        recorder.term_of(&id, false).await;
        let mut events = electors[leader].events();
        server.partition(FaultTarget::Client(id.clone()));
        wait_for(&mut events, &LeaderEvent::StoppedLeading).await;
        leader_except(&electors, Some(leader)).await;
        server.heal(FaultTarget::Client(id));
    }
    // The first leader and three successors.
    recorder.wait_terms(4).await;
    recorder.assert_no_overlap();
    for e in electors {
        e.shutdown().await.expect("clean shutdown");
    }
    recorder.assert_no_overlap();
}

// === 2. Graceful handover ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_leader_stops_before_the_next_one_starts() {
    let target = Target::new().await;
    let lease = support::unique_name("handover");
    let recorder = Recorder::default();
    let mut electors: Vec<_> = (0..3)
        .map(|i| spawn(&target, &lease, &format!("handover-{i}")))
        .collect();
    for e in &electors {
        recorder.watch(e);
    }
    let leader = leader_of(&electors).await;
    let old = electors.remove(leader);
    let old_id = old.identity().to_owned();
    // The recorder must have seen the term before it ends.
    recorder.term_of(&old_id, false).await;

    let outcome = old.shutdown().await.expect("shutdown");
    assert_eq!(outcome, ShutdownOutcome::Released);
    let next = leader_of(&electors).await;

    let old_term = recorder.term_of(&old_id, true).await;
    let new_term = recorder.term_of(electors[next].identity(), false).await;
    let old_end = old_term.end.expect("the old leader's term ended");
    assert!(
        old_end <= new_term.start,
        "the old leader stopped at {old_end:?}, after the new one started at {:?}",
        new_term.start
    );
    recorder.assert_no_overlap();
}

// === 3. Crash takeover ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_leader_is_replaced_only_after_its_lease_expires() {
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        return support::skip("needs fault injection");
    };
    let lease = support::unique_name("crash");
    let api: Api<Lease> = Api::namespaced(target.client_for("observer"), target.namespace());
    let recorder = Recorder::default();
    let electors: Vec<_> = (0..2)
        .map(|i| spawn(&target, &lease, &format!("crash-{i}")))
        .collect();
    for e in &electors {
        recorder.watch(e);
    }
    let leader = leader_of(&electors).await;
    let follower = 1 - leader;
    recorder.term_of(electors[leader].identity(), false).await;

    // The leader's requests now hang: it stops renewing, as if it were frozen.
    // Requests already past the fault may still land, so read the Lease
    // afterwards: its renewTime is no later than the last renew sent.
    server.hang(FaultTarget::Client(electors[leader].identity().to_owned()));
    let last_renew = api
        .get(&lease)
        .await
        .expect("lease")
        .spec
        .unwrap()
        .renew_time
        .unwrap()
        .0;
    let (clock_instant, clock_wall) = (Instant::now(), jiff::Timestamp::now());
    let mut events = electors[follower].events();
    wait_for(&mut events, &LeaderEvent::StartedLeading).await;

    let term_start = recorder
        .term_of(electors[follower].identity(), false)
        .await
        .start;
    // The follower's start on the wall clock of this one machine.
    let started_wall = clock_wall + SignedDuration::try_from(term_start - clock_instant).unwrap();
    let waited = started_wall.duration_since(last_renew);
    assert!(
        waited >= SignedDuration::try_from(LEASE).unwrap(),
        "took over {waited:?} after the last renew was sent, before the lease duration ({LEASE:?})"
    );
    server.release(FaultTarget::Client(electors[leader].identity().to_owned()));
    recorder.assert_no_overlap();
}

// === 4. Renew deadline ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_leader_stops_before_anyone_takes_over_and_rejoins_after_heal() {
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        return support::skip("needs fault injection");
    };
    let lease = support::unique_name("partition");
    let recorder = Recorder::default();
    let electors: Vec<_> = (0..2)
        .map(|i| spawn(&target, &lease, &format!("partition-{i}")))
        .collect();
    for e in &electors {
        recorder.watch(e);
    }
    let leader = leader_of(&electors).await;
    let follower = 1 - leader;
    recorder.term_of(electors[leader].identity(), false).await;
    let leader_id = electors[leader].identity().to_owned();
    let mut leader_events = electors[leader].events();
    let mut follower_events = electors[follower].events();

    server.partition(FaultTarget::Client(leader_id.clone()));
    wait_for(&mut leader_events, &LeaderEvent::StoppedLeading).await;
    wait_for(&mut follower_events, &LeaderEvent::StartedLeading).await;
    recorder.assert_no_overlap();
    let old = recorder.term_of(&leader_id, true).await;
    let new = recorder.term_of(electors[follower].identity(), false).await;
    let old_end = old.end.expect("old leader stopped");
    assert!(old_end <= new.start);

    // After the partition heals, the old leader follows the new one.
    server.heal(FaultTarget::Client(leader_id));
    wait_for(
        &mut leader_events,
        &LeaderEvent::NewLeader {
            identity: Some(electors[follower].identity().to_owned()),
        },
    )
    .await;
    assert!(!electors[leader].is_leader());
    assert!(electors[follower].is_leader());
}

// === 5. Clock skew ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_of_clock_skew_neither_steals_nor_loses_a_lease() {
    let target = Target::new().await;
    for (leader_skew, follower_skew) in [(1, -1), (-1, 1)] {
        let lease = support::unique_name("skew");
        let skewed = |id: &str, hours: i64| {
            let cfg = config(&lease, target.namespace(), id).clock(Arc::new(SkewedClock::new(
                SignedDuration::from_hours(hours),
            )));
            spawn_with(&target, cfg, id)
        };
        let leader = skewed(&format!("skew-leader{leader_skew}"), leader_skew);
        drop(leader.became_leader().await.expect("first elector leads"));
        let follower = skewed(&format!("skew-follower{follower_skew}"), follower_skew);
        let mut leader_events = leader.events();
        // The stream starts with the current state: this term's start.
        wait_for(&mut leader_events, &LeaderEvent::StartedLeading).await;
        let mut follower_events = follower.events();
        wait_for(
            &mut follower_events,
            &LeaderEvent::NewLeader {
                identity: Some(leader.identity().to_owned()),
            },
        )
        .await;
        // Three lease durations: long enough for any skew-based expiry to show.
        let watch_for = LEASE * 3;
        let mut changes = futures::stream::select(
            leader_events.map(|e| ("leader", e)),
            follower_events.map(|e| ("follower", e)),
        );
        let seen = timeout(watch_for, async {
            loop {
                match changes.next().await {
                    Some(
                        (_, LeaderEvent::StartedLeading) | ("leader", LeaderEvent::StoppedLeading),
                    ) => {
                        break changes;
                    }
                    Some(_) => {}
                    None => std::future::pending().await,
                }
            }
        })
        .await;
        assert!(
            seen.is_err(),
            "leader skew {leader_skew}h / follower skew {follower_skew}h changed leadership"
        );
        assert!(leader.is_leader() && !follower.is_leader());
        leader.shutdown().await.unwrap();
        follower.shutdown().await.unwrap();
    }
}

// === 6. The Lease deleted, or taken by an outside writer ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_notices_its_lease_deleted() {
    let target = Target::new().await;
    let lease = support::unique_name("deleted");
    let api: Api<Lease> = Api::namespaced(target.client_for("admin"), target.namespace());
    let elector = spawn(&target, &lease, "deleted-0");
    let mut events = elector.events();
    wait_for(&mut events, &LeaderEvent::StartedLeading).await;
    let first = elector.became_leader().await.unwrap();
    let uid = api.get(&lease).await.unwrap().metadata.uid;
    api.delete(&lease, &DeleteParams::default()).await.unwrap();
    // The term ends the moment the deletion is seen...
    timeout(PATIENCE, first.lost())
        .await
        .expect("leadership ended on deletion");
    wait_for(&mut events, &LeaderEvent::StoppedLeading).await;
    // ...and, alone, it creates the Lease again and leads a new term. (The
    // moment with no Lease may be too short for a subscriber to see it as
    // `NewLeader { identity: None }`: events may skip intermediate states.)
    wait_for(&mut events, &LeaderEvent::StartedLeading).await;
    let second = elector.became_leader().await.unwrap();
    assert!(second.id() > first.id());
    assert_ne!(
        api.get(&lease).await.unwrap().metadata.uid,
        uid,
        "a new Lease"
    );
    drop((first, second));
    elector.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_notices_an_outside_writer_taking_its_lease() {
    let target = Target::new().await;
    let lease = support::unique_name("stolen");
    let api: Api<Lease> = Api::namespaced(target.client_for("admin"), target.namespace());
    let elector = spawn(&target, &lease, "stolen-0");
    let mut events = elector.events();
    wait_for(&mut events, &LeaderEvent::StartedLeading).await;

    let mut current = api.get(&lease).await.unwrap();
    let spec = current.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some("intruder".into());
    spec.lease_duration_seconds = Some(3600);
    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
    // A plain PUT; retried if the leader renewed in between.
    loop {
        match api.replace(&lease, &PostParams::default(), &current).await {
            Ok(_) => break,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let fresh = api.get(&lease).await.unwrap();
                current.metadata.resource_version = fresh.metadata.resource_version;
            }
            Err(e) => panic!("outside write failed: {e}"),
        }
    }
    wait_for(&mut events, &LeaderEvent::StoppedLeading).await;
    assert_eq!(
        next_event(&mut events, "the intruder as leader").await,
        LeaderEvent::NewLeader {
            identity: Some("intruder".into())
        }
    );
    assert!(!elector.is_leader());
    // Nothing releases a Lease it does not hold.
    assert_eq!(
        elector.shutdown().await.unwrap(),
        ShutdownOutcome::NotHolding
    );
    let after = api.get(&lease).await.unwrap();
    assert_eq!(
        after.spec.unwrap().holder_identity.as_deref(),
        Some("intruder")
    );
}

// === 7. Leases written by other implementations ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_with_missing_or_odd_fields_are_read_as_client_go_does() {
    let target = Target::new().await;
    let api: Api<Lease> = Api::namespaced(target.client_for("admin"), target.namespace());
    let cases: Vec<(&str, LeaseSpec)> = vec![
        ("nullholder", LeaseSpec::default()),
        (
            "emptyholder",
            LeaseSpec {
                holder_identity: Some(String::new()),
                lease_duration_seconds: Some(3600),
                ..LeaseSpec::default()
            },
        ),
        (
            "noduration",
            LeaseSpec {
                holder_identity: Some("gone".into()),
                ..LeaseSpec::default()
            },
        ),
        (
            "notimes",
            LeaseSpec {
                holder_identity: Some("gone".into()),
                lease_duration_seconds: Some(1),
                lease_transitions: Some(41),
                ..LeaseSpec::default()
            },
        ),
    ];
    for (case, spec) in cases {
        let name = support::unique_name(case);
        let created = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        };
        let created_version: u64 = api
            .create(&PostParams::default(), &created)
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap()
            .parse()
            .unwrap();
        let elector = spawn(&target, &name, "reader");
        let guard = timeout(PATIENCE, elector.became_leader())
            .await
            .unwrap_or_else(|_| panic!("{case}: never took the Lease"))
            .unwrap();
        let read = api.get(&name).await.unwrap();
        let written = read.spec.unwrap();
        assert_eq!(written.holder_identity.as_deref(), Some("reader"), "{case}");
        assert_eq!(written.lease_duration_seconds, Some(2), "{case}");
        assert!(
            written.acquire_time.is_some() && written.renew_time.is_some(),
            "{case}"
        );
        let expected = created.spec.unwrap().lease_transitions.unwrap_or(0) + 1;
        assert_eq!(written.lease_transitions, Some(expected), "{case}");
        // The token is the resourceVersion of the acquiring write: newer
        // than the garbage Lease, no newer than the Lease now.
        let now_version: u64 = read.metadata.resource_version.unwrap().parse().unwrap();
        assert!(
            created_version < guard.fencing_token() && guard.fencing_token() <= now_version,
            "{case}: token {} not in ({created_version}, {now_version}]",
            guard.fencing_token()
        );
        drop(guard);
        elector.shutdown().await.unwrap();
    }
}

// === 8. Release ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_writes_what_client_go_writes() {
    let target = Target::new().await;
    let lease = support::unique_name("release");
    let api: Api<Lease> = Api::namespaced(target.client_for("admin"), target.namespace());
    let elector = spawn(&target, &lease, "release-0");
    let guard = elector.became_leader().await.unwrap();
    let before = api.get(&lease).await.unwrap().spec.unwrap();
    drop(guard);
    assert_eq!(elector.shutdown().await.unwrap(), ShutdownOutcome::Released);
    let after = api.get(&lease).await.unwrap().spec.unwrap();
    assert_eq!(after.holder_identity.as_deref(), Some(""));
    assert_eq!(after.lease_duration_seconds, Some(1));
    assert_eq!(after.acquire_time, after.renew_time);
    assert!(after.renew_time >= before.renew_time);
    assert_eq!(after.lease_transitions, before.lease_transitions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_leader_work_to_drain_before_releasing() {
    let target = Target::new().await;
    let lease = support::unique_name("drain");
    let api: Api<Lease> = Api::namespaced(target.client_for("admin"), target.namespace());
    let elector = spawn(&target, &lease, "drain-0");
    let guard = elector.became_leader().await.unwrap();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let api2 = api.clone();
    let lease2 = lease.clone();
    tokio::spawn(async move {
        guard.lost().await;
        // Leadership is over, but the Lease is not yet released: leader work
        // can finish before anyone else starts.
        let holder = api2
            .get(&lease2)
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity;
        drop(guard);
        done_tx.send(holder).unwrap();
    });
    assert_eq!(elector.shutdown().await.unwrap(), ShutdownOutcome::Released);
    let holder_while_draining = done_rx.await.unwrap();
    assert_eq!(holder_while_draining.as_deref(), Some("drain-0"));
}

/// Leader work that outlasts the lease duration still finishes before anyone
/// else leads: the draining elector keeps renewing the Lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_longer_than_the_lease_keeps_followers_out_until_the_work_is_done() {
    let target = Target::new().await;
    let lease = support::unique_name("long-drain");
    let leader = spawn_with(
        &target,
        config(&lease, target.namespace(), "long-drain-0").drain_timeout(LEASE * 10),
        "long-drain-0",
    );
    let guard = timeout(PATIENCE, leader.became_leader())
        .await
        .expect("leads within the patience")
        .expect("leading");
    let follower = spawn(&target, &lease, "long-drain-1");
    let mut seen = follower.subscribe();
    support::wait_sees_leader(&mut seen, "long-drain-0", PATIENCE).await;

    // The work: it sees leadership end, then needs a while to finish.
    let (finish_tx, finish_rx) = tokio::sync::oneshot::channel::<()>();
    let work = tokio::spawn(async move {
        guard.lost().await;
        finish_rx.await.ok();
        drop(guard);
    });
    let shutdown = tokio::spawn(leader.shutdown());
    // Twice the lease duration: a Lease left unrenewed would be taken by now.
    let early = timeout(LEASE * 2, follower.became_leader()).await;
    assert!(
        early.is_err(),
        "the follower led while the old leader's work was still draining"
    );

    finish_tx.send(()).expect("the work waits");
    work.await.expect("work");
    let outcome = timeout(PATIENCE, shutdown)
        .await
        .expect("shutdown within the patience")
        .expect("task")
        .expect("shutdown");
    assert_eq!(outcome, ShutdownOutcome::Released);
    let next = timeout(PATIENCE, follower.became_leader())
        .await
        .expect("the follower leads after the release")
        .expect("leading");
    drop(next);
    follower.shutdown().await.expect("shutdown");
}

// === 9. Followers watch instead of polling ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_send_no_requests_while_the_watch_is_healthy() {
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        return support::skip("needs request counters");
    };
    let lease = support::unique_name("quiet");
    let leader = spawn(&target, &lease, "quiet-leader");
    drop(leader.became_leader().await.unwrap());
    let followers: Vec<_> = (0..3)
        .map(|i| spawn(&target, &lease, &format!("quiet-follower-{i}")))
        .collect();
    for f in &followers {
        let mut events = f.events();
        wait_for(
            &mut events,
            &LeaderEvent::NewLeader {
                identity: Some("quiet-leader".into()),
            },
        )
        .await;
    }
    // Let any start-up requests (read, list, watch) finish, then count.
    let settle = Instant::now() + RETRY * 2;
    tokio::time::sleep_until(settle).await;
    let before = server.requests();
    tokio::time::sleep(LEASE * 2).await;
    let after = server.requests();
    for f in &followers {
        let sent = after.client(f.identity()) - before.client(f.identity());
        assert_eq!(
            sent,
            0,
            "{} sent {sent} requests while following",
            f.identity()
        );
    }
    let renews = after.get("quiet-leader", Verb::Update) - before.get("quiet-leader", Verb::Update);
    assert!(renews >= 2, "the leader renewed only {renews} times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_watch_permission_followers_poll_and_still_elect() {
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        return support::skip("needs fault injection");
    };
    server.forbid(FaultTarget::All, Verb::Watch);
    let lease = support::unique_name("nowatch");
    let recorder = Recorder::default();
    let first = spawn(&target, &lease, "nowatch-0");
    recorder.watch(&first);
    drop(first.became_leader().await.unwrap());
    let second = spawn(&target, &lease, "nowatch-1");
    recorder.watch(&second);
    let mut events = second.events();
    wait_for(
        &mut events,
        &LeaderEvent::NewLeader {
            identity: Some("nowatch-0".into()),
        },
    )
    .await;
    // Polling: the follower reads the Lease on its own.
    let before = server.requests().get("nowatch-1", Verb::Get);
    tokio::time::sleep(RETRY * 4).await;
    assert!(
        server.requests().get("nowatch-1", Verb::Get) > before,
        "follower did not poll"
    );
    // And it takes over when the leader goes.
    assert_eq!(first.shutdown().await.unwrap(), ShutdownOutcome::Released);
    wait_for(&mut events, &LeaderEvent::StartedLeading).await;
    recorder.assert_no_overlap();
}

// === 10. Events ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_ends_on_the_true_state() {
    let target = Target::new().await;
    let lease = support::unique_name("slow");
    let a = spawn(&target, &lease, "slow-a");
    let mut slow = a.events();
    drop(a.became_leader().await.unwrap());
    let b = spawn(&target, &lease, "slow-b");
    // Several changes happen while `slow` is not polled.
    let a_outcome = a.shutdown().await.unwrap();
    assert_eq!(a_outcome, ShutdownOutcome::Released);
    drop(b.became_leader().await.unwrap());
    let mut seen = Vec::new();
    while let Some(event) = slow.next().await {
        seen.push(event);
    }
    // Every StartedLeading is followed by a StoppedLeading; the last leader
    // seen by `a` is not `a`.
    let started = seen
        .iter()
        .filter(|e| **e == LeaderEvent::StartedLeading)
        .count();
    let stopped = seen
        .iter()
        .filter(|e| **e == LeaderEvent::StoppedLeading)
        .count();
    assert_eq!(started, stopped, "{seen:?}");
    let last_leader = seen.iter().rev().find_map(|e| match e {
        LeaderEvent::NewLeader { identity } => Some(identity.clone()),
        _ => None,
    });
    assert_ne!(last_leader, Some(Some("slow-a".into())), "{seen:?}");
    b.shutdown().await.unwrap();
}

// === Construction ===

#[tokio::test]
async fn invalid_config_is_refused_before_anything_runs() {
    let target = Target::new().await;
    let err = LeaderElector::new(
        target.client_for("x"),
        ElectorConfig::new("lock").renew_deadline(Duration::from_secs(20)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("renew_deadline"), "{err}");
}

#[test]
fn public_handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    fn send<T: Send>() {}
    check::<ElectorHandle>();
    check::<kube_elector::ElectorView>();
    check::<kube_elector::observer::LeaderObserver>();
    check::<kube_elector::observer::ObserverHandle>();
    check::<kube_elector::Leadership>();
    check::<kube_elector::LeaderState>();
    check::<kube_elector::lock::LeaseLock>();
    check::<kube_elector::Error>();
    check::<kube_elector::health::HealthCheck>();
    check::<kube_elector::metrics::ElectorMetrics>();
    check::<kube_elector::ElectorConfig>();
    send::<LeaderEvents>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_of_coordinated_leader_election_survive_acquire_and_release() {
    // The server keeps the fields only with the CoordinatedLeaderElection
    // gate on (it drops them otherwise).
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    let api: Api<Lease> = Api::namespaced(target.client_for("admin"), target.namespace());
    let name = support::unique_name("strategy");
    let created = api
        .create(
            &PostParams::default(),
            &Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    strategy: Some("OldestEmulationVersion".into()),
                    ..LeaseSpec::default()
                }),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        created.spec.as_ref().and_then(|s| s.strategy.as_deref()),
        Some("OldestEmulationVersion"),
        "the server (gate on) kept spec.strategy"
    );
    let elector = spawn(&target, &name, "strategist");
    drop(elector.became_leader().await.unwrap());
    let held = api.get(&name).await.unwrap().spec.unwrap();
    assert_eq!(held.strategy.as_deref(), Some("OldestEmulationVersion"));
    assert_eq!(elector.shutdown().await.unwrap(), ShutdownOutcome::Released);
    let released = api.get(&name).await.unwrap().spec.unwrap();
    assert_eq!(released.strategy.as_deref(), Some("OldestEmulationVersion"));
}
