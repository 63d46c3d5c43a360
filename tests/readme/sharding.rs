// The README's "Sharded leadership" program: `run` and `reconcile` hold the
// block's visible lines word for word, with one change the test makes too:
// `ConfigMap` reads `Lease`, as the embedded server serves nothing else.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use kube_elector::ElectorConfig;
use kube_elector::shard::{ShardConfig, ShardEvent, ShardedElector, ShardedHandle};
use tracing_subscriber::EnvFilter;

async fn run(client: kube::Client) -> anyhow::Result<()> {
    let config = ShardConfig::new(ElectorConfig::new("my-operator"), 32);
    let sharded = Arc::new(ShardedElector::new(client.clone(), config)?.spawn());
    // Shards arrive after start-up: reconcile every object again when one does,
    // so an object skipped before its shard was ours is not lost.
    let acquired = sharded
        .events()
        .filter_map(|e| async move { matches!(e, ShardEvent::ShardAcquired { .. }).then_some(()) });
    Controller::new(Api::<Lease>::all(client), watcher::Config::default())
        .reconcile_all_on(acquired)
        .run(reconcile, error_policy, sharded)
        .for_each(|_| async {})
        .await;
    Ok(())
}

#[allow(clippy::unused_async)] // the signature kube-runtime asks for
async fn reconcile(object: Arc<Lease>, sharded: Arc<ShardedHandle>) -> Result<Action, kube::Error> {
    let key = format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any());
    if !sharded.owns_key(&key) {
        return Ok(Action::await_change()); // another replica's, or reconciled when its shard arrives
    }
    tracing::info!(%key, "reconciling"); // this replica's work on the object
    Ok(Action::await_change())
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime asks for
fn error_policy(_: Arc<Lease>, _: &kube::Error, _: Arc<ShardedHandle>) -> Action {
    Action::await_change()
}

pub(super) fn main() -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        tracing_subscriber::fmt().with_env_filter(filter).init();
        let client = kube::Client::try_default().await?;
        run(client).await
    })
}
