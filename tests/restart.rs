//! The embedded server stopped gracefully and restarted, as kube-apiserver
//! is on SIGTERM and a start on the same etcd: the server's side checked by
//! the same conformance check `tests/real_restart.rs` runs against
//! kube-apiserver, then electors across such a restart.

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;
use kube_elector::LeaderElector;
use kube_elector_testing::LeaseApiServer;
use support::recorder::Recorder;
use support::restart::{self, Embedded};

const PATIENCE: Duration = Duration::from_secs(30);
/// How long kube-apiserver v1.37 kept watches open into a graceful stop.
const LINGER: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_keeps_watches_open_and_silent_and_a_restart_expires_their_versions() {
    let server = LeaseApiServer::start().await.unwrap();
    // A shorter linger than kube-apiserver's: the check awaits the end.
    let mut embedded = Embedded {
        server,
        linger: Duration::from_secs(2),
    };
    restart::check(&mut embedded, "embedded server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn electors_regain_leadership_across_a_graceful_stop_and_a_restart_with_no_overlap() {
    let server = LeaseApiServer::start().await.unwrap();
    let lease = support::unique_name("restart");
    let recorder = Recorder::default();
    let spawn = |identity: &str| {
        let handle = LeaderElector::new(
            server.client_for(identity),
            support::short_config(&lease, identity),
        )
        .unwrap()
        .spawn();
        recorder.watch(&handle);
        handle
    };
    let a = spawn("a");
    let b = spawn("b");
    let first = recorder.wait_terms(1).await[0].clone();
    let follower = if first.who == "a" { &b } else { &a };
    support::wait_sees_leader(&mut follower.subscribe(), &first.who, PATIENCE).await;

    // Stopped: the leader's renews go unanswered and it stops at its renew
    // deadline, while every watch stays open and says nothing.
    let stopped = tokio::time::Instant::now();
    server.stop_gracefully(LINGER);
    let ended = recorder.term_of(&first.who, true).await;
    recorder.assert_no_overlap();
    // Restarted before the linger ran out: the open watches end with the old
    // process, and a resume from their versions gets 410 (the check above
    // shows that; this test asserts only that the electors lead again).
    server.restart();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    assert!(
        recorder.wait_leading(deadline).await,
        "no leader within {PATIENCE:?} of the restart"
    );
    let regained = recorder.intervals().last().cloned().unwrap();
    recorder.assert_no_overlap();

    // No stuck view: an outside write after the restart reaches both.
    let api: Api<Lease> = Api::namespaced(server.client_for("intruder"), "default");
    let mut current = api.get(&lease).await.unwrap();
    let spec = current.spec.get_or_insert_default();
    spec.holder_identity = Some("intruder".into());
    spec.lease_duration_seconds = Some(2);
    api.replace(&lease, &PostParams::default(), &current)
        .await
        .unwrap();
    for handle in [&a, &b] {
        support::wait_sees_leader(&mut handle.subscribe(), "intruder", PATIENCE).await;
    }
    recorder.wait_terms(recorder.intervals().len() + 1).await;
    recorder.assert_no_overlap();
    eprintln!(
        "embedded restart: {} led, stopped {:.2?} into the stop; {} led again {:.2?} after it \
         ended; both saw a later outside write",
        first.who,
        ended.end.unwrap() - stopped,
        regained.who,
        regained.start - ended.end.unwrap(),
    );
    let _ = a.shutdown().await;
    let _ = b.shutdown().await;
    recorder.assert_no_overlap();
}
