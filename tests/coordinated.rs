//! Coordinated leader election (KEP-4355): candidates declare themselves in
//! `LeaseCandidate` objects and kube-apiserver's controller picks the
//! leader (oldest emulation version, then oldest binary version, then the
//! oldest candidate). The controller runs only in a real kube-apiserver
//! with the `CoordinatedLeaderElection` gate on: its tests are in
//! `tests/real_coordinated.rs`. Where `LeaseCandidate` is not served (the gate off:
//! the embedded server's default, and kube-apiserver's), registration
//! degrades to the plain election, which these tests run on every server.

mod support;

use std::time::Duration;

use kube_elector::handover::{HandoverOutcome, Successor};

use support::coordinated::{PATIENCE, all_see, candidates_api, config, shut_down, spawn};
use support::recorder::Recorder;
use support::{Target, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_lease_candidate_is_not_served_the_plain_election_and_handover_work() {
    let Some(target) = Target::with_coordinated_leader_election(false).await else {
        return;
    };
    let lease = unique_name("not-served");
    let recorder = Recorder::default();
    // Identities of their own: a candidate name is claimed per process.
    let (a, b) = (format!("{lease}-a"), format!("{lease}-b"));
    let handles = vec![spawn(
        &target,
        config(&lease, &a, "1.34.0", "1.34.0"),
        &recorder,
    )];
    drop(
        tokio::time::timeout(PATIENCE, handles[0].became_leader())
            .await
            .expect("leads in time")
            .expect("leads"),
    );
    let mut handles = handles;
    handles.push(spawn(
        &target,
        config(&lease, &b, "1.33.0", "1.33.0"),
        &recorder,
    ));
    all_see(&handles, &a).await;
    // b's versions are older, but without the controller nothing prefers
    // it: a leads until it hands over.
    let outcome = handles[0]
        .hand_over(Successor::Named(b.clone()))
        .await
        .expect("the handover");
    assert_eq!(
        outcome,
        HandoverOutcome::Released {
            successor: Some(b.clone())
        }
    );
    all_see(&handles, &b).await;
    recorder.assert_no_overlap();
    shut_down(handles).await;
}
/// Served, but with no controller to pick a leader (the embedded server
/// with the gate on): the Lease never gets a `strategy`, so the candidates
/// run the plain election, registered all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_candidates_without_a_controller_run_the_plain_election() {
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    if target.is_real() {
        return support::skip("a server that serves LeaseCandidate without the controller");
    }
    let lease = unique_name("no-controller");
    let recorder = Recorder::default();
    let a = format!("{lease}-a");
    let first = spawn(&target, config(&lease, &a, "1.34.0", "1.34.0"), &recorder);
    drop(
        tokio::time::timeout(PATIENCE, first.became_leader())
            .await
            .expect("leads in time")
            .expect("leads"),
    );
    let candidates = candidates_api(&target);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while candidates.get_opt(&a).await.ok().flatten().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a declares itself in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.shutdown().await.expect("a clean shutdown");
    assert!(
        candidates.get_opt(&a).await.expect("read").is_none(),
        "the LeaseCandidate is deleted on shutdown"
    );
}

// === Twins: two instances of one identity ===

/// Lease 2 s, renew deadline 1 s, retry 250 ms, declared as a candidate.
fn short_coordinated(lease: &str, identity: &str) -> kube_elector::ElectorConfig {
    support::short_config(lease, identity).coordinated("1.34.0", "1.34.0")
}

/// Creates `lease` as kube-apiserver's controller does when it elects
/// `holder`: the holder, the strategy, the duration and `renewTime`, and no
/// `acquireTime` (`reconcileElectionStep`). The embedded server runs no
/// controller: the test writes its pick.
async fn controller_picks(target: &Target, lease: &str, holder: &str) {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
    let api: kube::Api<Lease> = kube::Api::namespaced(target.client_for("controller"), "default");
    let pick = Lease {
        metadata: ObjectMeta {
            name: Some(lease.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            strategy: Some("OldestEmulationVersion".to_owned()),
            lease_duration_seconds: Some(2),
            renew_time: Some(MicroTime(jiff::Timestamp::now())),
            ..LeaseSpec::default()
        }),
    };
    api.create(&kube::api::PostParams::default(), &pick)
        .await
        .expect("the controller's pick is created");
}

