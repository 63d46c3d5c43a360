//! The RBAC of `deploy/rbac.yaml` is enough for an elector, and needed: run
//! by `scripts/e2e-real.sh` after it applied `deploy/namespace.yaml` and
//! `deploy/rbac.yaml` to a real API server (`KUBE_ELECTOR_TEST_DEPLOY=1`),
//! impersonating the manifests' service account with the admin's kubeconfig.
//! The embedded server has no RBAC, so every test here is `#[ignore]`d: a
//! plain `cargo test` lists them as ignored, and the script runs them with
//! `--include-ignored`. Run so without `KUBE_ELECTOR_TEST_DEPLOY=1`, each
//! says `SKIPPED` (see `support::skipped`).

mod support;

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_elector::{
    ElectorConfig, Error, LeaderElector, ShutdownOutcome,
    lock::{LeaseLock, LeaseLockParams},
};
use tokio::time::timeout;

/// The namespace and service account of `deploy/*.yaml`.
const NAMESPACE: &str = "kube-elector-demo";
const SERVICE_ACCOUNT: &str = "kube-elector-demo";
const PATIENCE: Duration = Duration::from_secs(20);

/// A client of the real server acting as `system:serviceaccount:NAMESPACE:name`,
/// or `None` when this suite does not run.
async fn client_as(service_account: &str) -> Option<kube::Client> {
    if std::env::var("KUBE_ELECTOR_TEST_DEPLOY").as_deref() != Ok("1") {
        support::skipped(
            "needs KUBE_ELECTOR_TEST_DEPLOY=1 (scripts/e2e-real.sh applies deploy/ first)",
        );
        return None;
    }
    let path = std::env::var(support::KUBECONFIG_ENV).expect("the real server's kubeconfig");
    let kubeconfig = Kubeconfig::read_from(&path).expect("read the kubeconfig");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("load the kubeconfig");
    config.auth_info.impersonate = Some(format!(
        "system:serviceaccount:{NAMESPACE}:{service_account}"
    ));
    Some(kube::Client::try_from(config).expect("client"))
}

#[tokio::test]
#[ignore = "needs a real API server with deploy/ applied: scripts/e2e-real.sh runs it"]
async fn the_manifests_service_account_can_lead_and_hand_over() {
    let Some(client) = client_as(SERVICE_ACCOUNT).await else {
        return;
    };
    let lease = support::unique_name("deploy");
    let config = ElectorConfig::new(&lease)
        .namespace(NAMESPACE)
        .identity("deploy-a")
        .lease_duration(Duration::from_secs(2))
        .renew_deadline(Duration::from_secs(1))
        .retry_period(Duration::from_millis(250));
    let elector = LeaderElector::new(client, config).expect("valid").spawn();
    let leadership = timeout(PATIENCE, elector.became_leader())
        .await
        .expect("leads within the patience: get/create/update are granted")
        .expect("leading");
    // A few renews (update) as the ServiceAccount.
    let mut state = elector.subscribe();
    let renewed = timeout(
        Duration::from_millis(1500),
        state.wait_for(|s| !s.is_leader()),
    )
    .await;
    assert!(renewed.is_err(), "still leading after several renews");
    drop(leadership);
    let outcome = timeout(PATIENCE, elector.shutdown())
        .await
        .expect("shutdown within the patience")
        .expect("shutdown");
    assert_eq!(
        outcome,
        ShutdownOutcome::Released,
        "update is granted for the release"
    );
}

#[tokio::test]
#[ignore = "needs a real API server with deploy/ applied: scripts/e2e-real.sh runs it"]
async fn a_service_account_without_the_binding_is_refused() {
    let Some(client) = client_as("not-bound").await else {
        return;
    };
    let lock = LeaseLock::new(
        client,
        NAMESPACE,
        LeaseLockParams {
            holder_id: "deploy-nobody".into(),
            lease_name: support::unique_name("deploy-refused"),
            lease_ttl: Duration::from_secs(2),
        },
    );
    match lock.try_acquire_or_renew().await {
        Err(error @ Error::Api { .. }) => {
            let status = match &error {
                Error::Api {
                    source: kube::Error::Api(status),
                    ..
                } => status.code,
                _ => 0,
            };
            assert_eq!(status, 403, "forbidden: {error}");
            assert!(!error.is_retryable(), "a 403 is not worth retrying");
        }
        other => panic!("an unbound ServiceAccount must be refused, got {other:?}"),
    }
}
