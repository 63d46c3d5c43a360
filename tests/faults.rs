//! Fault injection of the embedded server, one test per fault kind: each
//! aimed at one client, leaving the others untouched. Embedded server only.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube_elector_testing::{FaultTarget, LeaseApiServer, Resource, Verb};
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

fn candidate(name: &str) -> k8s_openapi::api::coordination::v1beta1::LeaseCandidate {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "leaseName": "l", "binaryVersion": "1.37.0",
            "emulationVersion": "1.37.0", "strategy": "OldestEmulationVersion",
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn candidate_requests_are_counted_and_forbidden_apart_from_lease_ones() {
    let server = LeaseApiServer::builder()
        .coordinated_leader_election(true)
        .start()
        .await
        .unwrap();
    let candidates: Api<k8s_openapi::api::coordination::v1beta1::LeaseCandidate> =
        Api::namespaced(server.client_for("victim"), "default");
    candidates
        .create(&PostParams::default(), &candidate("c"))
        .await
        .unwrap();
    candidates.get("c").await.unwrap();
    leases(&server, "victim").get_opt("l").await.unwrap();
    let counted = server.requests_for(Resource::LeaseCandidates);
    assert_eq!(counted.get("victim", Verb::Create), 1);
    assert_eq!(counted.get("victim", Verb::Get), 1);
    assert_eq!(counted.total(), 2);
    assert_eq!(server.requests().total(), 1, "Lease requests alone");
    assert_eq!(server.requests_for(Resource::Leases), server.requests());

    // A Role that grants Leases but not leasecandidates.
    server.forbid_resource(victim(), Resource::LeaseCandidates, Verb::Get);
    let err = candidates.get("c").await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected a status, got {err:?}");
    };
    assert_eq!(status.code, 403);
    assert!(
        status.message.contains(
            "cannot get resource \"leasecandidates\" in API group \"coordination.k8s.io\""
        ),
        "{}",
        status.message
    );
    assert!(leases(&server, "victim").get_opt("l").await.is_ok());
    server.forbid(victim(), Verb::Get);
    assert!(leases(&server, "victim").get_opt("l").await.is_err());
    server.allow_resource(victim(), Resource::LeaseCandidates, Verb::Get);
    assert!(candidates.get("c").await.is_ok());
    server.reset_counts();
    assert_eq!(server.requests_for(Resource::LeaseCandidates).total(), 0);

    // Over HTTP: `?resource=leasecandidates`, and `"resource"` in a fault.
    let admin = server.client_for("harness");
    let faults = http::Request::post("/_testing/faults")
        .header("content-type", "application/json")
        .body(br#"{"target": "victim", "resource": "leasecandidates", "forbid": ["get"]}"#.to_vec())
        .unwrap();
    let answer: serde_json::Value = admin.request(faults).await.unwrap();
    assert_eq!(answer["ok"], true);
    assert!(candidates.get("c").await.is_err());
    let get = http::Request::get("/_testing/requests?resource=leasecandidates")
        .body(Vec::new())
        .unwrap();
    let counts: serde_json::Value = admin.request(get).await.unwrap();
    assert_eq!(counts["total"], 1, "{counts}");
    assert_eq!(counts["requests"][0]["verb"], "get", "{counts}");
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

// === Watch and answer faults ===

type Changes = futures::stream::BoxStream<'static, kube::Result<WatchEvent<Lease>>>;

/// A watch of Lease `name` by `who`, from `version`.
async fn watch_of(server: &LeaseApiServer, who: &str, name: &str, version: &str) -> Changes {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(60);
    leases(server, who)
        .watch(&params, version)
        .await
        .expect("the watch starts")
        .boxed()
}

/// The next event that is not a bookmark, and when it arrived.
async fn next_change(changes: &mut Changes, what: &str) -> (WatchEvent<Lease>, Instant) {
    timeout(PATIENCE, async {
        loop {
            match changes.next().await {
                Some(Ok(WatchEvent::Bookmark(_))) => {}
                Some(Ok(event)) => return (event, Instant::now()),
                other => panic!("{what}: the watch ended or failed: {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: no event within {PATIENCE:?}"))
}

/// Whether the watch stays silent (no event, no end) for `window`.
async fn stays_silent(changes: &mut Changes, window: Duration) -> bool {
    timeout(window, changes.next()).await.is_err()
}

fn version_of(lease: &Lease) -> u64 {
    lease
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a numeric resourceVersion")
}

fn modified_version(event: &WatchEvent<Lease>) -> u64 {
    match event {
        WatchEvent::Modified(lease) => version_of(lease),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
}

fn holder(who: &str) -> Patch<serde_json::Value> {
    Patch::Merge(json!({"spec": {"holderIdentity": who}}))
}

/// Creates Lease `name` and returns its resourceVersion.
async fn created(server: &LeaseApiServer, name: &str) -> u64 {
    let lease = leases(server, "writer")
        .create(&PostParams::default(), &lease(name))
        .await
        .expect("the Lease is created");
    version_of(&lease)
}

#[tokio::test]
async fn a_delayed_watch_delivers_each_event_no_earlier_than_the_delay() {
    let server = LeaseApiServer::start().await.unwrap();
    let version = created(&server, "d").await.to_string();
    let mut slow = watch_of(&server, "victim", "d", &version).await;
    let mut fast = watch_of(&server, "bystander", "d", &version).await;
    let delay = Duration::from_millis(400);
    server.delay_watch(victim(), delay);

    // The event reaches the watch after the write was sent, so it is held
    // at least `delay` past this instant.
    let sent = Instant::now();
    leases(&server, "writer")
        .patch("d", &PatchParams::default(), &holder("y"))
        .await
        .unwrap();
    let (fast_event, fast_at) = next_change(&mut fast, "bystander").await;
    let (slow_event, slow_at) = next_change(&mut slow, "delayed watch").await;
    assert_eq!(modified_version(&slow_event), modified_version(&fast_event));
    assert!(
        slow_at.duration_since(sent) >= delay,
        "the delayed watch got the event {:?} after the write was sent",
        slow_at.duration_since(sent)
    );
    assert!(fast_at < slow_at, "the bystander's watch was delayed too");

    // Zero clears it; events stay in order.
    server.delay_watch(victim(), Duration::ZERO);
    leases(&server, "writer")
        .patch("d", &PatchParams::default(), &holder("z"))
        .await
        .unwrap();
    let (next, _) = next_change(&mut slow, "after the delay is cleared").await;
    assert!(modified_version(&next) > modified_version(&slow_event));
}

#[tokio::test]
async fn a_black_holed_watch_delivers_nothing_then_what_it_missed_when_lifted() {
    let server = LeaseApiServer::start().await.unwrap();
    let version = created(&server, "b").await.to_string();
    let mut open = watch_of(&server, "victim", "b", &version).await;
    let mut bystander = watch_of(&server, "bystander", "b", &version).await;
    server.black_hole_watch(victim(), true);
    // New watches are black-holed too: connected, but even their backlog is held.
    let mut new = watch_of(&server, "victim", "b", "0").await;

    leases(&server, "writer")
        .patch("b", &PatchParams::default(), &holder("y"))
        .await
        .unwrap();
    let (seen, _) = next_change(&mut bystander, "bystander").await;
    let version = modified_version(&seen);
    assert!(
        stays_silent(&mut open, Duration::from_millis(500)).await,
        "an open black-holed watch delivered something"
    );
    assert!(
        stays_silent(&mut new, Duration::from_millis(100)).await,
        "a new black-holed watch delivered something"
    );

    server.black_hole_watch(victim(), false);
    let (missed, _) = next_change(&mut open, "open watch, lifted").await;
    assert_eq!(modified_version(&missed), version, "the missed event");
    // The new watch's backlog (the Lease as it was when it started), then
    // the change.
    match next_change(&mut new, "new watch, lifted").await.0 {
        WatchEvent::Added(lease) => assert!(version_of(&lease) < version),
        other => panic!("expected the backlog's ADDED, got {other:?}"),
    }
    let (change, _) = next_change(&mut new, "new watch, the change").await;
    assert_eq!(modified_version(&change), version);
}

#[tokio::test]
async fn a_failed_watch_answers_200_then_one_500_error_event_and_ends() {
    let server = LeaseApiServer::start().await.unwrap();
    server.fail_watch(victim(), true);
    let mut broken = watch_of(&server, "victim", "e", "0").await;
    let first = timeout(PATIENCE, broken.next())
        .await
        .expect("the error event arrives");
    match first {
        Some(Ok(WatchEvent::Error(status))) => {
            assert_eq!(
                (status.code, status.reason.as_str()),
                (500, "InternalError")
            );
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
    let after = timeout(PATIENCE, broken.next())
        .await
        .expect("the stream ends");
    assert!(after.is_none(), "expected the end, got {after:?}");

    let mut bystander = watch_of(&server, "bystander", "e", "0").await;
    created(&server, "e").await;
    assert!(matches!(
        next_change(&mut bystander, "bystander").await.0,
        WatchEvent::Added(_)
    ));
    server.fail_watch(victim(), false);
    let mut healed = watch_of(&server, "victim", "e", "0").await;
    assert!(matches!(
        next_change(&mut healed, "after lifting").await.0,
        WatchEvent::Added(_)
    ));
}

#[tokio::test]
async fn a_lost_write_answer_is_a_connection_error_but_the_write_landed_once() {
    let server = LeaseApiServer::start().await.unwrap();
    let before = created(&server, "w").await;
    server.lose_write_answers(victim(), true);
    let result = leases(&server, "victim")
        .patch("w", &PatchParams::default(), &holder("victim"))
        .await;
    assert!(
        matches!(&result, Err(e) if !matches!(e, kube::Error::Api(_))),
        "expected a connection error, got {result:?}"
    );
    let bystander = leases(&server, "bystander");
    let landed = bystander.get("w").await.unwrap();
    assert_eq!(version_of(&landed), before + 1, "applied exactly once");
    assert_eq!(
        landed.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("victim")
    );
    assert_eq!(
        server.requests().get("victim", Verb::Patch),
        1,
        "not retried"
    );
    // Reads of the victim and writes of others are answered.
    assert!(leases(&server, "victim").get("w").await.is_ok());
    bystander
        .patch("w", &PatchParams::default(), &holder("bystander"))
        .await
        .expect("a bystander's write is answered");
    server.lose_write_answers(victim(), false);
    leases(&server, "victim")
        .patch("w", &PatchParams::default(), &holder("victim"))
        .await
        .expect("answered once lifted");
}

#[tokio::test]
async fn a_delayed_write_answer_comes_late_but_the_write_applies_at_once() {
    let server = LeaseApiServer::start().await.unwrap();
    let version = created(&server, "a").await.to_string();
    let mut bystander_watch = watch_of(&server, "bystander", "a", &version).await;
    let delay = Duration::from_millis(400);
    server.delay_write_answers(victim(), delay);
    let api = leases(&server, "victim");
    let sent = Instant::now();
    let slow = tokio::spawn(async move {
        let result = api
            .patch("a", &PatchParams::default(), &holder("victim"))
            .await;
        (result, Instant::now())
    });
    // Applied before it is answered: others see it first.
    let (event, seen_at) = next_change(&mut bystander_watch, "bystander").await;
    assert!(modified_version(&event) > 0);
    leases(&server, "bystander")
        .get("a")
        .await
        .expect("a bystander's request is answered");
    let bystander_done = Instant::now();
    let (result, answered_at) = timeout(PATIENCE, slow)
        .await
        .expect("the delayed answer arrives")
        .unwrap();
    result.expect("and it is the write's answer");
    assert!(
        answered_at.duration_since(sent) >= delay,
        "answered {:?} after it was sent",
        answered_at.duration_since(sent)
    );
    assert!(seen_at < answered_at, "the write was not applied at once");
    assert!(
        bystander_done < answered_at,
        "the bystander was delayed too"
    );
}

#[tokio::test]
async fn stale_reads_answer_an_older_version_than_one_already_served() {
    let server = LeaseApiServer::start().await.unwrap();
    let old = created(&server, "s").await;
    server.stale_reads(victim(), true);
    leases(&server, "writer")
        .patch("s", &PatchParams::default(), &holder("new"))
        .await
        .unwrap();
    let fresh = leases(&server, "bystander").get("s").await.unwrap();
    assert!(version_of(&fresh) > old);

    let api = leases(&server, "victim");
    let stale = api.get("s").await.unwrap();
    assert_eq!(version_of(&stale), old, "the victim's GET is not stale");
    assert!(version_of(&stale) < version_of(&fresh));
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.metadata.resource_version, Some(old.to_string()));
    assert_eq!(list.items.iter().map(version_of).collect::<Vec<_>>(), [old]);

    // Writes see the store: one based on the stale read conflicts.
    let err = api
        .replace("s", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err:?}"
    );

    server.stale_reads(victim(), false);
    assert_eq!(version_of(&api.get("s").await.unwrap()), version_of(&fresh));
}

/// Posts `body` to `/_testing/faults` and checks it was accepted.
async fn set_faults(admin: &kube::Client, body: &str) {
    let request = http::Request::post("/_testing/faults")
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec())
        .unwrap();
    let answer: serde_json::Value = admin.request(request).await.unwrap();
    assert_eq!(answer["ok"], true, "{body}: {answer}");
}

#[tokio::test]
async fn the_admin_endpoint_sets_the_watch_and_answer_faults() {
    let server = LeaseApiServer::start().await.unwrap();
    let admin = server.client_for("harness");
    let api = leases(&server, "victim");
    let writer = leases(&server, "writer");
    let version = created(&server, "adm").await;

    // Stale reads: the victim keeps reading the version of this moment.
    set_faults(&admin, r#"{"target": "victim", "stale_reads": true}"#).await;
    writer
        .patch("adm", &PatchParams::default(), &holder("w1"))
        .await
        .unwrap();
    assert_eq!(version_of(&api.get("adm").await.unwrap()), version);
    set_faults(&admin, r#"{"target": "victim", "stale_reads": false}"#).await;
    let version = version_of(&api.get("adm").await.unwrap());

    // Lost write answers: an error, and the write landed once.
    set_faults(
        &admin,
        r#"{"target": "victim", "lose_write_answers": true}"#,
    )
    .await;
    let lost = api
        .patch("adm", &PatchParams::default(), &holder("victim"))
        .await;
    assert!(
        matches!(&lost, Err(e) if !matches!(e, kube::Error::Api(_))),
        "{lost:?}"
    );
    set_faults(
        &admin,
        r#"{"target": "victim", "lose_write_answers": false}"#,
    )
    .await;
    assert_eq!(version_of(&api.get("adm").await.unwrap()), version + 1);

    // Late write answers.
    let delay = Duration::from_millis(300);
    set_faults(
        &admin,
        r#"{"target": "victim", "write_answer_delay_ms": 300}"#,
    )
    .await;
    let sent = Instant::now();
    api.patch("adm", &PatchParams::default(), &holder("late"))
        .await
        .unwrap();
    assert!(sent.elapsed() >= delay, "the write answer was not delayed");
    set_faults(
        &admin,
        r#"{"target": "victim", "write_answer_delay_ms": 0}"#,
    )
    .await;

    // Failed watches.
    set_faults(&admin, r#"{"target": "victim", "watch_error": true}"#).await;
    let mut broken = watch_of(&server, "victim", "adm", "0").await;
    let first = timeout(PATIENCE, broken.next()).await.expect("an event");
    assert!(
        matches!(&first, Some(Ok(WatchEvent::Error(s))) if s.code == 500),
        "{first:?}"
    );
    set_faults(&admin, r#"{"target": "victim", "watch_error": false}"#).await;

    // Black-holed and delayed watches.
    let version = version_of(&api.get("adm").await.unwrap()).to_string();
    let mut watch = watch_of(&server, "victim", "adm", &version).await;
    set_faults(&admin, r#"{"target": "victim", "watch_black_hole": true}"#).await;
    writer
        .patch("adm", &PatchParams::default(), &holder("w2"))
        .await
        .unwrap();
    assert!(
        stays_silent(&mut watch, Duration::from_millis(300)).await,
        "a black-holed watch delivered something"
    );
    set_faults(
        &admin,
        r#"{"target": "victim", "watch_black_hole": false, "watch_delay_ms": 300}"#,
    )
    .await;
    next_change(&mut watch, "black hole lifted").await;
    let sent = Instant::now();
    writer
        .patch("adm", &PatchParams::default(), &holder("w3"))
        .await
        .unwrap();
    let (_, at) = next_change(&mut watch, "delayed watch").await;
    assert!(
        at.duration_since(sent) >= delay,
        "the watch was not delayed"
    );

    set_faults(&admin, r#"{"clear": true}"#).await;
    api.patch("adm", &PatchParams::default(), &holder("victim"))
        .await
        .expect("no fault left");
}
