//! The Lease API rules, as kube-apiserver keeps them. Runs against the
//! embedded server, or a real one named by `KUBE_ELECTOR_TEST_KUBECONFIG`:
//! every difference between the two is a bug in the embedded server.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::coordination::v1beta1::{LeaseCandidate, LeaseCandidateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::time::timeout;

use support::Target;

const PATIENCE: Duration = Duration::from_secs(20);

fn lease(name: &str, holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }),
    }
}

fn api(target: &Target, who: &str) -> Api<Lease> {
    Api::namespaced(target.client_for(who), target.namespace())
}

fn status_of(err: kube::Error) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("expected a Status error, got {other:?}"),
    }
}

fn rv(lease: &Lease) -> u64 {
    lease
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

// === Create, read, metadata ===

#[tokio::test]
async fn create_fills_server_metadata_and_get_returns_it() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("create");
    let created = leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    assert!(
        created
            .metadata
            .uid
            .as_deref()
            .is_some_and(|u| !u.is_empty())
    );
    assert!(created.metadata.creation_timestamp.is_some());
    assert!(rv(&created) > 0);
    assert_eq!(
        created.metadata.namespace.as_deref(),
        Some(target.namespace())
    );
    let got = leases.get(&name).await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(holder(&got), Some("a"));
}

#[tokio::test]
async fn second_create_of_a_name_is_already_exists() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("twice");
    let (la, lb) = (lease(&name, "a"), lease(&name, "b"));
    let params = PostParams::default();
    let (a, b) = tokio::join!(leases.create(&params, &la), leases.create(&params, &lb));
    let (winner, loser) = match (a, b) {
        (Ok(w), Err(e)) | (Err(e), Ok(w)) => (w, e),
        other => panic!("exactly one create must win: {other:?}"),
    };
    let status = status_of(loser);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );
    assert!(status.message.contains(&name), "{}", status.message);
    assert_eq!(holder(&leases.get(&name).await.unwrap()), holder(&winner));
}

#[tokio::test]
async fn missing_lease_is_not_found_with_a_status_body() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("missing");
    let status = status_of(leases.get(&name).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        status.message,
        format!("leases.coordination.k8s.io \"{name}\" not found")
    );
    let status = status_of(
        leases
            .delete(&name, &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 404);
    let status = status_of(
        leases
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 404);
}

#[tokio::test]
async fn a_uid_in_a_put_is_a_precondition() {
    // A write based on a Lease that was deleted (and maybe re-created) must
    // not land: the uid of the object it was based on guards it.
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("uid");
    let first = leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    leases
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let status = status_of(
        leases
            .replace(&name, &PostParams::default(), &first)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("Precondition failed: UID"),
        "{}",
        status.message
    );
    assert!(
        leases.get_opt(&name).await.unwrap().is_none(),
        "the PUT created the Lease"
    );
    // Re-created: a new uid, so the old one still does not match.
    leases
        .create(&PostParams::default(), &lease(&name, "b"))
        .await
        .unwrap();
    let mut stale = first.clone();
    stale.metadata.resource_version = None;
    let status = status_of(
        leases
            .replace(&name, &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 409);
    assert_eq!(holder(&leases.get(&name).await.unwrap()), Some("b"));
}

#[tokio::test]
async fn put_of_a_missing_lease_creates_it() {
    // Leases allow create-on-update: kube-apiserver creates a missing Lease
    // on PUT, whatever resourceVersion the body names.
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("putcreate");
    let mut body = lease(&name, "x");
    body.metadata.resource_version = Some("12".into());
    let created = leases
        .replace(&name, &PostParams::default(), &body)
        .await
        .unwrap();
    assert_eq!(holder(&created), Some("x"));
    assert!(created.metadata.uid.is_some());
}

// === Conditional writes ===

#[tokio::test]
async fn stale_put_is_a_conflict_and_leaves_the_object_unchanged() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("stale");
    let v1 = leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    let mut fresh = v1.clone();
    fresh.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let v2 = leases
        .replace(&name, &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert!(rv(&v2) > rv(&v1), "every write raises the resourceVersion");

    let mut stale = v1.clone();
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let status = status_of(
        leases
            .replace(&name, &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("the object has been modified"),
        "{}",
        status.message
    );
    let now = leases.get(&name).await.unwrap();
    assert_eq!(holder(&now), Some("b"));
    assert_eq!(now.metadata.resource_version, v2.metadata.resource_version);
}

#[tokio::test]
async fn patch_carrying_a_stale_resource_version_is_a_conflict() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("patchrv");
    let v1 = leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    let good = json!({"metadata": {"resourceVersion": v1.metadata.resource_version}, "spec": {"holderIdentity": "b"}});
    let v2 = leases
        .patch(&name, &PatchParams::default(), &Patch::Merge(&good))
        .await
        .unwrap();
    assert_eq!(holder(&v2), Some("b"));
    let stale = json!({"metadata": {"resourceVersion": v1.metadata.resource_version}, "spec": {"holderIdentity": "c"}});
    let status = status_of(
        leases
            .patch(&name, &PatchParams::default(), &Patch::Merge(&stale))
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(holder(&leases.get(&name).await.unwrap()), Some("b"));
}

#[tokio::test]
async fn resource_versions_increase_across_objects() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let a = leases
        .create(
            &PostParams::default(),
            &lease(&support::unique_name("rv-a"), "x"),
        )
        .await
        .unwrap();
    let b = leases
        .create(
            &PostParams::default(),
            &lease(&support::unique_name("rv-b"), "x"),
        )
        .await
        .unwrap();
    assert!(rv(&b) > rv(&a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_racing_conditional_updates_each_version_won_once_none_lost() {
    let target = Target::new().await;
    let name = support::unique_name("race");
    let admin = api(&target, "admin");
    let mut initial = lease(&name, "start");
    initial.spec.as_mut().unwrap().lease_transitions = Some(0);
    admin
        .create(&PostParams::default(), &initial)
        .await
        .unwrap();

    // Each task increments leaseTransitions with read-modify-write until it
    // has succeeded once; the versions each success was based on must differ.
    let won: Arc<std::sync::Mutex<Vec<(u64, u64)>>> = Arc::default();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let leases = api(&target, &format!("racer-{}", i % 5));
            let name = name.clone();
            let won = Arc::clone(&won);
            tokio::spawn(async move {
                loop {
                    let mut current = leases.get(&name).await.unwrap();
                    let based_on = rv(&current);
                    let spec = current.spec.as_mut().unwrap();
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.holder_identity = Some(format!("racer-{i}"));
                    match leases
                        .replace(&name, &PostParams::default(), &current)
                        .await
                    {
                        Ok(written) => {
                            won.lock().unwrap().push((based_on, rv(&written)));
                            return;
                        }
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            })
        })
        .collect();
    timeout(
        Duration::from_secs(120),
        futures::future::try_join_all(tasks),
    )
    .await
    .expect("the race finishes")
    .unwrap();
    let won = won.lock().unwrap().clone();
    let based: BTreeSet<u64> = won.iter().map(|(b, _)| *b).collect();
    let written: BTreeSet<u64> = won.iter().map(|(_, w)| *w).collect();
    assert_eq!(won.len(), 50);
    assert_eq!(
        based.len(),
        50,
        "two writers won on the same resourceVersion"
    );
    assert_eq!(written.len(), 50);
    let last = admin.get(&name).await.unwrap();
    assert_eq!(
        last.spec.unwrap().lease_transitions,
        Some(50),
        "an update was lost"
    );
}

// === Validation ===

#[tokio::test]
async fn invalid_specs_are_refused_with_invalid() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    for (field, spec) in [
        (
            "spec.leaseDurationSeconds",
            LeaseSpec {
                lease_duration_seconds: Some(0),
                ..LeaseSpec::default()
            },
        ),
        (
            "spec.leaseDurationSeconds",
            LeaseSpec {
                lease_duration_seconds: Some(-3),
                ..LeaseSpec::default()
            },
        ),
        (
            "spec.leaseTransitions",
            LeaseSpec {
                lease_transitions: Some(-1),
                ..LeaseSpec::default()
            },
        ),
    ] {
        let name = support::unique_name("invalid");
        let bad = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        };
        let status = status_of(
            leases
                .create(&PostParams::default(), &bad)
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (status.code, status.reason.as_str()),
            (422, "Invalid"),
            "{field}"
        );
        assert!(status.message.contains(field), "{}", status.message);
        assert!(
            leases.get_opt(&name).await.unwrap().is_none(),
            "nothing was stored"
        );
    }
    let status = status_of(
        leases
            .create(&PostParams::default(), &lease("Not_A_Name", "x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 422);
}

#[tokio::test]
async fn unparseable_times_are_refused() {
    let target = Target::new().await;
    let client = target.client_for("admin");
    let name = support::unique_name("badtime");
    let body = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": "a", "renewTime": "not a time"}
    });
    let status = raw(
        &client,
        "POST",
        &leases_path(&target, None),
        Some(&body),
        "application/json",
    )
    .await;
    // kube-apiserver fails to decode the object: 400 BadRequest.
    assert_eq!(status.0, 400, "{}", status.1);
    assert_eq!(status.1["reason"], "BadRequest");
    assert!(status.1["message"].as_str().unwrap().contains("not a time"));
}

#[tokio::test]
async fn micro_times_come_back_with_microseconds() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("micro");
    let mut l = lease(&name, "a");
    let t: jiff::Timestamp = "2026-11-24T14:00:00.123456789Z".parse().unwrap();
    l.spec.as_mut().unwrap().renew_time = Some(MicroTime(t));
    leases.create(&PostParams::default(), &l).await.unwrap();
    let client = target.client_for("admin");
    let (code, body) = raw(&client, "GET", &leases_path(&target, Some(&name)), None, "").await;
    assert_eq!(code, 200);
    assert_eq!(body["spec"]["renewTime"], "2026-11-24T14:00:00.123456Z");
}

// === Coordinated leader election: the feature gate ===
//
// `spec.strategy` and `spec.preferredHolder` belong to the
// CoordinatedLeaderElection feature gate (beta, off by default in
// Kubernetes 1.33 to 1.37). Off, kube-apiserver drops them before it
// validates a Lease; on, it keeps them and refuses a preferredHolder
// without a strategy. Against a real server these tests run only in the
// gate mode that KUBE_ELECTOR_TEST_COORDINATED_LEADER_ELECTION names.

fn coordinated(name: &str, strategy: Option<&str>, preferred: Option<&str>) -> Lease {
    let mut lease = lease(name, "a");
    let spec = lease.spec.as_mut().unwrap();
    spec.strategy = strategy.map(Into::into);
    spec.preferred_holder = preferred.map(Into::into);
    lease
}

/// `(strategy, preferredHolder)` of a Lease.
fn coordination_of(lease: &Lease) -> (Option<&str>, Option<&str>) {
    let spec = lease.spec.as_ref();
    (
        spec.and_then(|s| s.strategy.as_deref()),
        spec.and_then(|s| s.preferred_holder.as_deref()),
    )
}

/// A server-side apply configuration of a whole Lease spec.
fn apply_config(name: &str, spec: &Value) -> Patch<Value> {
    Patch::Apply(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name},
        "spec": spec,
    }))
}