/// Two instances of one identity (a `StatefulSet` pod recreated while the
/// old one still runs), both declared candidates of one Lease that the
/// controller runs (it carries a `strategy`), the controller's pick naming
/// that identity. `lag`: how late the second instance's watch delivers.
/// What the tests that write the controller's pick themselves start from:
/// the embedded server with the gate on, a Lease the "controller" gave to
/// `pod` (an identity of this test alone: the candidate name is claimed per
/// process, see `one_identity_is_refused_...` below), and a recorder.
/// `None` on a real server, whose controller must not run beside them.
async fn with_the_controllers_pick(prefix: &str) -> Option<(Target, String, String, Recorder)> {
    let target = Target::with_coordinated_leader_election(true).await?;
    if target.is_real() {
        support::skip("writes the controller's pick itself (no controller may run)");
        return None;
    }
    let lease = unique_name(prefix);
    let pod = unique_name("pod");
    controller_picks(&target, &lease, &pod).await;
    Some((target, lease, pod, Recorder::default()))
}

/// An instance of `pod` on `client`, recorded as `client`.
fn instance(
    target: &Target,
    lease: &str,
    pod: &str,
    client: &str,
    recorder: &Recorder,
) -> kube_elector::ElectorHandle {
    let handle =
        kube_elector::LeaderElector::new(target.client_for(client), short_coordinated(lease, pod))
            .expect("valid config")
            .spawn();
    recorder.watch_as(&handle, client);
    handle
}

