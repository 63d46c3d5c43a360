//! Many candidates through one `LeaseHub`: a release names the next in
//! line, so a handover costs a constant number of requests whatever the
//! number of candidates; a named successor that never comes is replaced
//! after a bound by one candidate, not by a herd.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::PostParams;
use kube_elector::{ElectorHandle, handover::SUCCESSOR_ANNOTATION, hub::LeaseHub};
use kube_elector_testing::Verb;

use support::{Target, short_config, skip, unique_name, wait_sees_leader};

const PATIENCE: Duration = Duration::from_secs(20);

fn candidate(i: usize) -> String {
    format!("candidate-{i:02}")
}

/// Spawns candidates `from..to` through `hub`, in order (the order of the line).
fn spawn(hub: &LeaseHub, lease: &str, from: usize, to: usize) -> Vec<ElectorHandle> {
    (from..to)
        .map(|i| {
            hub.elector(short_config(lease, &candidate(i)))
                .expect("valid config")
                .spawn()
        })
        .collect()
}

/// Candidate 0 alone, until it leads; then candidates 1..n, until each sees
/// it lead.
async fn lead_then_follow(
    hub: &LeaseHub,
    lease: &str,
    n: usize,
) -> (ElectorHandle, Vec<ElectorHandle>) {
    let leader = spawn(hub, lease, 0, 1).remove(0);
    drop(
        tokio::time::timeout(PATIENCE, leader.became_leader())
            .await
            .expect("the first candidate leads in time")
            .expect("it leads"),
    );
    let followers = spawn(hub, lease, 1, n);
    all_see(&followers, &candidate(0)).await;
    (leader, followers)
}

async fn all_see_new(handles: &[ElectorHandle], old: &str) -> String {
    support::wait_new_leader(handles, old, PATIENCE).await
}

async fn all_see(handles: &[ElectorHandle], leader: &str) {
    for handle in handles {
        wait_sees_leader(&mut handle.subscribe(), leader, PATIENCE).await;
    }
}

