//! Fault injection of the embedded server, one test per fault kind: each
//! aimed at one client, leaving the others untouched. Embedded server only.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube_elector::testing::{FaultTarget, LeaseApiServer, Verb};
use serde_json::json;
use tokio::time::{Instant, timeout};

const PATIENCE: Duration = Duration::from_secs(10);

fn leases(server: &LeaseApiServer, who: &str) -> Api<Lease> {
    Api::namespaced(server.client_for(who), "default")
}

fn lease(name: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("x".into()),
            ..LeaseSpec::default()
        }),
    }
}

fn victim() -> FaultTarget {
    FaultTarget::Client("victim".into())
}

#[tokio::test]
async fn latency_delays_only_the_target() {
    let server = LeaseApiServer::start().await.unwrap();
    server.set_latency(victim(), Duration::from_millis(300));
    // A held request is measured by the server's own order of events: the
    // bystander's request, sent later, is answered first.
    let slow = leases(&server, "victim");
    let fast = leases(&server, "bystander");
    let slow_get = tokio::spawn(async move { (slow.get_opt("l").await.unwrap(), Instant::now()) });
    tokio::task::yield_now().await;
    fast.get_opt("l").await.unwrap();
    let fast_done = Instant::now();
    let (_, slow_done) = slow_get.await.unwrap();
    assert!(slow_done > fast_done, "the delayed request finished first");
    server.set_latency(victim(), Duration::ZERO);
    assert_eq!(server.requests().get("victim", Verb::Get), 1);
}

#[tokio::test]
async fn error_rate_one_fails_every_request_with_a_5xx_status() {
    let server = LeaseApiServer::start().await.unwrap();
    server.set_error_rate(victim(), 1.0);
    let victim_api = leases(&server, "victim");
    for _ in 0..5 {
        match victim_api.get_opt("l").await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 500, "{status:?}");
            }
            other => panic!("expected an injected 5xx, got {other:?}"),
        }
    }
    assert!(leases(&server, "bystander").get_opt("l").await.is_ok());
    server.set_error_rate(victim(), 0.0);
    assert!(victim_api.get_opt("l").await.is_ok());
}

#[tokio::test]
async fn error_rate_half_fails_some_requests_not_all() {
    let server = LeaseApiServer::start().await.unwrap();
    server.set_error_rate(FaultTarget::All, 0.5);
    let api = leases(&server, "any");
    let mut failed = 0;
    for _ in 0..40 {
        if api.get_opt("l").await.is_err() {
            failed += 1;
        }
    }
    assert!(
        (5..=35).contains(&failed),
        "{failed} of 40 failed at rate 0.5"
    );
}