/// A JSON merge patch of `name`, which must succeed.
async fn merge(leases: &Api<Lease>, name: &str, patch: Value) -> Lease {
    leases
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap()
}

#[tokio::test]
async fn gate_off_drops_strategy_and_preferred_holder_on_create() {
    let Some(target) = Target::with_coordinated_leader_election(false).await else {
        return;
    };
    let leases = api(&target, "admin");
    // Valid with the gate on, a preferredHolder alone (refused with the gate
    // on), an unknown strategy (refused with the gate on): each is created,
    // without the two fields, the rest of its spec kept. They are dropped
    // before validation.
    for (strategy, preferred) in [
        (Some("OldestEmulationVersion"), Some("b")),
        (None, Some("b")),
        (Some("example.com/mine"), None),
        (Some("NoSuchStrategy"), None),
    ] {
        let name = support::unique_name("gate-off-create");
        let created = leases
            .create(
                &PostParams::default(),
                &coordinated(&name, strategy, preferred),
            )
            .await
            .unwrap();
        assert_eq!(coordination_of(&created), (None, None), "{strategy:?}");
        assert_eq!(holder(&created), Some("a"));
        assert_eq!(
            created.spec.as_ref().unwrap().lease_duration_seconds,
            Some(15)
        );
        let got = leases.get(&name).await.unwrap();
        assert_eq!(coordination_of(&got), (None, None), "{strategy:?}");
    }
    // Create-on-PUT and server-side apply of a missing Lease create too.
    let name = support::unique_name("gate-off-put");
    let created = leases
        .replace(
            &name,
            &PostParams::default(),
            &coordinated(&name, Some("OldestEmulationVersion"), Some("b")),
        )
        .await
        .unwrap();
    assert_eq!(coordination_of(&created), (None, None));
    assert_eq!(holder(&created), Some("a"));
    let name = support::unique_name("gate-off-apply");
    let spec = json!({"holderIdentity": "a", "strategy": "OldestEmulationVersion", "preferredHolder": "b"});
    let created = leases
        .patch(
            &name,
            &PatchParams::apply("conformance"),
            &apply_config(&name, &spec),
        )
        .await
        .unwrap();
    assert_eq!(coordination_of(&created), (None, None));
    assert_eq!(holder(&created), Some("a"));
}