async fn twins_under_the_controller(lag: Option<Duration>) {
    let Some((target, lease, pod, recorder)) = with_the_controllers_pick("coordinated-twins").await
    else {
        return;
    };
    let server = target.embedded().expect("embedded");
    if let Some(lag) = lag {
        server.delay_watch(
            kube_elector_testing::FaultTarget::Client("pod-0-b".into()),
            lag,
        );
    }
    let twins = vec![
        instance(&target, &lease, &pod, "pod-0-a", &recorder),
        instance(&target, &lease, &pod, "pod-0-b", &recorder),
    ];
    assert!(
        recorder
            .wait_leading(tokio::time::Instant::now() + PATIENCE)
            .await,
        "one instance takes the controller's pick"
    );
    // Six lease durations: a soak, checked as it goes.
    let end = tokio::time::Instant::now() + Duration::from_secs(12);
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
        recorder.assert_no_overlap();
    }
    let terms = recorder.intervals();
    // One instance takes the pick and renews it; the other waits its term
    // out, as in the plain election. A term lost to the load of the
    // machine may be retaken: a few terms, never a storm.
    assert!(
        terms.len() <= 3,
        "{} terms in 12 s between two instances of one identity (lag {lag:?}): {terms:#?}",
        terms.len()
    );
    shut_down(twins).await;
    recorder.assert_no_overlap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_of_one_identity_never_lead_a_coordinated_lease_at_once() {
    twins_under_the_controller(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_of_one_identity_never_lead_a_coordinated_lease_at_once_with_a_watch_lag() {
    twins_under_the_controller(Some(Duration::from_millis(300))).await;
}

/// The instance holding the controller's pick crashes (it is cut off from
/// the server for good) and is replaced by a new instance of the same
/// identity. The controller does not re-elect a Lease whose holder already
/// is the candidate it would pick, so the new instance must take the
/// expired Lease itself: it leads once the old record expired, never
/// while the old instance still believed it led.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_instance_takes_the_coordinated_lease_its_crashed_twin_held() {
    let Some((target, lease, pod, recorder)) =
        with_the_controllers_pick("coordinated-restart").await
    else {
        return;
    };
    let server = target.embedded().expect("embedded");
    let spawn_instance = |client: &str| instance(&target, &lease, &pod, client, &recorder);
    let old = spawn_instance("pod-0-old");
    drop(
        tokio::time::timeout(PATIENCE, old.became_leader())
            .await
            .expect("the old instance takes the pick in time")
            .expect("leads"),
    );
    server.partition(kube_elector_testing::FaultTarget::Client(
        "pod-0-old".into(),
    ));
    let new = spawn_instance("pod-0-new");
    drop(
        tokio::time::timeout(PATIENCE, new.became_leader())
            .await
            .expect("the new instance takes the expired Lease in time")
            .expect("leads"),
    );
    assert!(!old.is_leader(), "the cut-off instance's term ended");
    recorder.assert_no_overlap();
    server.heal(kube_elector_testing::FaultTarget::Client(
        "pod-0-old".into(),
    ));
    shut_down(vec![old, new]).await;
    recorder.assert_no_overlap();
}

// === One identity, two Leases ===

/// kube-apiserver's controller writes a `LeaseCandidate`'s name as the
/// holder it elects, and the candidate is named after the identity: one
/// identity cannot stand for two Leases. In one process, the second
/// elector is refused at construction; the same identity for the same
/// Lease (two instances) is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_identity_is_refused_as_the_candidate_of_a_second_lease_in_one_process() {
    let server = kube_elector_testing::LeaseApiServer::start()
        .await
        .expect("start the embedded server");
    let identity = unique_name("one-identity");
    let elector = |lease: &str| {
        kube_elector::LeaderElector::new(
            server.client_for(&identity),
            short_coordinated(lease, &identity),
        )
    };
    let first = elector("lease-a").expect("the first elector is valid");
    let twin = elector("lease-a").expect("a second instance for the same Lease is valid");
    let error = elector("lease-b")
        .expect_err("a second Lease for one identity is refused: its LeaseCandidate would overwrite the first's");
    assert!(
        matches!(
            error.problems(),
            [kube_elector::error::ConfigProblem::CandidateNameInUse { lease, .. }] if lease == "lease-a"
        ),
        "the error names the Lease the identity stands for already: {error}"
    );
    drop((first, twin));
    drop(elector("lease-b").expect("free again once the first electors are gone"));
}

/// Across processes no construction can see the other elector: one whose
/// `LeaseCandidate` name is found naming another Lease says so and leaves
/// it alone (it runs the plain election meanwhile), and declares itself
/// once that candidate is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_candidate_found_naming_another_lease_is_not_overwritten() {
    use kube_elector_testing::{Resource, Verb};
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    if target.is_real() {
        return support::skip("counts the elector's LeaseCandidate requests");
    }
    let server = target.embedded().expect("embedded");
    let identity = unique_name("taken");
    let lease = unique_name("mine");
    let candidates = candidates_api(&target);
    // Another process's elector of this identity, for another Lease.
    let mut other = kube::api::DynamicObject::new(
        &identity,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("coordination.k8s.io", "v1beta1", "LeaseCandidate"),
            "leasecandidates",
        ),
    );
    other.data = serde_json::json!({
        "spec": {
            "leaseName": "another-lease",
            "binaryVersion": "1.34.0",
            "emulationVersion": "1.34.0",
            "strategy": "OldestEmulationVersion",
            "renewTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        }
    });
    let created = candidates
        .create(&kube::api::PostParams::default(), &other)
        .await
        .expect("the other candidate is created");
    let handle = kube_elector::LeaderElector::new(
        target.client_for("this-process"),
        short_coordinated(&lease, &identity),
    )
    .expect("valid config")
    .spawn();
    let counts = || server.requests_for(Resource::LeaseCandidates);
    // It read the candidate, then tried to write it or read it again
    // after a pause.
    support::eventually(
        "the elector reads its LeaseCandidate, then writes it or reads it again",
        PATIENCE,
        || {
            let c = counts();
            c.get("this-process", Verb::Update) > 0 || c.get("this-process", Verb::Get) > 1
        },
    )
    .await;
    // (kube-apiserver refuses a change of `leaseName` with 422, as the
    // embedded server does: an attempt would fail, and say nothing clear.)
    assert_eq!(
        counts().get("this-process", Verb::Update),
        0,
        "the elector tried to overwrite the other Lease's candidate"
    );
    let found = candidates.get(&identity).await.expect("still there");
    assert_eq!(
        found.data["spec"]["leaseName"], "another-lease",
        "the other Lease's candidate was overwritten"
    );
    assert_eq!(
        found.metadata.resource_version, created.metadata.resource_version,
        "the other Lease's candidate was written to"
    );
    // The elector runs all the same (the plain election: no strategy here).
    drop(
        tokio::time::timeout(PATIENCE, handle.became_leader())
            .await
            .expect("leads in time")
            .expect("leads"),
    );
    // Gone: the elector declares itself.
    candidates
        .delete(&identity, &kube::api::DeleteParams::default())
        .await
        .expect("delete the other candidate");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(Some(found)) = candidates.get_opt(&identity).await
            && found.data["spec"]["leaseName"] == lease.as_str()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the elector declared itself once the other candidate was gone"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.shutdown().await.expect("a clean shutdown");
}

