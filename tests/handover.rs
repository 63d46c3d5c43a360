//! Directed handover: `ElectorHandle::hand_over` ends the term, drains,
//! and releases the Lease naming a successor, which takes it with the first
//! event it sees; the one that handed over stays a candidate but writes
//! last. Run against the embedded server and the real kube-apiserver
//! (counts of requests only on the embedded one).

mod support;

use std::time::Duration;

use kube_elector::{
    ElectorConfig, ElectorHandle, Error, LeaderElector,
    handover::{HandoverOutcome, Successor},
    hub::LeaseHub,
};
use kube_elector_testing::Verb;

use support::recorder::Recorder;
use support::{Target, unique_name, wait_sees_leader};

const PATIENCE: Duration = Duration::from_secs(20);

/// Timings with a retry period long enough that the bound the others wait
/// for a named successor (one retry period) is far above a loaded
/// machine's round trip.
fn config(lease: &str, identity: &str) -> ElectorConfig {
    ElectorConfig::new(lease)
        .namespace("default")
        .identity(identity)
        .lease_duration(Duration::from_secs(4))
        .renew_deadline(Duration::from_secs(2))
        .retry_period(Duration::from_secs(1))
}

/// Electors `names`, each with its own client (as in its own process); the
/// first leads before the others start, and all see it lead.
async fn leader_and_followers(
    target: &Target,
    lease: &str,
    names: &[&str],
    recorder: &Recorder,
) -> Vec<ElectorHandle> {
    let spawn = |name: &str| {
        let handle = LeaderElector::new(target.client_for(name), config(lease, name))
            .expect("valid config")
            .spawn();
        recorder.watch(&handle);
        handle
    };
    let leader = spawn(names[0]);
    drop(
        tokio::time::timeout(PATIENCE, leader.became_leader())
            .await
            .expect("the first elector leads in time")
            .expect("it leads"),
    );
    let mut all = vec![leader];
    all.extend(names[1..].iter().map(|name| spawn(name)));
    for handle in &all {
        wait_sees_leader(&mut handle.subscribe(), names[0], PATIENCE).await;
    }
    all
}

async fn new_leader(handles: &[ElectorHandle], old: &str) -> String {
    support::wait_new_leader(handles, old, PATIENCE).await
}

fn writes_of(target: &Target, client: &str) -> Option<u64> {
    let counts = target.embedded()?.requests();
    Some(
        [Verb::Create, Verb::Update, Verb::Patch, Verb::Delete]
            .into_iter()
            .map(|verb| counts.get(client, verb))
            .sum(),
    )
}