#[tokio::test]
async fn gate_off_drops_strategy_and_preferred_holder_on_update() {
    let Some(target) = Target::with_coordinated_leader_election(false).await else {
        return;
    };
    let leases = api(&target, "admin");
    let name = support::unique_name("gate-off-update");
    let created = leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();

    // PUT: the holder changes, the two fields do not arrive.
    let mut next = created.clone();
    let spec = next.spec.as_mut().unwrap();
    spec.holder_identity = Some("b".into());
    spec.strategy = Some("OldestEmulationVersion".into());
    spec.preferred_holder = Some("c".into());
    let replaced = leases
        .replace(&name, &PostParams::default(), &next)
        .await
        .unwrap();
    assert_eq!(holder(&replaced), Some("b"));
    assert_eq!(coordination_of(&replaced), (None, None));

    // A preferredHolder alone is no error: it is dropped before validation.
    let mut next = replaced.clone();
    let spec = next.spec.as_mut().unwrap();
    spec.holder_identity = Some("c".into());
    spec.preferred_holder = Some("d".into());
    let replaced = leases
        .replace(&name, &PostParams::default(), &next)
        .await
        .unwrap();
    assert_eq!(holder(&replaced), Some("c"));
    assert_eq!(coordination_of(&replaced), (None, None));

    // Merge and JSON patches.
    let patched = merge(
        &leases,
        &name,
        json!({"spec": {
            "holderIdentity": "d", "strategy": "OldestEmulationVersion", "preferredHolder": "e"
        }}),
    )
    .await;
    assert_eq!(holder(&patched), Some("d"));
    assert_eq!(coordination_of(&patched), (None, None));
    let ops = json!([
        {"op": "replace", "path": "/spec/holderIdentity", "value": "e"},
        {"op": "add", "path": "/spec/strategy", "value": "OldestEmulationVersion"},
        {"op": "add", "path": "/spec/preferredHolder", "value": "f"},
    ]);
    let (code, body) = raw(
        &target.client_for("admin"),
        "PATCH",
        &leases_path(&target, Some(&name)),
        Some(&ops),
        "application/json-patch+json",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let patched: Lease = serde_json::from_value(body).unwrap();
    assert_eq!(holder(&patched), Some("e"));
    assert_eq!(coordination_of(&patched), (None, None));

    // Server-side apply of an existing Lease.
    let spec = json!({"holderIdentity": "f", "strategy": "OldestEmulationVersion", "preferredHolder": "g"});
    let applied = leases
        .patch(
            &name,
            &PatchParams::apply("conformance").force(),
            &apply_config(&name, &spec),
        )
        .await
        .unwrap();
    assert_eq!(holder(&applied), Some("f"));
    assert_eq!(coordination_of(&applied), (None, None));
    assert_eq!(
        coordination_of(&leases.get(&name).await.unwrap()),
        (None, None)
    );
}

#[tokio::test]
async fn gate_on_keeps_strategy_and_preferred_holder_through_create_update_and_patch() {
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    let leases = api(&target, "admin");
    let name = support::unique_name("gate-on");
    let created = leases
        .create(
            &PostParams::default(),
            &coordinated(&name, Some("OldestEmulationVersion"), Some("b")),
        )
        .await
        .unwrap();
    assert_eq!(
        coordination_of(&created),
        (Some("OldestEmulationVersion"), Some("b"))
    );
    assert_eq!(
        coordination_of(&leases.get(&name).await.unwrap()),
        (Some("OldestEmulationVersion"), Some("b"))
    );

    let mut next = created.clone();
    next.spec.as_mut().unwrap().preferred_holder = Some("c".into());
    let replaced = leases
        .replace(&name, &PostParams::default(), &next)
        .await
        .unwrap();
    assert_eq!(
        coordination_of(&replaced),
        (Some("OldestEmulationVersion"), Some("c"))
    );

    let patched = merge(
        &leases,
        &name,
        json!({"spec": {"strategy": "example.com/mine", "preferredHolder": "d"}}),
    )
    .await;
    assert_eq!(
        coordination_of(&patched),
        (Some("example.com/mine"), Some("d"))
    );
    // A strategy without a preferredHolder is valid.
    let patched = merge(&leases, &name, json!({"spec": {"preferredHolder": null}})).await;
    assert_eq!(coordination_of(&patched), (Some("example.com/mine"), None));

    // Server-side apply creates with them too.
    let name = support::unique_name("gate-on-apply");
    let spec = json!({"holderIdentity": "a", "strategy": "OldestEmulationVersion", "preferredHolder": "b"});
    let applied = leases
        .patch(
            &name,
            &PatchParams::apply("conformance"),
            &apply_config(&name, &spec),
        )
        .await
        .unwrap();
    assert_eq!(
        coordination_of(&applied),
        (Some("OldestEmulationVersion"), Some("b"))
    );
}

/// Checks a 422 for one field: the cause's field and reason, and its
/// message in the Status message.
fn assert_invalid(code: u16, body: &Value, field: &str, reason: &str, message: &str) {
    assert_status(code, body, 422);
    assert_eq!(body["reason"], "Invalid", "{body}");
    let causes = body["details"]["causes"].as_array().expect("causes");
    assert!(
        causes
            .iter()
            .any(|c| c["field"] == field && c["reason"] == reason),
        "{body}"
    );
    let expected = format!("{field}: {message}");
    assert!(
        body["message"].as_str().unwrap().contains(&expected),
        "{expected:?} not in {body}"
    );
}

/// Sends `body` and checks that it is refused for a `preferredHolder`
/// without a `strategy`.
async fn assert_refuses_preferred_holder(
    target: &Target,
    method: &str,
    name: Option<&str>,
    body: &Value,
    content_type: &str,
) {
    let client = target.client_for("admin");
    let (code, status) = raw(
        &client,
        method,
        &leases_path(target, name),
        Some(body),
        content_type,
    )
    .await;
    assert_invalid(
        code,
        &status,
        "spec.preferredHolder",
        "FieldValueForbidden",
        "Forbidden: may only be specified if `strategy` is defined",
    );
}

#[tokio::test]
async fn gate_on_refuses_a_preferred_holder_without_a_strategy() {
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    let leases = api(&target, "admin");

    // Create.
    let name = support::unique_name("gate-on-invalid");
    let body = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": "a", "preferredHolder": "b"}
    });
    assert_refuses_preferred_holder(&target, "POST", None, &body, "application/json").await;
    assert!(
        leases.get_opt(&name).await.unwrap().is_none(),
        "nothing was stored"
    );
    // An empty preferredHolder is none.
    let created = leases
        .create(&PostParams::default(), &coordinated(&name, None, Some("")))
        .await
        .unwrap();
    assert_eq!(coordination_of(&created).0, None);

    // Update (PUT and merge patch) of a Lease without a strategy.
    let mut next = created.clone();
    next.spec.as_mut().unwrap().preferred_holder = Some("b".into());
    let body = serde_json::to_value(&next).unwrap();
    assert_refuses_preferred_holder(&target, "PUT", Some(&name), &body, "application/json").await;
    let merge = json!({"spec": {"preferredHolder": "b"}});
    assert_refuses_preferred_holder(
        &target,
        "PATCH",
        Some(&name),
        &merge,
        "application/merge-patch+json",
    )
    .await;
    let stored = leases.get(&name).await.unwrap();
    assert_eq!(
        stored.metadata.resource_version,
        created.metadata.resource_version
    );

    // Removing the strategy from under a preferredHolder.
    let name = support::unique_name("gate-on-unset");
    leases
        .create(
            &PostParams::default(),
            &coordinated(&name, Some("OldestEmulationVersion"), Some("b")),
        )
        .await
        .unwrap();
    let unset = json!({"spec": {"strategy": null}});
    assert_refuses_preferred_holder(
        &target,
        "PATCH",
        Some(&name),
        &unset,
        "application/merge-patch+json",
    )
    .await;

    // A strategy must be one Kubernetes defines, or prefixed; the field path
    // names `strategy` twice, as kube-apiserver's validation does.
    let name = support::unique_name("gate-on-strategy");
    let body = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": "a", "strategy": "NoSuchStrategy"}
    });
    let (code, status) = raw(
        &target.client_for("admin"),
        "POST",
        &leases_path(&target, None),
        Some(&body),
        "application/json",
    )
    .await;
    assert_invalid(
        code,
        &status,
        "spec.strategy.strategy",
        "FieldValueNotSupported",
        "Unsupported value: \"NoSuchStrategy\": supported values: \"OldestEmulationVersion\"",
    );
}

// === Patches ===