#[tokio::test]
async fn refused_connections_are_connection_errors_not_statuses() {
    let server = LeaseApiServer::start().await.unwrap();
    server.refuse_connections(victim(), true);
    match leases(&server, "victim").get_opt("l").await {
        Err(kube::Error::Api(status)) => {
            panic!("got an HTTP status {status:?}, expected a connection error")
        }
        Err(_) => {}
        Ok(v) => panic!("a refused client got an answer: {v:?}"),
    }
    assert!(leases(&server, "bystander").get_opt("l").await.is_ok());
    server.refuse_connections(victim(), false);
    assert!(leases(&server, "victim").get_opt("l").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_requests_wait_for_release_then_apply() {
    let server = LeaseApiServer::start().await.unwrap();
    server.hang(victim());
    let api = leases(&server, "victim");
    let create =
        tokio::spawn(async move { api.create(&PostParams::default(), &lease("hung")).await });
    // Not applied while held: the bystander sees no Lease.
    let bystander = leases(&server, "bystander");
    for _ in 0..3 {
        assert!(bystander.get_opt("hung").await.unwrap().is_none());
        assert!(!create.is_finished());
    }
    server.release(victim());
    timeout(PATIENCE, create)
        .await
        .expect("released request completes")
        .unwrap()
        .expect("and succeeds");
    assert!(bystander.get_opt("hung").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_requests_are_never_applied_and_fail_when_healed() {
    let server = LeaseApiServer::start().await.unwrap();
    server.partition(victim());
    let api = leases(&server, "victim");
    let create =
        tokio::spawn(async move { api.create(&PostParams::default(), &lease("cut")).await });
    let bystander = leases(&server, "bystander");
    assert!(bystander.get_opt("cut").await.unwrap().is_none());
    assert!(!create.is_finished());
    server.heal(victim());
    let result = timeout(PATIENCE, create)
        .await
        .expect("held request ends on heal")
        .unwrap();
    assert!(
        matches!(&result, Err(e) if !matches!(e, kube::Error::Api(_))),
        "expected a connection error, got {result:?}"
    );
    assert!(
        bystander.get_opt("cut").await.unwrap().is_none(),
        "a partitioned write landed"
    );
    // After healing, requests work.
    leases(&server, "victim")
        .create(&PostParams::default(), &lease("cut"))
        .await
        .unwrap();
}

#[tokio::test]
async fn forbidden_verb_is_403_with_an_rbac_message() {
    let server = LeaseApiServer::start().await.unwrap();
    server.forbid(victim(), Verb::Patch);
    let api = leases(&server, "victim");
    api.create(&PostParams::default(), &lease("f"))
        .await
        .unwrap();
    let err = api
        .patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "y"}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected a status, got {err:?}");
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert!(
        status.message.contains("cannot patch resource \"leases\""),
        "{}",
        status.message
    );
    // Other verbs and other clients are unaffected.
    assert!(api.get("f").await.is_ok());
    assert!(
        leases(&server, "bystander")
            .patch(
                "f",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"holderIdentity": "y"}}))
            )
            .await
            .is_ok()
    );
    server.allow(victim(), Verb::Patch);
    assert!(
        api.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {}}))
        )
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn requests_are_counted_by_client_and_verb() {
    let server = LeaseApiServer::start().await.unwrap();
    let a = leases(&server, "a");
    a.create(&PostParams::default(), &lease("counted"))
        .await
        .unwrap();
    a.get("counted").await.unwrap();
    a.get("counted").await.unwrap();
    leases(&server, "b").get("counted").await.unwrap();
    let counts = server.requests();
    assert_eq!(counts.get("a", Verb::Create), 1);
    assert_eq!(counts.get("a", Verb::Get), 2);
    assert_eq!(counts.client("b"), 1);
    assert_eq!(counts.verb(Verb::Get), 3);
    assert_eq!(counts.total(), 4);
    server.reset_counts();
    assert_eq!(server.requests().total(), 0);
}

#[tokio::test]
async fn the_admin_endpoint_sets_faults_and_reports_counts() {
    let server = LeaseApiServer::start().await.unwrap();
    let http = |method: &str, path: &str, body: &str| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(kube::client::Body::from(body.as_bytes().to_vec()))
            .unwrap()
    };
    let admin = server.client_for("harness");
    let forbid = r#"{"target": "victim", "forbid": ["get"]}"#;
    let response = admin
        .send(http("POST", "/_testing/faults", forbid))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let err = leases(&server, "victim").get_opt("x").await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 403));
    let response = admin
        .send(http("POST", "/_testing/faults", r#"{"clear": true}"#))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(leases(&server, "victim").get_opt("x").await.is_ok());
    let get = http::Request::get("/_testing/requests")
        .body(Vec::new())
        .unwrap();
    let counts: serde_json::Value = admin.request(get).await.unwrap();
    assert_eq!(counts["total"], 2, "{counts}");
}

#[tokio::test]
async fn a_watch_of_a_partitioned_client_stops_delivering_and_breaks_on_heal() {
    use futures::TryStreamExt;
    let server = LeaseApiServer::start().await.unwrap();
    let api = leases(&server, "victim");
    let params = kube::api::WatchParams::default().timeout(30);
    let stream = api.watch(&params, "0").await.unwrap();
    let mut stream = std::pin::pin!(stream);
    server.partition(victim());
    leases(&server, "bystander")
        .create(&PostParams::default(), &lease("unseen"))
        .await
        .unwrap();
    assert!(
        timeout(Duration::from_millis(500), stream.try_next())
            .await
            .is_err(),
        "a partitioned watch delivered an event"
    );
    server.heal(victim());
    let after = timeout(PATIENCE, stream.try_next())
        .await
        .expect("the stream ends on heal");
    assert!(
        !matches!(after, Ok(Some(_))),
        "expected the stream to break, got {after:?}"
    );
}