async fn shut_down(handles: Vec<ElectorHandle>) {
    for handle in handles {
        handle.shutdown().await.expect("a clean shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_to_a_named_candidate_is_taken_by_it_alone() {
    let target = Target::new().await;
    let lease = unique_name("handover-named");
    let recorder = Recorder::default();
    let handles = leader_and_followers(&target, &lease, &["a", "b", "c"], &recorder).await;
    if let Some(server) = target.embedded() {
        server.reset_counts();
    }

    let outcome = handles[0]
        .hand_over(Successor::Named("c".into()))
        .await
        .expect("the handover");
    assert_eq!(
        outcome,
        HandoverOutcome::Released {
            successor: Some("c".into())
        }
    );
    assert_eq!(new_leader(&handles, "a").await, "c", "the named one leads");
    assert!(!handles[0].is_leader() && !handles[1].is_leader());
    recorder.assert_no_overlap();
    if let (Some(b), Some(a)) = (writes_of(&target, "b"), writes_of(&target, "a")) {
        assert_eq!(b, 0, "a candidate that was not named did not write");
        assert_eq!(a, 1, "the leader wrote its release, and nothing after it");
    }
    shut_down(handles).await;
}

/// A preStop hook knows the new pod's name, not the random suffix of its
/// elector's default identity (`<POD_NAME>_<suffix>`): naming the pod
/// hands over to it in one watch event, as naming its identity does, and
/// no other candidate writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_naming_a_pod_is_taken_by_that_pods_elector_alone() {
    let target = Target::new().await;
    let lease = unique_name("handover-pod");
    let recorder = Recorder::default();
    let names = ["pod-a_x1y2z3", "pod-b_k4m5n6", "pod-c_p7q8r9"];
    let handles = leader_and_followers(&target, &lease, &names, &recorder).await;
    if let Some(server) = target.embedded() {
        server.reset_counts();
    }

    let outcome = handles[0]
        .hand_over(Successor::Named("pod-c".into()))
        .await
        .expect("the handover");
    assert_eq!(
        outcome,
        HandoverOutcome::Released {
            successor: Some("pod-c".into())
        }
    );
    assert_eq!(
        new_leader(&handles, names[0]).await,
        names[2],
        "the pod named leads"
    );
    recorder.assert_no_overlap();
    if let Some(b) = writes_of(&target, names[1]) {
        assert_eq!(b, 0, "a candidate of another pod did not write");
    }
    shut_down(handles).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_to_any_candidate_is_not_taken_back_by_the_leader() {
    let target = Target::new().await;
    let lease = unique_name("handover-any");
    let recorder = Recorder::default();
    let handles = leader_and_followers(&target, &lease, &["a", "b", "c"], &recorder).await;
    if let Some(server) = target.embedded() {
        server.reset_counts();
    }

    let outcome = handles[0]
        .hand_over(Successor::Any)
        .await
        .expect("the handover");
    // Alone in its process, the elector has nobody in line to name.
    assert_eq!(outcome, HandoverOutcome::Released { successor: None });
    let new = new_leader(&handles, "a").await;
    assert!(new == "b" || new == "c", "another candidate leads: {new}");
    recorder.assert_no_overlap();
    if let Some(a) = writes_of(&target, "a") {
        assert_eq!(a, 1, "the leader wrote its release, and never took it back");
    }
    shut_down(handles).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_to_a_successor_that_is_gone_is_taken_by_another_candidate() {
    let target = Target::new().await;
    let lease = unique_name("handover-gone");
    let recorder = Recorder::default();
    let handles = leader_and_followers(&target, &lease, &["a", "b", "c"], &recorder).await;

    let outcome = handles[0]
        .hand_over(Successor::Named("gone".into()))
        .await
        .expect("the handover");
    assert_eq!(
        outcome,
        HandoverOutcome::Released {
            successor: Some("gone".into())
        }
    );
    // After one retry period the first in line (here: each of the others,
    // alone in its process) takes it; the one that handed over would only
    // after three.
    let new = new_leader(&handles, "a").await;
    assert!(new == "b" || new == "c", "another candidate leads: {new}");
    recorder.assert_no_overlap();
    shut_down(handles).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_waits_for_the_work_of_the_term_before_the_successor_may_lead() {
    let target = Target::new().await;
    let lease = unique_name("handover-drain");
    let recorder = Recorder::default();
    let handles = leader_and_followers(&target, &lease, &["a", "b"], &recorder).await;
    let leadership = handles[0].became_leader().await.expect("a leads");

    let outcome = {
        let handover = handles[0].hand_over(Successor::Named("b".into()));
        tokio::pin!(handover);
        // The term ends at once: the work is told to stop ...
        tokio::select! {
            () = leadership.lost() => {}
            _ = &mut handover => panic!("the handover finished while the work still ran"),
            () = tokio::time::sleep(PATIENCE) => panic!("the term did not end in time"),
        }
        // The state is published right after the token is cancelled.
        tokio::time::timeout(
            PATIENCE,
            handles[0].subscribe().wait_for(|s| s.term.is_none()),
        )
        .await
        .expect("a says in time that it no longer leads")
        .expect("the elector runs");
        // ... but until it is done, renews keep the successor out. Renews are
        // due every retry period; wait past two of them.
        let kept_out = tokio::time::timeout(Duration::from_millis(2500), &mut handover).await;
        assert!(kept_out.is_err(), "the handover waited for the work");
        assert!(!handles[1].is_leader(), "the successor does not lead yet");
        assert_eq!(
            handles[1].state().leader.as_deref(),
            Some("a"),
            "and the Lease, still renewed, names the old leader"
        );
        drop(leadership);
        tokio::time::timeout(PATIENCE, handover)
            .await
            .expect("the handover ends once the work is done")
            .expect("the handover")
    };
    assert!(matches!(outcome, HandoverOutcome::Released { .. }));
    assert_eq!(new_leader(&handles, "a").await, "b");
    recorder.assert_no_overlap();
    shut_down(handles).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_through_a_hub_names_the_next_in_line() {
    let target = Target::new().await;
    let lease = unique_name("handover-hub");
    let hub = LeaseHub::new(target.client_for("process"));
    let recorder = Recorder::default();
    let names = ["m0", "m1", "m2", "m3"];
    let leader = hub
        .elector(config(&lease, names[0]))
        .expect("valid config")
        .spawn();
    recorder.watch(&leader);
    drop(
        tokio::time::timeout(PATIENCE, leader.became_leader())
            .await
            .expect("leads in time")
            .expect("leads"),
    );
    let mut handles = vec![leader];
    for name in &names[1..] {
        let handle = hub
            .elector(config(&lease, name))
            .expect("valid config")
            .spawn();
        recorder.watch(&handle);
        wait_sees_leader(&mut handle.subscribe(), names[0], PATIENCE).await;
        handles.push(handle);
    }

    let outcome = handles[0]
        .hand_over(Successor::Any)
        .await
        .expect("the handover");
    assert_eq!(
        outcome,
        HandoverOutcome::Released {
            successor: Some("m1".into())
        },
        "the next in line is named"
    );
    assert_eq!(new_leader(&handles, "m0").await, "m1");
    recorder.assert_no_overlap();
    shut_down(handles).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_has_nothing_to_hand_over_and_nobody_hands_over_to_itself() {
    let target = Target::new().await;
    let lease = unique_name("handover-none");
    let recorder = Recorder::default();
    let handles = leader_and_followers(&target, &lease, &["a", "b"], &recorder).await;

    assert_eq!(
        handles[1]
            .hand_over(Successor::Any)
            .await
            .expect("answered"),
        HandoverOutcome::NotLeading
    );
    let to_self = handles[0].hand_over(Successor::Named("a".into())).await;
    assert!(
        matches!(to_self, Err(Error::HandoverToSelf { ref identity }) if identity == "a"),
        "{to_self:?}"
    );
    assert!(handles[0].is_leader(), "a refused handover changes nothing");
    shut_down(handles).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_asked_of_a_stopped_elector_says_so() {
    let target = Target::new().await;
    let lease = unique_name("handover-stopped");
    let handle = LeaderElector::new(target.client_for("a"), config(&lease, "a"))
        .expect("valid config")
        .spawn();
    drop(handle.became_leader().await.expect("leads"));
    handle.cancellation_token().cancel();
    let answer = tokio::time::timeout(PATIENCE, handle.hand_over(Successor::Any))
        .await
        .expect("answered in time");
    assert!(
        matches!(
            answer,
            Err(Error::Stopped) | Ok(HandoverOutcome::NotLeading)
        ),
        "{answer:?}"
    );
    handle.join().await.expect("a clean end");
}

/// An outside writer takes the Lease while the leader drains for a
/// handover to `b`: the release, conditional, must not clobber the
/// intruder's record, and the successor's name no longer applies (it was
/// written for another record), so nobody takes the Lease before the
/// intruder's record has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_takeover_during_a_handover_is_neither_clobbered_nor_skipped() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use kube::Api;
    use kube::api::PostParams;

    let target = Target::new().await;
    let lease = unique_name("handover-outside");
    let recorder = Recorder::default();
    let handles = leader_and_followers(&target, &lease, &["a", "b"], &recorder).await;
    let leadership = handles[0].became_leader().await.expect("a leads");
    let api: Api<Lease> = Api::namespaced(target.client_for("outside"), target.namespace());

    let (outcome, taken_at) = {
        let handover = handles[0].hand_over(Successor::Named("b".into()));
        tokio::pin!(handover);
        tokio::select! {
            () = leadership.lost() => {}
            _ = &mut handover => panic!("the handover finished while the work still ran"),
            () = tokio::time::sleep(PATIENCE) => panic!("the term did not end in time"),
        }
        // While the work drains, the intruder writes (a conditional PUT, read
        // again after a conflict with a renew).
        let taken_at = loop {
            let mut current = api.get(&lease).await.expect("the Lease");
            let spec = current.spec.get_or_insert_with(Default::default);
            spec.holder_identity = Some("intruder".into());
            spec.lease_duration_seconds = Some(4);
            spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
            let sent = tokio::time::Instant::now();
            match api.replace(&lease, &PostParams::default(), &current).await {
                Ok(_) => break sent,
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => panic!("the outside write failed: {e}"),
            }
        };
        drop(leadership);
        let outcome = tokio::time::timeout(PATIENCE, handover)
            .await
            .expect("the handover ends once the work is done")
            .expect("the handover");
        (outcome, taken_at)
    };
    assert_eq!(
        outcome,
        HandoverOutcome::NotLeading,
        "nothing was left to hand over"
    );
    let holder = api.get(&lease).await.unwrap().spec.unwrap().holder_identity;
    assert_eq!(
        holder.as_deref(),
        Some("intruder"),
        "the release clobbered the intruder"
    );
    assert_eq!(new_leader(&handles, "a").await, "intruder");
    // Whoever leads next (the handover was void: `a` may win the race),
    // took the Lease only once the intruder's record had expired.
    let next = new_leader(&handles, "intruder").await;
    let terms = recorder.wait_terms(2).await;
    assert!(
        terms[1].start >= taken_at + Duration::from_secs(4),
        "{next} took the intruder's live Lease {:?} after it was written",
        terms[1].start - taken_at
    );
    recorder.assert_no_overlap();
    shut_down(handles).await;
}