#[tokio::test]
async fn merge_and_strategic_patches_update_fields_and_null_removes() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("merge");
    leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    let patched = leases
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "b", "leaseDurationSeconds": null}})),
        )
        .await
        .unwrap();
    let spec = patched.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_duration_seconds, None);
    let patched = leases
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"metadata": {"labels": {"app": "x"}}, "spec": {"leaseTransitions": 2}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["app"], "x");
    assert_eq!(patched.spec.unwrap().lease_transitions, Some(2));
}

#[tokio::test]
async fn json_patch_test_operation_guards_the_write() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("jsonpatch");
    leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    let ops = json!([
        {"op": "test", "path": "/spec/holderIdentity", "value": "a"},
        {"op": "replace", "path": "/spec/holderIdentity", "value": "b"}
    ]);
    let client = target.client_for("admin");
    let (code, _) = raw(
        &client,
        "PATCH",
        &leases_path(&target, Some(&name)),
        Some(&ops),
        "application/json-patch+json",
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(holder(&leases.get(&name).await.unwrap()), Some("b"));
    // The same patch again fails its test and changes nothing.
    let (code, _) = raw(
        &client,
        "PATCH",
        &leases_path(&target, Some(&name)),
        Some(&ops),
        "application/json-patch+json",
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(holder(&leases.get(&name).await.unwrap()), Some("b"));
}

#[tokio::test]
async fn server_side_apply_owns_fields_and_conflicts_unless_forced() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("apply");
    let config = |holder: &str| {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 10}
        })
    };
    // Apply creates a missing object.
    let created = leases
        .patch(
            &name,
            &PatchParams::apply("alice"),
            &Patch::Apply(config("a")),
        )
        .await
        .unwrap();
    assert_eq!(holder(&created), Some("a"));
    let managers: Vec<_> = created
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                m.operation.unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("alice".into(), "Apply".into())),
        "{managers:?}"
    );

    // Another manager applying the same value shares the field: no conflict.
    leases
        .patch(
            &name,
            &PatchParams::apply("bob"),
            &Patch::Apply(config("a")),
        )
        .await
        .unwrap();
    // A different value conflicts with alice (bob shares it now, so only alice).
    let status = status_of(
        leases
            .patch(
                &name,
                &PatchParams::apply("carol"),
                &Patch::Apply(config("c")),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains(".spec.holderIdentity"),
        "{}",
        status.message
    );
    assert!(status.message.contains("alice"), "{}", status.message);
    assert_eq!(holder(&leases.get(&name).await.unwrap()), Some("a"));
    // With force it wins.
    let forced = leases
        .patch(
            &name,
            &PatchParams::apply("carol").force(),
            &Patch::Apply(config("c")),
        )
        .await
        .unwrap();
    assert_eq!(holder(&forced), Some("c"));
    // And now alice conflicts with carol.
    let status = status_of(
        leases
            .patch(
                &name,
                &PatchParams::apply("alice"),
                &Patch::Apply(config("a")),
            )
            .await
            .unwrap_err(),
    );
    assert!(status.message.contains("carol"), "{}", status.message);
}

#[tokio::test]
async fn apply_without_field_manager_is_refused() {
    let target = Target::new().await;
    let client = target.client_for("admin");
    let name = support::unique_name("nomanager");
    let body = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name}});
    let (code, status) = raw(
        &client,
        "PATCH",
        &leases_path(&target, Some(&name)),
        Some(&body),
        "application/apply-patch+yaml",
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"].as_str().unwrap().contains("fieldManager"),
        "{status}"
    );
}

#[tokio::test]
async fn an_update_takes_ownership_of_the_fields_it_changes() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("takeover");
    let config = |holder: &str| {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name},
            "spec": {"holderIdentity": holder}
        })
    };
    leases
        .patch(
            &name,
            &PatchParams::apply("alice"),
            &Patch::Apply(config("a")),
        )
        .await
        .unwrap();
    leases
        .patch(
            &name,
            &PatchParams {
                field_manager: Some("editor".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"spec": {"holderIdentity": "e"}})),
        )
        .await
        .unwrap();
    // alice's apply of her old value now conflicts with the editor's update.
    let status = status_of(
        leases
            .patch(
                &name,
                &PatchParams::apply("alice"),
                &Patch::Apply(config("a")),
            )
            .await
            .unwrap_err(),
    );
    assert!(status.message.contains("editor"), "{}", status.message);
}

// === Delete ===

#[tokio::test]
async fn delete_removes_and_honours_a_stale_precondition() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("delete");
    let v1 = leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    leases
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "b"}})),
        )
        .await
        .unwrap();
    let stale = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: v1.metadata.resource_version.clone(),
            uid: None,
        }),
        ..DeleteParams::default()
    };
    let status = status_of(leases.delete(&name, &stale).await.unwrap_err());
    assert_eq!(status.code, 409);
    assert!(leases.get_opt(&name).await.unwrap().is_some());
    leases
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    assert!(leases.get_opt(&name).await.unwrap().is_none());
}

// === List and watch ===

#[tokio::test]
async fn list_by_field_selector_returns_only_that_lease() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let a = support::unique_name("list-a");
    let b = support::unique_name("list-b");
    leases
        .create(&PostParams::default(), &lease(&a, "x"))
        .await
        .unwrap();
    let created_b = leases
        .create(&PostParams::default(), &lease(&b, "x"))
        .await
        .unwrap();
    let list = leases
        .list(&ListParams::default().fields(&format!("metadata.name={a}")))
        .await
        .unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .filter_map(|l| l.metadata.name.clone())
        .collect();
    assert_eq!(names, vec![a.clone()]);
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(
        list_rv >= rv(&created_b),
        "a list's version is at least its newest item's"
    );
    // The cluster-wide list sees both.
    let all: Api<Lease> = Api::all(target.client_for("admin"));
    let names: BTreeSet<_> = all
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|l| l.metadata.name)
        .collect();
    assert!(names.contains(&a) && names.contains(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_version_sees_exactly_the_later_changes_in_order() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("watch");
    let v1 = leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    let mut expected = Vec::new();
    for h in ["b", "c", "d"] {
        let l = leases
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"holderIdentity": h}})),
            )
            .await
            .unwrap();
        expected.push(("MODIFIED", Some(h.to_owned()), rv(&l)));
    }
    leases
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(10);
    let stream = leases
        .watch(&params, v1.metadata.resource_version.as_deref().unwrap())
        .await
        .unwrap();
    let mut stream = std::pin::pin!(stream);
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = timeout(PATIENCE, stream.try_next())
            .await
            .expect("events arrive")
            .unwrap()
            .expect("the stream stays open");
        match event {
            WatchEvent::Modified(l) => {
                seen.push(("MODIFIED", holder(&l).map(str::to_owned), rv(&l)));
            }
            WatchEvent::Deleted(l) => seen.push(("DELETED", holder(&l).map(str::to_owned), rv(&l))),
            WatchEvent::Added(l) => panic!("no ADDED after the version watched from: {l:?}"),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(&seen[..3], &expected[..]);
    assert_eq!(seen[3].0, "DELETED");
    assert!(seen[3].2 > expected[2].2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_delivers_changes_made_after_it_started() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("watch-live");
    let list = leases
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .unwrap();
    let from = list.metadata.resource_version.unwrap();
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(10);
    let stream = leases.watch(&params, &from).await.unwrap();
    let mut stream = std::pin::pin!(stream);
    leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    // Another Lease's change is not delivered to this watch.
    leases
        .create(
            &PostParams::default(),
            &lease(&support::unique_name("other"), "z"),
        )
        .await
        .unwrap();
    leases
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "b"}})),
        )
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        match timeout(PATIENCE, stream.try_next())
            .await
            .expect("events arrive")
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(l) => kinds.push(("ADDED", holder(&l).map(str::to_owned))),
            WatchEvent::Modified(l) => kinds.push(("MODIFIED", holder(&l).map(str::to_owned))),
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        kinds,
        [("ADDED", Some("a".into())), ("MODIFIED", Some("b".into()))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ends_at_its_timeout() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("watch-timeout");
    let list = leases
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .unwrap();
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(1);
    let stream = leases
        .watch(&params, &list.metadata.resource_version.unwrap())
        .await
        .unwrap();
    // The stream ends by itself (the server closes it); bookmarks may come first.
    let ended = timeout(PATIENCE, stream.try_for_each(|_| async { Ok(()) })).await;
    assert!(ended.is_ok(), "the watch did not end after timeoutSeconds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_compacted_version_is_expired() {
    let target = Target::new().await;
    // The embedded server keeps 10,000 events; a real one compacts by time.
    // Version 1 is older than any server that has run for a while keeps.
    let Some(server) = target.embedded() else {
        return support::skip("needs a server whose compaction this test controls");
    };
    let leases = api(&target, "admin");
    let name = support::unique_name("compacted");
    leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    for i in 0..10_001 {
        leases
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"leaseTransitions": i}})),
            )
            .await
            .unwrap();
    }
    assert!(server.resource_version() > 10_000);
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(5);
    let stream = leases.watch(&params, "1").await.unwrap();
    let mut stream = std::pin::pin!(stream);
    match timeout(PATIENCE, stream.try_next()).await.unwrap().unwrap() {
        Some(WatchEvent::Error(status)) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_with_bookmarks_gets_one_before_it_ends() {
    let target = Target::new().await;
    if target.is_real() {
        // kube-apiserver sends bookmarks on its own schedule (about a minute).
        return support::skip("bookmark timing is the server's");
    }
    let leases = api(&target, "admin");
    let name = support::unique_name("bookmark");
    let list = leases
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .unwrap();
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(1);
    assert!(params.bookmarks);
    let events: Vec<_> = timeout(
        PATIENCE,
        leases
            .watch(&params, &list.metadata.resource_version.unwrap())
            .await
            .unwrap()
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Ok(WatchEvent::Bookmark(_)))),
        "{events:?}"
    );
}

