//! The shared watch against the embedded server: every change reaches
//! every member, in order; a namespace watch that is forbidden falls back
//! to per-Lease watches and is taken back once allowed.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use kube_elector_testing::{FaultTarget, LeaseApiServer};

use super::*;
use crate::watch::{Inbox, Update};

const PATIENCE: Duration = Duration::from_secs(20);

/// The next update, within the patience.
async fn next(inbox: &Inbox) -> Update {
    tokio::time::timeout(PATIENCE, inbox.recv())
        .await
        .expect("an update in time")
}

/// Waits for the watch to be up (the first `Healthy(true)`), skipping the rest.
async fn until_healthy(inbox: &Inbox) {
    while !matches!(next(inbox).await, Update::Healthy(true)) {}
}

/// The holders of the Lease updates that arrive, until `last` is seen.
async fn holders_until(inbox: &Inbox, last: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        if let Update::Lease(lease) = next(inbox).await {
            let holder = lease
                .spec
                .and_then(|s| s.holder_identity)
                .unwrap_or_default();
            let done = holder == last;
            seen.push(holder);
            if done {
                return seen;
            }
        }
    }
}

/// The watch of `namespace` (while it has members).
fn namespace_of(hub: &LeaseHub, namespace: &str) -> Arc<Namespace> {
    Arc::clone(&hub.inner.namespaces.lock().unwrap()[namespace])
}

fn lease(name: &str, holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(60),
            ..LeaseSpec::default()
        }),
    }
}

/// Writes holders `<name>-0`..`<name>-<n-1>` to `name`, one after another.
async fn write_holders(api: &Api<Lease>, name: &str, n: usize) {
    let mut current = api
        .create(&PostParams::default(), &lease(name, &format!("{name}-0")))
        .await
        .unwrap();
    for i in 1..n {
        current.spec.as_mut().unwrap().holder_identity = Some(format!("{name}-{i}"));
        current = api
            .replace(name, &PostParams::default(), &current)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn every_change_reaches_every_member_of_the_namespace_in_order() {
    let server = LeaseApiServer::start().await.unwrap();
    let hub = LeaseHub::new(server.client_for("process"));
    let names = ["alpha", "beta", "gamma"];
    let mut members = Vec::new();
    for name in names {
        for n in 0..3 {
            let (inbox, mailbox) = Inbox::new();
            let membership = hub.join("default", name, &format!("{name}-{n}"), true, mailbox);
            members.push((name, inbox, membership));
        }
    }
    for (_, inbox, _) in &members {
        until_healthy(inbox).await;
    }
    assert_eq!(
        server
            .requests()
            .get("process", kube_elector_testing::Verb::Watch),
        1,
        "nine members of three Leases share one watch"
    );
    let api: Api<Lease> = Api::namespaced(server.client_for("writer"), "default");
    // Interleaved, so that a member served another Lease's change would
    // see it before its own last one.
    let writes = names.map(|name| write_holders(&api, name, 20));
    futures::future::join_all(writes).await;
    for (name, inbox, _) in &members {
        let expected: Vec<String> = (0..20).map(|i| format!("{name}-{i}")).collect();
        assert_eq!(
            holders_until(inbox, &format!("{name}-19")).await,
            expected,
            "a member of {name} saw every change of its Lease, in order, and no other Lease's"
        );
    }
}

#[tokio::test]
async fn a_forbidden_namespace_watch_falls_back_to_per_lease_watches_and_recovers() {
    let server = LeaseApiServer::start().await.unwrap();
    let process = FaultTarget::Client("process".into());
    // A Role with `resourceNames`: list and watch only by name.
    server.restrict_to_names(process.clone(), true);
    let hub = LeaseHub::new(server.client_for("process"));
    let (inbox, mailbox) = Inbox::new();
    let membership = hub.join("default", "fallback", "me", true, mailbox);
    let namespace = namespace_of(&hub, "default");
    // The per-Lease watch is up, and delivers.
    until_healthy(&inbox).await;
    assert_eq!(namespace.members().mode, Mode::PerLease);
    let api: Api<Lease> = Api::namespaced(server.client_for("writer"), "default");
    write_holders(&api, "fallback", 3).await;
    holders_until(&inbox, "fallback-2").await;

    // Allowed again: the namespace watch comes back (after its backoff)
    // and takes over; the per-Lease watch stops.
    server.restrict_to_names(process, false);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while namespace.members().mode != Mode::Watching {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the namespace watch is back in time"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), inbox.recv()).await;
    }
    assert!(
        membership.member().own_watch.lock().unwrap().is_none(),
        "the per-Lease watch was stopped"
    );
    let mut current = api.get("fallback").await.unwrap();
    current.spec.as_mut().unwrap().holder_identity = Some("after".into());
    api.replace("fallback", &PostParams::default(), &current)
        .await
        .unwrap();
    holders_until(&inbox, "after").await;
}

#[tokio::test]
async fn the_last_member_to_leave_stops_the_namespace_watch() {
    let server = LeaseApiServer::start().await.unwrap();
    let hub = LeaseHub::new(server.client_for("process"));
    let (inbox, mailbox) = Inbox::new();
    let first = hub.join("default", "a", "x", true, mailbox);
    until_healthy(&inbox).await;
    let (_other_inbox, other_mailbox) = Inbox::new();
    let second = hub.join("default", "b", "y", false, other_mailbox);
    let token = namespace_of(&hub, "default").token.clone();
    drop(first);
    assert!(!token.is_cancelled(), "a member is left");
    drop(second);
    assert!(token.is_cancelled(), "no member is left: the watch stops");
    assert!(hub.inner.namespaces.lock().unwrap().is_empty());
}
