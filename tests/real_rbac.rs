//! RBAC of a real API server: a user whose role lacks `watch` on Leases still
//! elects and hands over (by polling). `scripts/e2e-real.sh` creates that
//! user and names its kubeconfig in `KUBE_ELECTOR_TEST_KUBECONFIG_NOWATCH`.
//!
//! The embedded server has no RBAC, so every test here is `#[ignore]`d: a
//! plain `cargo test` lists them as ignored, and the script runs them with
//! `--include-ignored`. Run so without the kubeconfig, each says `SKIPPED`
//! (see `support::skipped`).

mod support;

use std::time::Duration;

use futures::StreamExt;
use kube_elector::{LeaderElector, LeaderEvent, LeaderEvents, ShutdownOutcome};
use tokio::time::timeout;

/// The longest any single wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(20);

async fn wait_for(events: &mut LeaderEvents, wanted: &LeaderEvent) {
    timeout(PATIENCE, async {
        while let Some(event) = events.next().await {
            if event == *wanted {
                return;
            }
        }
        panic!("event stream ended while waiting for {wanted:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {wanted:?} within {PATIENCE:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real API server with a user without watch: scripts/e2e-real.sh runs it"]
async fn a_user_without_watch_rbac_still_elects_on_a_real_server() {
    let Some(path) = std::env::var_os("KUBE_ELECTOR_TEST_KUBECONFIG_NOWATCH") else {
        return support::skipped(
            "needs KUBE_ELECTOR_TEST_KUBECONFIG_NOWATCH (scripts/e2e-real.sh sets it)",
        );
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let lease = support::unique_name("rbac-nowatch");
    let spawn = |id: &str| {
        let client = kube::Client::try_from(config.clone()).unwrap();
        LeaderElector::new(client, support::short_config(&lease, id))
            .unwrap()
            .spawn()
    };
    let first = spawn("nowatch-a");
    drop(first.became_leader().await.unwrap());
    let second = spawn("nowatch-b");
    let mut events = second.events();
    wait_for(
        &mut events,
        &LeaderEvent::NewLeader {
            identity: Some("nowatch-a".into()),
        },
    )
    .await;
    assert_eq!(first.shutdown().await.unwrap(), ShutdownOutcome::Released);
    wait_for(&mut events, &LeaderEvent::StartedLeading).await;
    second.shutdown().await.unwrap();
}
