//! Kubernetes Events on the Lease (`events` feature), as client-go records
//! them: reason `LeaderElection`, "<identity> became leader" and
//! "<identity> stopped leading". Against the embedded server, or a real one
//! when `KUBE_ELECTOR_TEST_KUBECONFIG` is set.

mod support;

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube_elector::{ElectorConfig, ElectorHandle, LeaderElector, ShutdownOutcome};
use kube_elector_testing::FaultTarget;
use tokio::time::timeout;

use support::Target;

const PATIENCE: Duration = Duration::from_secs(20);

fn spawn(target: &Target, lease: &str, identity: &str) -> ElectorHandle {
    let config = ElectorConfig::new(lease)
        .namespace(target.namespace())
        .identity(identity)
        .lease_duration(Duration::from_secs(2))
        .renew_deadline(Duration::from_secs(1))
        .retry_period(Duration::from_millis(250))
        .recorder("kube-elector-test");
    LeaderElector::new(target.client_for(identity), config)
        .expect("valid config")
        .spawn()
}

/// The notes of the Events about Lease `lease`, oldest first.
async fn notes(events: &Api<Event>, lease: &str) -> Vec<Event> {
    let mut found: Vec<Event> = events
        .list(&kube::api::ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(lease))
        .collect();
    found.sort_by(|a, b| a.event_time.cmp(&b.event_time));
    found
}

fn has(events: &[Event], note: &str) -> bool {
    events.iter().any(|e| e.note.as_deref() == Some(note))
}

#[tokio::test]
async fn leading_and_stopping_are_recorded_as_events_on_the_lease() {
    let target = Target::new().await;
    let lease = support::unique_name("events");
    let events: Api<Event> = Api::namespaced(target.client_for("reader"), target.namespace());
    let elector = spawn(&target, &lease, "events-a");
    let leadership = timeout(PATIENCE, elector.became_leader())
        .await
        .expect("leads within the patience")
        .expect("leading");

    let deadline = tokio::time::Instant::now() + PATIENCE;
    let recorded = loop {
        let found = notes(&events, &lease).await;
        if has(&found, "events-a became leader") {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event within {PATIENCE:?}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let event = recorded
        .iter()
        .find(|e| e.note.as_deref() == Some("events-a became leader"))
        .expect("found above");
    assert_eq!(event.reason.as_deref(), Some("LeaderElection"));
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    assert_eq!(
        event.reporting_controller.as_deref(),
        Some("kube-elector-test")
    );
    assert_eq!(event.reporting_instance.as_deref(), Some("events-a"));
    let regarding = event.regarding.as_ref().expect("regarding");
    assert_eq!(regarding.kind.as_deref(), Some("Lease"));
    assert_eq!(
        regarding.api_version.as_deref(),
        Some("coordination.k8s.io/v1")
    );
    assert!(regarding.uid.is_some(), "the Lease's uid");

    drop(leadership);
    assert_eq!(
        elector.shutdown().await.expect("shutdown"),
        ShutdownOutcome::Released
    );
    // Recorded before shutdown() returned.
    let recorded = notes(&events, &lease).await;
    assert!(has(&recorded, "events-a stopped leading"), "{recorded:?}");
}

#[tokio::test]
async fn refused_event_writes_do_not_touch_leadership() {
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        return support::skip("needs refused event writes");
    };
    server.forbid_events(FaultTarget::All, true);
    let lease = support::unique_name("events-refused");
    let a = spawn(&target, &lease, "refused-a");
    let leadership = timeout(PATIENCE, a.became_leader())
        .await
        .expect("leads although events are refused")
        .expect("leading");
    let b = spawn(&target, &lease, "refused-b");
    drop(leadership);
    assert_eq!(
        a.shutdown().await.expect("shutdown"),
        ShutdownOutcome::Released
    );
    let next = timeout(PATIENCE, b.became_leader())
        .await
        .expect("hands over although events are refused")
        .expect("leading");
    drop(next);
    b.shutdown().await.expect("shutdown");
    let events: Api<Event> = Api::namespaced(target.client_for("reader"), target.namespace());
    assert!(
        notes(&events, &lease).await.is_empty(),
        "no event was stored"
    );
}