// === Bad input ===

fn leases_path(target: &Target, name: Option<&str>) -> String {
    let base = format!(
        "/apis/coordination.k8s.io/v1/namespaces/{}/leases",
        target.namespace()
    );
    match name {
        Some(n) => format!("{base}/{n}"),
        None => base,
    }
}

/// Sends a raw request and returns the status code and JSON body.
async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<&Value>,
    content_type: &str,
) -> (u16, Value) {
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    raw_bytes(client, method, path, bytes, content_type).await
}

async fn raw_bytes(
    client: &Client,
    method: &str,
    path: &str,
    body: Vec<u8>,
    content_type: &str,
) -> (u16, Value) {
    let mut builder = http::Request::builder().method(method).uri(path);
    if !content_type.is_empty() {
        builder = builder.header("content-type", content_type);
    }
    let request = builder.body(body).unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    let code = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn assert_status(code: u16, body: &Value, expected: u16) {
    assert_eq!(code, expected, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], expected, "{body}");
    assert!(
        body["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_status_error_and_the_server_keeps_serving() {
    let target = Target::new().await;
    let client = target.client_for("admin");
    let path = leases_path(&target, None);
    // Malformed JSON.
    let (code, body) = raw_bytes(
        &client,
        "POST",
        &path,
        b"{not json".to_vec(),
        "application/json",
    )
    .await;
    assert_status(code, &body, 400);
    // Wrong content type.
    let (code, body) = raw_bytes(&client, "POST", &path, b"hello".to_vec(), "text/plain").await;
    assert_status(code, &body, 415);
    // Unsupported patch type.
    let name = support::unique_name("badpatch");
    api(&target, "admin")
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    let (code, body) = raw_bytes(
        &client,
        "PATCH",
        &leases_path(&target, Some(&name)),
        b"{}".to_vec(),
        "text/plain",
    )
    .await;
    assert_status(code, &body, 415);
    // Unknown path.
    let (code, body) = raw(
        &client,
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/default/widgets",
        None,
        "",
    )
    .await;
    assert_status(code, &body, 404);
    // Oversized body (over kube-apiserver's 3 MiB limit).
    let huge = format!(
        "{{\"metadata\":{{\"name\":\"huge\",\"annotations\":{{\"a\":\"{}\"}}}}}}",
        "x".repeat(4 * 1024 * 1024)
    );
    let (code, body) = raw_bytes(
        &client,
        "POST",
        &path,
        huge.into_bytes(),
        "application/json",
    )
    .await;
    assert_status(code, &body, 413);
    // Still serving.
    let leases = api(&target, "admin");
    assert_eq!(holder(&leases.get(&name).await.unwrap()), Some("a"));
}

#[tokio::test]
async fn labels_round_trip() {
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("fields");
    let mut l = lease(&name, "a");
    l.metadata.labels = Some(BTreeMap::from([("app".to_owned(), "demo".to_owned())]));
    let created = leases.create(&PostParams::default(), &l).await.unwrap();
    assert_eq!(created.metadata.labels.unwrap()["app"], "demo");
}

#[tokio::test]
async fn put_without_a_resource_version_is_invalid() {
    // Leases allow no unconditional update: a PUT of an existing Lease must
    // name the resourceVersion it replaces (a missing one is still created).
    let target = Target::new().await;
    let leases = api(&target, "admin");
    let name = support::unique_name("unconditional");
    let created = leases
        .create(&PostParams::default(), &lease(&name, "a"))
        .await
        .unwrap();
    let mut next = created.clone();
    next.metadata.resource_version = None;
    next.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let status = status_of(
        leases
            .replace(&name, &PostParams::default(), &next)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        format!(
            "leases.coordination.k8s.io \"{name}\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update"
        )
    );
    assert_eq!(holder(&leases.get(&name).await.unwrap()), Some("a"));
}

#[tokio::test]
async fn times_must_have_exactly_six_fractional_digits() {
    // kube-apiserver parses a MicroTime with Go's RFC3339Micro layout alone.
    let target = Target::new().await;
    let client = target.client_for("admin");
    for time in ["2026-11-24T14:00:00Z", "2026-11-24T14:00:00.123456789Z"] {
        let body = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": support::unique_name("time")},
            "spec": {"holderIdentity": "a", "renewTime": time}
        });
        let (code, status) = raw(
            &client,
            "POST",
            &leases_path(&target, None),
            Some(&body),
            "application/json",
        )
        .await;
        assert_status(code, &status, 400);
        assert!(
            status["message"].as_str().unwrap().contains(time),
            "{status}"
        );
    }
}

// === LeaseCandidates: coordination.k8s.io/v1beta1 ===
//
// Served only with the CoordinatedLeaderElection gate on (and, on a real
// server, `--runtime-config=coordination.k8s.io/v1beta1=true`, which
// interop/cmd/apiserver sets with the gate). A real server with the gate on
// also runs the coordinated-leader-election controller, which pings
// candidates (updates them) and garbage-collects stale ones: the candidates
// here renew far in the future, which it leaves alone (it may create a
// Lease named by their `leaseName`, which these tests never use).