/// The writes and reads `client` sent (watches are long-lived and not
/// counted).
fn requests_of(server: &kube_elector_testing::LeaseApiServer, client: &str) -> (u64, u64) {
    let counts = server.requests();
    let writes = [Verb::Create, Verb::Update, Verb::Patch, Verb::Delete]
        .into_iter()
        .map(|v| counts.get(client, v))
        .sum();
    (
        writes,
        counts.get(client, Verb::Get) + counts.get(client, Verb::List),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handover_among_fifty_candidates_sends_a_constant_number_of_requests() {
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        return skip("request counters of the embedded server");
    };
    let hub = LeaseHub::new(server.client_for("process"));
    let lease = unique_name("herd");
    let (leader, followers) = lead_then_follow(&hub, &lease, 50).await;

    server.reset_counts();
    leader.shutdown().await.expect("a clean shutdown");
    let new = all_see_new(&followers, &candidate(0)).await;
    let (writes, reads) = requests_of(server, "process");
    assert!(
        writes <= 3 && reads <= 2,
        "one handover among 50 candidates sent {writes} writes and {reads} reads \
         (the release, the successor's acquire, perhaps its first renew; no herd)"
    );
    assert_eq!(
        new,
        candidate(1),
        "the first in line was named, and took it"
    );
    for follower in followers {
        follower.shutdown().await.expect("a clean shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_successor_that_never_comes_is_replaced_by_the_first_in_line_alone() {
    successor_never_comes(false).await;
}

/// The same when the name is of a member of the hub that never writes (an
/// observer): the release is held back from the candidates, and still
/// reaches them (after the hold, or at the latest when their watch, silent
/// while the Lease seems held, is distrusted and they read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_member_that_never_writes_is_replaced_by_the_first_in_line_alone() {
    successor_never_comes(true).await;
}

async fn successor_never_comes(ghost_in_hub: bool) {
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        return skip("request counters of the embedded server");
    };
    let hub = LeaseHub::new(server.client_for("process"));
    let lease = unique_name("ghost");
    let ghost = ghost_in_hub.then(|| {
        hub.observer(support::short_observer(&lease))
            .expect("valid config")
            .spawn()
    });
    let api: Api<Lease> = Api::namespaced(target.client_for("outside"), target.namespace());
    // Held by someone outside the hub, so that every candidate waits.
    let held = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some(lease.clone()),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
            holder_identity: Some("outsider".into()),
            lease_duration_seconds: Some(60),
            renew_time: Some(MicroTime(jiff::Timestamp::now())),
            lease_transitions: Some(3),
            ..Default::default()
        }),
    };
    api.create(&PostParams::default(), &held).await.unwrap();
    // The outsider renews, so that the candidates' watch shows progress and
    // they rely on it (they would poll a silent one).
    let renewing = tokio_util::sync::CancellationToken::new();
    let renewer = tokio::spawn({
        let (api, lease, renewing) = (api.clone(), lease.clone(), renewing.clone());
        async move {
            while !renewing.is_cancelled() {
                let mut now = api.get(&lease).await.unwrap();
                now.spec.as_mut().unwrap().renew_time = Some(MicroTime(jiff::Timestamp::now()));
                api.replace(&lease, &PostParams::default(), &now)
                    .await
                    .unwrap();
                renewing
                    .run_until_cancelled(tokio::time::sleep(Duration::from_millis(100)))
                    .await;
            }
        }
    });
    let candidates = spawn(&hub, &lease, 0, 10);
    all_see(&candidates, "outsider").await;
    renewing.cancel();
    renewer.await.unwrap();
    let mut held = api.get(&lease).await.unwrap();

    server.reset_counts();
    // The outsider releases, naming a successor that does not exist.
    let spec = held.spec.as_mut().unwrap();
    spec.holder_identity = Some(String::new());
    spec.lease_duration_seconds = Some(1);
    held.metadata.annotations = Some(BTreeMap::from([(
        SUCCESSOR_ANNOTATION.to_owned(),
        "3/ghost".to_owned(),
    )]));
    api.replace(&lease, &PostParams::default(), &held)
        .await
        .unwrap();
    // After the bound, the first in line takes it, and no one else tries.
    let new = all_see_new(&candidates, "outsider").await;
    let (writes, _) = requests_of(server, "process");
    assert!(
        writes <= 2,
        "replacing a successor that never came sent {writes} writes from ten candidates"
    );
    assert_eq!(new, candidate(0), "the first in line took it");
    let taken = api.get(&lease).await.unwrap();
    assert!(
        !taken
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(SUCCESSOR_ANNOTATION),
        "the acquire clears the successor's name"
    );
    for candidate in candidates {
        candidate.shutdown().await.expect("a clean shutdown");
    }
    drop(ghost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_through_a_hub_names_the_next_in_line() {
    let target = Target::new().await;
    let hub = LeaseHub::new(target.client_for("process"));
    let lease = unique_name("named");
    let (leader, followers) = lead_then_follow(&hub, &lease, 4).await;
    let api: Api<Lease> = Api::namespaced(target.client_for("outside"), target.namespace());
    let mut changes = followers[0].subscribe();
    leader.shutdown().await.expect("a clean shutdown");
    wait_sees_leader(&mut changes, &candidate(1), PATIENCE).await;
    let lease_now = api.get(&lease).await.unwrap();
    assert_eq!(
        lease_now.spec.and_then(|s| s.holder_identity).as_deref(),
        Some(candidate(1).as_str()),
        "the first in line took the Lease"
    );
    for follower in followers {
        follower.shutdown().await.expect("a clean shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_of_a_hub_whose_namespace_watch_fails_poll_and_then_watch_again() {
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        return skip("watch faults of the embedded server");
    };
    let process = kube_elector_testing::FaultTarget::Client("process".into());
    let hub = LeaseHub::new(server.client_for("process"));
    let lease = unique_name("broken");
    let (leader, mut followers) = lead_then_follow(&hub, &lease, 4).await;
    // Every watch now errors right after it connects: the followers stop
    // trusting it (nothing arrives while the Lease is held) and poll.
    server.fail_watch(process.clone(), true);
    server.reset_counts();
    leader.shutdown().await.expect("a clean shutdown");
    let first = all_see_new(&followers, &candidate(0)).await;
    assert!(
        requests_of(server, "process").1 > 0,
        "the handover was seen by polling"
    );
    // Lifted: the namespace watch is back, and the next handover is seen.
    let watches = server.requests().get("process", Verb::Watch);
    server.fail_watch(process, false);
    support::eventually("the namespace watch is re-established", PATIENCE, || {
        server.requests().get("process", Verb::Watch) > watches
    })
    .await;
    let i = followers
        .iter()
        .position(|f| f.identity() == first)
        .expect("the new leader is a follower");
    let second_leader = followers.remove(i);
    second_leader.shutdown().await.expect("a clean shutdown");
    all_see_new(&followers, &first).await;
    for follower in followers {
        follower.shutdown().await.expect("a clean shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_of_a_hub_without_any_watch_permission_poll_and_still_hand_over() {
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        return skip("RBAC faults of the embedded server");
    };
    let process = kube_elector_testing::FaultTarget::Client("process".into());
    // No `watch` at all: the namespace watch is refused, then each Lease's
    // own watch; only polling is left.
    server.forbid(process, Verb::Watch);
    let hub = LeaseHub::new(server.client_for("process"));
    let lease = unique_name("no-watch");
    let (leader, followers) = lead_then_follow(&hub, &lease, 4).await;
    server.reset_counts();
    leader.shutdown().await.expect("a clean shutdown");
    all_see_new(&followers, &candidate(0)).await;
    assert!(
        requests_of(server, "process").1 > 0,
        "the handover was seen by polling"
    );
    for follower in followers {
        follower.shutdown().await.expect("a clean shutdown");
    }
}
