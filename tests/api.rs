//! The pieces of API users reached for: a validating lock constructor, leader
//! work that can fail, an owned cancellation future, a clear shutdown
//! outcome. Embedded server.

mod support;

use std::time::Duration;

use kube_elector::{
    ElectorConfig, LeaderElector, ShutdownOutcome,
    error::ConfigProblem,
    lock::{LeaseLock, LeaseLockParams},
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

/// Waits until the Lease's `resourceVersion` moves past `after` (a renew).
async fn renewed_past(
    api: &kube::Api<k8s_openapi::api::coordination::v1::Lease>,
    name: &str,
    after: &str,
) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let rv = api
            .get(name)
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        if rv != after {
            return rv;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Lease was not renewed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every token a user can reach from an elector (the guard's, the term's in
/// the published state, through a view) and from a sharded replica (a
/// shard's term, a `run_per_shard` guard) is a child of the term's own:
/// cancelling them all ends nothing. The term holds, the Lease is renewed,
/// and `became_leader` answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // an elector, then a sharded replica, top to bottom
async fn cancelling_any_token_a_user_can_reach_neither_ends_the_term_nor_stops_renews() {
    use kube_elector::shard::{ShardConfig, ShardedElector};

    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("tokens");
    let elector = LeaderElector::new(server.client_for("a"), config(&name, "a"))
        .unwrap()
        .spawn();
    let leadership = timeout(PATIENCE, elector.became_leader())
        .await
        .expect("a leads")
        .unwrap();
    leadership.token().cancel();
    elector.state().term.expect("a term").token().cancel();
    elector
        .subscribe()
        .borrow()
        .term
        .as_ref()
        .expect("a term")
        .token()
        .cancel();
    elector
        .view()
        .state()
        .term
        .expect("a term")
        .token()
        .cancel();
    assert!(leadership.is_leading(), "the guard says the term ended");
    assert!(elector.is_leader(), "the elector says it does not lead");
    let again = timeout(PATIENCE, elector.became_leader())
        .await
        .expect("became_leader answers")
        .unwrap();
    assert_eq!(again.id(), leadership.id(), "the same term");
    let api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(server.client_for("observer"), "default");
    let rv = api
        .get(&name)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let rv = renewed_past(&api, &name, &rv).await;
    renewed_past(&api, &name, &rv).await;
    assert!(leadership.is_leading(), "the term ended after the renews");
    elector.shutdown().await.unwrap();

    let prefix = support::unique_name("tokens-shard");
    let config = ShardConfig::new(
        ElectorConfig::new(&prefix)
            .namespace("default")
            .identity("s")
            .lease_duration(Duration::from_secs(2))
            .renew_deadline(Duration::from_secs(1))
            .retry_period(Duration::from_millis(250)),
        1,
    );
    let sharded = ShardedElector::new(server.client_for("s"), config)
        .unwrap()
        .spawn();
    let guard = timeout(PATIENCE, sharded.became_owner(0))
        .await
        .expect("the replica owns its shard")
        .unwrap();
    guard.token().cancel();
    // The set of owned shards is published just after the shard's term.
    support::eventually("owned() lists shard 0", PATIENCE, || {
        sharded.owned().contains(0)
    })
    .await;
    sharded
        .owned()
        .term(0)
        .expect("shard 0's term")
        .token()
        .cancel();
    let cancelled = std::sync::Arc::new(tokio::sync::Notify::new());
    let ran = std::sync::Arc::clone(&cancelled);
    let worker = sharded.run_per_shard(move |_, leadership| {
        leadership.token().cancel();
        ran.notify_one();
        async move { leadership.lost().await }
    });
    tokio::select! {
        () = worker => panic!("run_per_shard ended while the replica owns its shard"),
        () = cancelled.notified() => {}
        () = tokio::time::sleep(PATIENCE) => panic!("run_per_shard never ran the shard's work"),
    }
    assert!(guard.is_leading(), "the shard's guard says its term ended");
    assert!(
        sharded.owned().contains(0),
        "the replica says it no longer owns shard 0"
    );
    let shard_api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(server.client_for("observer"), "default");
    let lease = format!("{prefix}-0");
    let rv = shard_api
        .get(&lease)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    renewed_past(&shard_api, &lease, &rv).await;
    assert!(sharded.owned().contains(0), "the term ended after a renew");
    drop(guard);
    sharded.shutdown().await.unwrap();
}

/// A program that runs work for an elector (the `kube-elector` command's
/// child) is told the namespace the elector resolved: the configured one,
/// else the client's default.
#[tokio::test]
async fn an_elector_names_the_namespace_it_resolved() {
    let server = LeaseApiServer::start().await.unwrap();
    let explicit = LeaderElector::new(
        server.client_for("a"),
        config("resolved", "a").namespace("operators"),
    )
    .unwrap();
    assert_eq!(explicit.namespace(), "operators");
    if std::env::var_os("POD_NAMESPACE").is_none() {
        let default = LeaderElector::new(server.client_for("a"), config("resolved", "a")).unwrap();
        assert_eq!(
            default.namespace(),
            server.client_for("a").default_namespace(),
            "without a namespace the elector takes the client's default"
        );
    }
}