const CANDIDATES: &str = "/apis/coordination.k8s.io/v1beta1";

fn far_future() -> MicroTime {
    MicroTime("2099-01-01T00:00:00.123456Z".parse().unwrap())
}

/// A valid candidate for `lease_name`: binary 1.37.0, emulating 1.36.0,
/// strategy `OldestEmulationVersion`.
fn candidate(name: &str, lease_name: &str) -> LeaseCandidate {
    LeaseCandidate {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: LeaseCandidateSpec {
            lease_name: lease_name.into(),
            binary_version: "1.37.0".into(),
            emulation_version: Some("1.36.0".into()),
            strategy: "OldestEmulationVersion".into(),
            renew_time: Some(far_future()),
            ping_time: None,
        },
    }
}

fn candidates(target: &Target) -> Api<LeaseCandidate> {
    Api::namespaced(target.client_for("admin"), target.namespace())
}

fn candidates_path(target: &Target, name: Option<&str>) -> String {
    let base = format!(
        "{CANDIDATES}/namespaces/{}/leasecandidates",
        target.namespace()
    );
    match name {
        Some(n) => format!("{base}/{n}"),
        None => base,
    }
}

fn candidate_rv(candidate: &LeaseCandidate) -> u64 {
    candidate
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn candidates_are_created_read_listed_and_deleted() {
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    let api = candidates(&target);
    // A candidate's name is a ConfigMap key, not a DNS subdomain: capitals
    // and underscores are fine.
    let name = format!("Kube_{}", support::unique_name("candidate"));
    let lease_name = support::unique_name("candidate-lease");
    let created = api
        .create(&PostParams::default(), &candidate(&name, &lease_name))
        .await
        .unwrap();
    assert!(
        created
            .metadata
            .uid
            .as_deref()
            .is_some_and(|u| !u.is_empty())
    );
    assert!(created.metadata.creation_timestamp.is_some());
    assert!(candidate_rv(&created) > 0);
    assert_eq!(
        created.metadata.namespace.as_deref(),
        Some(target.namespace())
    );
    assert_eq!(created.spec.lease_name, lease_name);
    assert_eq!(created.spec.renew_time, Some(far_future()));

    let got = api.get(&name).await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );

    let status = status_of(
        api.create(&PostParams::default(), &candidate(&name, &lease_name))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );

    // Listed by name, and across namespaces.
    let other = support::unique_name("candidate-other");
    api.create(&PostParams::default(), &candidate(&other, &lease_name))
        .await
        .unwrap();
    let list = api
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(names, std::slice::from_ref(&name));
    let all: Api<LeaseCandidate> = Api::all(target.client_for("admin"));
    let names: BTreeSet<_> = all
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert!(names.contains(&name) && names.contains(&other));
    let (code, body) = raw(
        &target.client_for("admin"),
        "GET",
        &candidates_path(&target, None),
        None,
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["kind"], "LeaseCandidateList");
    assert_eq!(body["apiVersion"], "coordination.k8s.io/v1beta1");

    // Delete: a stale precondition is a conflict; then it is gone.
    let patched = api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"binaryVersion": "1.37.1"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.binary_version, "1.37.1");
    let stale = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: created.metadata.resource_version.clone(),
            uid: None,
        }),
        ..DeleteParams::default()
    };
    let status = status_of(api.delete(&name, &stale).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    let status = status_of(api.get(&name).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        status.message,
        format!("leasecandidates.coordination.k8s.io \"{name}\" not found")
    );
}

#[tokio::test]
async fn candidate_puts_and_patches_are_conditional() {
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    let api = candidates(&target);
    let name = support::unique_name("candidate-update");
    let lease_name = support::unique_name("candidate-lease");
    let created = api
        .create(&PostParams::default(), &candidate(&name, &lease_name))
        .await
        .unwrap();

    // PUT at the current version wins; at the old one it conflicts.
    let mut next = created.clone();
    next.spec.binary_version = "1.38.0".into();
    let replaced = api
        .replace(&name, &PostParams::default(), &next)
        .await
        .unwrap();
    assert!(candidate_rv(&replaced) > candidate_rv(&created));
    assert_eq!(replaced.spec.binary_version, "1.38.0");
    let mut stale = created.clone();
    stale.spec.binary_version = "1.39.0".into();
    let status = status_of(
        api.replace(&name, &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        format!(
            "Operation cannot be fulfilled on leasecandidates.coordination.k8s.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
        )
    );
    // Without a resourceVersion it is refused outright.
    stale.metadata.resource_version = None;
    let status = status_of(
        api.replace(&name, &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        format!(
            "leasecandidates.coordination.k8s.io \"{name}\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update"
        )
    );
    // A merge patch naming an old version conflicts too.
    let status = status_of(
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"resourceVersion": created.metadata.resource_version},
                "spec": {"binaryVersion": "1.39.0"},
            })),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 409);
    let got = api.get(&name).await.unwrap();
    assert_eq!(
        got.metadata.resource_version,
        replaced.metadata.resource_version
    );
    assert_eq!(got.spec.binary_version, "1.38.0");
}

