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

use kube_elector::{HandoverOutcome, Successor};

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
    let handles = vec![spawn(
        &target,
        config(&lease, "a", "1.34.0", "1.34.0"),
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
        config(&lease, "b", "1.33.0", "1.33.0"),
        &recorder,
    ));
    all_see(&handles, "a").await;
    // b's versions are older, but without the controller nothing prefers
    // it: a leads until it hands over.
    let outcome = handles[0]
        .hand_over(Successor::Named("b".into()))
        .await
        .expect("the handover");
    assert_eq!(
        outcome,
        HandoverOutcome::Released {
            successor: Some("b".into())
        }
    );
    all_see(&handles, "b").await;
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
    let first = spawn(&target, config(&lease, "a", "1.34.0", "1.34.0"), &recorder);
    drop(
        tokio::time::timeout(PATIENCE, first.became_leader())
            .await
            .expect("leads in time")
            .expect("leads"),
    );
    let candidates = candidates_api(&target);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while candidates.get_opt("a").await.ok().flatten().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a declares itself in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.shutdown().await.expect("a clean shutdown");
    assert!(
        candidates.get_opt("a").await.expect("read").is_none(),
        "the LeaseCandidate is deleted on shutdown"
    );
}
