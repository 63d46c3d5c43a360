//! The pieces of API users reached for: a validating lock constructor, leader
//! work that can fail, an owned cancellation future, a clear shutdown
//! outcome. Embedded server.

mod support;

use std::time::Duration;

use kube_elector::{
    ConfigProblem, ElectorConfig, LeaderElector, LeaseLock, LeaseLockParams, ShutdownOutcome,
};
use kube_elector_testing::{FaultTarget, LeaseApiServer};
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(20);

fn config(lease: &str, identity: &str) -> ElectorConfig {
    support::short_config(lease, identity)
}

#[tokio::test]
async fn a_lease_lock_with_a_ttl_that_is_not_whole_seconds_is_refused_up_front() {
    let server = LeaseApiServer::start().await.unwrap();
    let params = |ttl| LeaseLockParams {
        holder_id: "a".into(),
        lease_name: "lock".into(),
        lease_ttl: ttl,
    };
    let err = LeaseLock::try_new(
        server.client(),
        "default",
        params(Duration::from_millis(1500)),
    )
    .unwrap_err();
    assert!(
        matches!(
            err.problems(),
            [ConfigProblem::LeaseDurationNotWholeSeconds { .. }]
        ),
        "{err}"
    );
    assert!(
        LeaseLock::try_new(server.client(), "default", params(Duration::from_secs(15))).is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_work_that_fails_returns_its_error() {
    let server = LeaseApiServer::start().await.unwrap();
    let lease = support::unique_name("try-run");
    let elector = LeaderElector::new(server.client_for("a"), config(&lease, "a"))
        .unwrap()
        .spawn();
    let result = timeout(
        PATIENCE,
        elector.try_run_while_leading(|leadership| async move {
            assert!(leadership.is_leading());
            Err::<(), _>("the reconciler gave up")
        }),
    )
    .await
    .expect("the work ran within the patience");
    assert_eq!(result, Err("the reconciler gave up"));
    assert_eq!(elector.shutdown().await.unwrap(), ShutdownOutcome::Released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guards_owned_cancellation_future_completes_when_the_term_ends() {
    let server = LeaseApiServer::start().await.unwrap();
    let lease = support::unique_name("owned");
    let elector = LeaderElector::new(server.client_for("a"), config(&lease, "a"))
        .unwrap()
        .spawn();
    let leadership = timeout(PATIENCE, elector.became_leader())
        .await
        .unwrap()
        .unwrap();
    let ended = tokio::spawn(leadership.cancelled_owned());
    drop(leadership);
    let shutdown = tokio::spawn(elector.shutdown());
    timeout(PATIENCE, ended).await.unwrap().unwrap();
    assert_eq!(shutdown.await.unwrap().unwrap(), ShutdownOutcome::Released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_an_elector_that_never_reached_the_server_is_not_an_error() {
    let server = LeaseApiServer::start().await.unwrap();
    server.refuse_connections(FaultTarget::Client("cut-off".into()), true);
    let lease = support::unique_name("unreachable");
    let elector = LeaderElector::new(server.client_for("cut-off"), config(&lease, "cut-off"))
        .unwrap()
        .spawn();
    // Whether or not it has tried yet, it never wrote the Lease.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!elector.health_check(Duration::ZERO).is_ready());
    assert_eq!(
        elector.shutdown().await.unwrap(),
        ShutdownOutcome::NotHolding
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_of_one_elector_wait_and_work_in_other_tasks_while_the_handle_owns_it() {
    let server = LeaseApiServer::start().await.unwrap();
    let lease = support::unique_name("views");
    let elector = LeaderElector::new(server.client_for("a"), config(&lease, "a"))
        .unwrap()
        .spawn();
    let (waiter, worker) = (elector.view(), elector.view());
    let leader_seen = tokio::spawn(async move {
        waiter
            .became_leader()
            .await
            .map(|l| l.identity().to_owned())
    });
    let work_loop = tokio::spawn(async move {
        worker
            .run_while_leading(|leadership| async move { leadership.lost().await })
            .await;
    });
    assert_eq!(
        timeout(PATIENCE, leader_seen)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        "a"
    );
    // The owner shuts the elector down; every view sees it stop.
    assert_eq!(elector.shutdown().await.unwrap(), ShutdownOutcome::Released);
    timeout(PATIENCE, work_loop)
        .await
        .expect("the work loop ends with the elector")
        .unwrap();
}