#[tokio::test]
async fn candidates_are_json_patched_and_applied() {
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    let api = candidates(&target);
    let name = support::unique_name("candidate-patch");
    let lease_name = support::unique_name("candidate-lease");
    api.create(&PostParams::default(), &candidate(&name, &lease_name))
        .await
        .unwrap();
    // A JSON patch, and server-side apply (which creates, and owns fields).
    let (code, patched) = raw(
        &target.client_for("admin"),
        "PATCH",
        &candidates_path(&target, Some(&name)),
        Some(&json!([
            {"op": "test", "path": "/spec/binaryVersion", "value": "1.37.0"},
            {"op": "replace", "path": "/spec/emulationVersion", "value": "1.37.0"},
        ])),
        "application/json-patch+json",
    )
    .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["spec"]["emulationVersion"], "1.37.0");
    let applied_name = support::unique_name("candidate-apply");
    let config = |binary: &str| {
        Patch::Apply(json!({
            "apiVersion": "coordination.k8s.io/v1beta1", "kind": "LeaseCandidate",
            "metadata": {"name": applied_name},
            "spec": {
                "leaseName": lease_name, "binaryVersion": binary,
                "emulationVersion": "1.36.0", "strategy": "OldestEmulationVersion",
                "renewTime": "2099-01-01T00:00:00.123456Z",
            },
        }))
    };
    let applied = api
        .patch(
            &applied_name,
            &PatchParams::apply("conformance"),
            &config("1.37.0"),
        )
        .await
        .unwrap();
    assert_eq!(applied.spec.binary_version, "1.37.0");
    let managed = applied.metadata.managed_fields.unwrap_or_default();
    assert!(
        managed
            .iter()
            .any(|m| m.manager.as_deref() == Some("conformance")
                && m.operation.as_deref() == Some("Apply")
                && m.api_version.as_deref() == Some("coordination.k8s.io/v1beta1")),
        "{managed:?}"
    );
    let status = status_of(
        api.patch(
            &applied_name,
            &PatchParams::apply("other"),
            &config("1.38.0"),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(status.message.contains("conformance"), "{}", status.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidate_watches_see_their_changes_in_order_and_resume() {
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    let api = candidates(&target);
    let name = support::unique_name("candidate-watch");
    let lease_name = support::unique_name("candidate-lease");
    let by_name = format!("metadata.name={name}");

    // Live: from the version of an empty list, the create and a patch; not
    // a Lease of the same name, nor another candidate.
    let list = api
        .list(&ListParams::default().fields(&by_name))
        .await
        .unwrap();
    let from = list.metadata.resource_version.unwrap();
    let params = WatchParams::default().fields(&by_name).timeout(10);
    let stream = api.watch(&params, &from).await.unwrap();
    let mut stream = std::pin::pin!(stream);
    let v1 = api
        .create(&PostParams::default(), &candidate(&name, &lease_name))
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &candidate(&support::unique_name("candidate-other"), &lease_name),
    )
    .await
    .unwrap();
    Api::<Lease>::namespaced(target.client_for("admin"), target.namespace())
        .create(&PostParams::default(), &lease(&name, "not-a-candidate"))
        .await
        .unwrap();
    let mut expected = vec![("ADDED", "1.37.0".to_owned(), candidate_rv(&v1))];
    for binary in ["1.37.1", "1.37.2"] {
        let c = api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"binaryVersion": binary}})),
            )
            .await
            .unwrap();
        expected.push(("MODIFIED", binary.to_owned(), candidate_rv(&c)));
    }
    api.delete(&name, &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 4 {
        let event = timeout(PATIENCE, stream.try_next())
            .await
            .expect("events arrive")
            .unwrap()
            .expect("the stream stays open");
        let (kind, c) = match event {
            WatchEvent::Added(c) => ("ADDED", c),
            WatchEvent::Modified(c) => ("MODIFIED", c),
            WatchEvent::Deleted(c) => ("DELETED", c),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        };
        assert_eq!(c.metadata.name.as_deref(), Some(name.as_str()));
        seen.push((kind, c.spec.binary_version.clone(), candidate_rv(&c)));
    }
    assert_eq!(&seen[..3], &expected[..]);
    assert_eq!(seen[3].0, "DELETED");

    // Resumed from the create: exactly the later changes, in order.
    let stream = api
        .watch(&params, v1.metadata.resource_version.as_deref().unwrap())
        .await
        .unwrap();
    let mut stream = std::pin::pin!(stream);
    let mut resumed = Vec::new();
    while resumed.len() < 3 {
        match timeout(PATIENCE, stream.try_next())
            .await
            .expect("events arrive")
            .unwrap()
            .expect("the stream stays open")
        {
            WatchEvent::Modified(c) => {
                resumed.push(("MODIFIED", c.spec.binary_version.clone(), candidate_rv(&c)));
            }
            WatchEvent::Deleted(c) => {
                resumed.push(("DELETED", c.spec.binary_version.clone(), candidate_rv(&c)));
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(&resumed[..], &seen[1..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidate_watches_expire_and_get_bookmarks_as_lease_watches() {
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    // As the Lease tests of both: the embedded server's history and
    // bookmark timing are this test's to know.
    let Some(server) = target.embedded() else {
        return support::skip("needs a server whose compaction and bookmarks this test controls");
    };
    let api = candidates(&target);
    let name = support::unique_name("candidate-compacted");
    api.create(
        &PostParams::default(),
        &candidate(&name, &support::unique_name("candidate-lease")),
    )
    .await
    .unwrap();
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(1);
    // A bookmark before the watch ends, of the candidates' kind.
    let events: Vec<_> = timeout(
        PATIENCE,
        api.watch(&params, &server.resource_version().to_string())
            .await
            .unwrap()
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    assert!(
        events.iter().any(|e| matches!(e, Ok(WatchEvent::Bookmark(b))
            if b.types.kind == "LeaseCandidate" && b.types.api_version == "coordination.k8s.io/v1beta1")),
        "{events:?}"
    );
    // One history for every resource, as etcd's: 10,001 writes later, the
    // candidate's first version is gone.
    for i in 0..10_001 {
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"binaryVersion": format!("1.38.{i}")}})),
        )
        .await
        .unwrap();
    }
    let stream = api.watch(&params, "1").await.unwrap();
    let mut stream = std::pin::pin!(stream);
    match timeout(PATIENCE, stream.try_next()).await.unwrap().unwrap() {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
}

/// Sends `body` as a new candidate and returns the 422's Status.
async fn refused_candidate(target: &Target, name: &str, spec: &Value) -> Value {
    let body = json!({
        "apiVersion": "coordination.k8s.io/v1beta1", "kind": "LeaseCandidate",
        "metadata": {"name": name},
        "spec": spec,
    });
    let (code, status) = raw(
        &target.client_for("admin"),
        "POST",
        &candidates_path(target, None),
        Some(&body),
        "application/json",
    )
    .await;
    assert_status(code, &status, 422);
    assert_eq!(status["reason"], "Invalid", "{status}");
    assert_eq!(status["details"]["kind"], "LeaseCandidate", "{status}");
    assert_eq!(
        status["details"]["group"], "coordination.k8s.io",
        "{status}"
    );
    status
}

/// `(field, reason, message)` of each cause, in order.
fn causes_of(status: &Value) -> Vec<(String, String, String)> {
    status["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap().to_owned(),
                c["reason"].as_str().unwrap().to_owned(),
                c["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn cause(field: &str, reason: &str, message: &str) -> (String, String, String) {
    (field.to_owned(), reason.to_owned(), message.to_owned())
}

#[tokio::test]
async fn invalid_candidates_are_refused_with_invalid() {
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    let name = support::unique_name("candidate-invalid");
    let required = "FieldValueRequired";
    let invalid = "FieldValueInvalid";

    // Everything required is missing.
    let status = refused_candidate(&target, &name, &json!({})).await;
    assert_eq!(
        causes_of(&status),
        [
            cause("spec.leaseName", required, "Required value"),
            cause("spec.binaryVersion", required, "Required value"),
            cause("spec.strategy", required, "Required value"),
        ]
    );
    assert_eq!(
        status["message"],
        format!(
            "LeaseCandidate.coordination.k8s.io \"{name}\" is invalid: [spec.leaseName: Required value, spec.binaryVersion: Required value, spec.strategy: Required value]"
        )
    );

    // A name that is no ConfigMap key, versions that are not semantic (or
    // not in order), a strategy Kubernetes does not define: every cause,
    // in kube-apiserver's order and words.
    let status = refused_candidate(
        &target,
        "a/b",
        &json!({
            "leaseName": "x", "binaryVersion": "v1.2",
            "emulationVersion": "1.40.0", "strategy": "Nope",
        }),
    )
    .await;
    assert_eq!(
        causes_of(&status),
        [
            cause(
                "metadata.name",
                invalid,
                "Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
            ),
            cause(
                "spec.binaryVersion",
                invalid,
                "Invalid value: \"v1.2\": must be a valid semantic version"
            ),
            cause(
                "spec.binaryVersion",
                invalid,
                "Invalid value: \"v1.2\": must be greater than or equal to `emulationVersion`"
            ),
            cause(
                "spec.strategy.strategy",
                "FieldValueNotSupported",
                "Unsupported value: \"Nope\": supported values: \"OldestEmulationVersion\""
            ),
        ]
    );

    // OldestEmulationVersion needs an emulationVersion; a newer emulation
    // than binary version is refused; a bad prefixed strategy too.
    let spec = |emulation: &str, strategy: &str| {
        json!({
            "leaseName": "x", "binaryVersion": "1.37.0",
            "emulationVersion": emulation, "strategy": strategy,
        })
    };
    let status = refused_candidate(&target, &name, &spec("", "OldestEmulationVersion")).await;
    assert_eq!(
        causes_of(&status),
        [cause(
            "spec.emulationVersion",
            required,
            "Required value: must be specified when `strategy` is 'OldestEmulationVersion'"
        )]
    );
    let status = refused_candidate(&target, &name, &spec("1.38.0", "OldestEmulationVersion")).await;
    assert_eq!(
        causes_of(&status),
        [cause(
            "spec.binaryVersion",
            invalid,
            "Invalid value: \"1.37.0\": must be greater than or equal to `emulationVersion`"
        )]
    );
    let status = refused_candidate(&target, &name, &spec("1.36.0", "/mine")).await;
    assert_eq!(
        causes_of(&status),
        [cause(
            "spec.strategy.strategy",
            invalid,
            "Invalid value: \"/mine\": prefix part must be non-empty"
        )]
    );
}

#[tokio::test]
async fn a_candidates_lease_name_is_immutable_and_what_does_not_decode_is_bad() {
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    let name = support::unique_name("candidate-immutable");
    // A prefixed strategy needs no emulationVersion.
    let api = candidates(&target);
    let mut custom = candidate(&name, "x");
    custom.spec.strategy = "example.com/mine".into();
    custom.spec.emulation_version = None;
    let created = api.create(&PostParams::default(), &custom).await.unwrap();
    assert_eq!(created.spec.strategy, "example.com/mine");

    // leaseName is immutable.
    let (code, status) = raw(
        &target.client_for("admin"),
        "PATCH",
        &candidates_path(&target, Some(&name)),
        Some(&json!({"spec": {"leaseName": "changed"}})),
        "application/merge-patch+json",
    )
    .await;
    assert_invalid(
        code,
        &status,
        "spec.leaseName",
        "FieldValueInvalid",
        "Invalid value: \"changed\": field is immutable",
    );
    assert_eq!(api.get(&name).await.unwrap().spec.lease_name, "x");

    // What does not decode is a 400.
    let body = json!({"metadata": {"name": name}, "spec": {"leaseName": 5}});
    let (code, status) = raw(
        &target.client_for("admin"),
        "POST",
        &candidates_path(&target, None),
        Some(&body),
        "application/json",
    )
    .await;
    assert_status(code, &status, 400);
    assert!(
        status["message"].as_str().unwrap().starts_with(
            "LeaseCandidate in version \"v1beta1\" cannot be handled as a LeaseCandidate"
        ),
        "{status}"
    );
}

#[tokio::test]
async fn candidates_are_selected_by_name_and_namespace_only() {
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    let client = target.client_for("admin");
    let (code, status) = raw(
        &client,
        "GET",
        &format!(
            "{}?fieldSelector=spec.leaseName%3Dx",
            candidates_path(&target, None)
        ),
        None,
        "",
    )
    .await;
    assert_status(code, &status, 400);
    assert_eq!(
        status["message"],
        "\"spec.leaseName\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );
    let ns = target.namespace();
    let (code, body) = raw(
        &client,
        "GET",
        &format!(
            "{}?fieldSelector=metadata.namespace%3D{ns}",
            candidates_path(&target, None)
        ),
        None,
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
}

/// The `Warning` header of a GET of `path`.
async fn warning_of(client: &Client, path: &str) -> Option<String> {
    let request = http::Request::get(path).body(Vec::new()).unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    response
        .headers()
        .get("warning")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn gate_on_serves_candidates_in_discovery() {
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    let client = target.client_for("admin");
    let versions = json!([
        {"groupVersion": "coordination.k8s.io/v1", "version": "v1"},
        {"groupVersion": "coordination.k8s.io/v1beta1", "version": "v1beta1"},
    ]);
    let preferred = json!({"groupVersion": "coordination.k8s.io/v1", "version": "v1"});
    let (code, groups) = raw(&client, "GET", "/apis", None, "").await;
    assert_eq!(code, 200);
    let group = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "coordination.k8s.io")
        .expect("coordination.k8s.io in /apis")
        .clone();
    assert_eq!(group["versions"], versions);
    assert_eq!(group["preferredVersion"], preferred);
    let (code, group) = raw(&client, "GET", "/apis/coordination.k8s.io", None, "").await;
    assert_eq!(code, 200);
    assert_eq!(group["kind"], "APIGroup");
    assert_eq!(group["versions"], versions);
    assert_eq!(group["preferredVersion"], preferred);
    let (code, list) = raw(&client, "GET", CANDIDATES, None, "").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["kind"], "APIResourceList");
    assert_eq!(list["groupVersion"], "coordination.k8s.io/v1beta1");
    let resource = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "leasecandidates")
        .expect("leasecandidates in v1beta1")
        .clone();
    assert_eq!(resource["kind"], "LeaseCandidate");
    assert_eq!(resource["singularName"], "leasecandidate");
    assert_eq!(resource["namespaced"], true);
    let verbs: BTreeSet<_> = resource["verbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    for verb in [
        "create", "delete", "get", "list", "patch", "update", "watch",
    ] {
        assert!(verbs.contains(verb), "{verb} in {verbs:?}");
    }
    // v1beta1 is deprecated: every answer says so.
    assert_eq!(
        warning_of(&client, &candidates_path(&target, None))
            .await
            .as_deref(),
        Some(
            "299 - \"coordination.k8s.io/v1beta1 LeaseCandidate is deprecated in v1.36+, unavailable in v1.39+\""
        )
    );
    assert_eq!(warning_of(&client, &leases_path(&target, None)).await, None);
}

#[tokio::test]
async fn gate_off_serves_no_candidates() {
    let Some(target) = Target::with_coordinated_leader_election(false).await else {
        return;
    };
    let client = target.client_for("admin");
    let versions = json!([{"groupVersion": "coordination.k8s.io/v1", "version": "v1"}]);
    let (_, groups) = raw(&client, "GET", "/apis", None, "").await;
    let group = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "coordination.k8s.io")
        .expect("coordination.k8s.io in /apis")
        .clone();
    assert_eq!(group["versions"], versions);
    let (_, group) = raw(&client, "GET", "/apis/coordination.k8s.io", None, "").await;
    assert_eq!(group["versions"], versions);

    // Every path under the group version is a 404, discovery included,
    // with the Status kube-apiserver's group handler sends.
    let name = support::unique_name("unserved");
    let body = serde_json::to_value(candidate(&name, "x")).unwrap();
    let collection = candidates_path(&target, None);
    let one = candidates_path(&target, Some(&name));
    let watch = format!("{collection}?watch=true");
    for (method, path, body) in [
        ("GET", CANDIDATES, None),
        (
            "GET",
            "/apis/coordination.k8s.io/v1beta1/leasecandidates",
            None,
        ),
        ("GET", collection.as_str(), None),
        ("GET", watch.as_str(), None),
        ("POST", collection.as_str(), Some(&body)),
        ("GET", one.as_str(), None),
        ("PUT", one.as_str(), Some(&body)),
        ("DELETE", one.as_str(), None),
    ] {
        let (code, status) = raw(&client, method, path, body, "application/json").await;
        assert_status(code, &status, 404);
        assert_eq!(
            (&status["reason"], &status["message"]),
            (
                &json!("NotFound"),
                &json!("the server could not find the requested resource")
            ),
            "{method} {path}: {status}"
        );
    }
    let status = status_of(
        candidates(&target)
            .create(&PostParams::default(), &candidate(&name, "x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(status.code, 404);
}