/// Two instances of one identity on a Lease the controller runs (its pick
/// written by the test, as kube-apiserver's controller writes it), under a
/// seeded schedule of the faults the embedded server can do: silent and
/// erroring watches, lost and late write answers, stale reads,
/// partitions, hung requests, and a graceful stop and restart of the
/// server (410 on resume). No two instances ever lead at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twins_of_a_coordinated_lease_never_lead_at_once_under_random_faults() {
    use kube_elector_testing::FaultTarget;
    use tokio::time::Instant;

    let Some((target, lease, pod, recorder)) =
        with_the_controllers_pick("coordinated-twins-faults").await
    else {
        return;
    };
    let server = target.embedded().expect("embedded");
    let twins = vec![
        instance(&target, &lease, &pod, "twin-a", &recorder),
        instance(&target, &lease, &pod, "twin-b", &recorder),
    ];
    assert!(
        recorder.wait_leading(Instant::now() + PATIENCE).await,
        "one instance takes the controller's pick"
    );
    // Seed 3 draws every kind of fault below within the run.
    let mut below = support::seeded(3);
    let mut log = Vec::new();
    let end = Instant::now() + Duration::from_secs(16);
    while Instant::now() < end {
        let who = ["twin-a", "twin-b"][usize::try_from(below(2)).unwrap()];
        let target_of = FaultTarget::Client(who.into());
        let hold = Duration::from_millis(300 + below(1500));
        let kind = below(9);
        log.push(format!("{kind} on {who} for {hold:?}"));
        match kind {
            0 => server.black_hole_watch(target_of.clone(), true),
            1 => server.fail_watch(target_of.clone(), true),
            2 => server.lose_write_answers(target_of.clone(), true),
            3 => server
                .delay_write_answers(target_of.clone(), Duration::from_millis(100 + below(800))),
            4 => server.stale_reads(target_of.clone(), true),
            5 => server.partition(target_of.clone()),
            6 => server.hang(target_of.clone()),
            7 => server.stop_gracefully(Duration::from_millis(200)),
            _ => {}
        }
        let step_end = Instant::now() + hold;
        while Instant::now() < step_end {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(
                recorder.overlap().is_none(),
                "{:?}\n{log:#?}",
                recorder.overlap()
            );
        }
        if kind == 7 {
            server.restart();
        }
        server.heal(target_of.clone());
        server.release(target_of);
        server.clear_faults();
    }
    shut_down(twins).await;
    assert!(
        recorder.overlap().is_none(),
        "{:?}\n{log:#?}",
        recorder.overlap()
    );
}
