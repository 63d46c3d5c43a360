//! Shards moving as replicas come and go, and a kube-runtime `Controller`
//! per replica that reconciles only the objects of the shards it owns.
//!
//! Twelve shards, replicas that join one by one, one that leaves gracefully
//! and one that crashes (its client is cut off). After each step the
//! example prints who owns which shard and how long the move took. Each
//! replica's Controller watches every object (Leases labelled
//! `example.kube-elector.io/managed`, as the embedded server serves only
//! Leases) but reconciles one only while it owns the object's shard,
//! holding that shard's guard, so that a handover waits for a reconcile in
//! flight, and a shard it acquires is reconciled at once.
//!
//! ```text
//! cargo run --example sharded
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use kube_elector::{
    ElectorConfig,
    hub::LeaseHub,
    shard::{ShardConfig, ShardEvent, ShardedElector, ShardedHandle},
};
use kube_elector_testing::{FaultTarget, LeaseApiServer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const SHARDS: u32 = 12;
const LABEL: &str = "example.kube-elector.io/managed";
const ANNOTATION: &str = "example.kube-elector.io/reconciled-by";

struct Context {
    api: Api<Lease>,
    sharded: Arc<ShardedHandle>,
}

/// Reconciles `object` only if this replica owns its shard, holding the
/// shard's guard meanwhile; writes who did it, with the fencing token.
async fn reconcile(object: Arc<Lease>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    let key = format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    );
    let shard = ctx.sharded.shard_of(&key);
    let Some(leadership) = ctx.sharded.leadership(shard) else {
        // Not ours: the owner reconciles it; a move triggers us again.
        return Ok(Action::await_change());
    };
    let mark = format!(
        "{} (shard {shard}, token {})",
        leadership.identity(),
        leadership.fencing_token()
    );
    if object.annotations().get(ANNOTATION) != Some(&mark) {
        let patch = serde_json::json!({ "metadata": { "annotations": { ANNOTATION: mark } } });
        ctx.api
            .patch(
                &object.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    drop(leadership);
    Ok(Action::await_change())
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime asks for
fn error_policy(_: Arc<Lease>, _: &kube::Error, _: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(1))
}

/// A replica: its sharded elector, and its Controller (stopped by `stop`).
struct Replica {
    name: String,
    sharded: Arc<ShardedHandle>,
    stop: CancellationToken,
    controller: tokio::task::JoinHandle<()>,
}

impl Replica {
    /// Stops the Controller (reconciles in flight finish), then leaves:
    /// every shard is handed to its next owner.
    async fn leave(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.controller.await?;
        let sharded = Arc::into_inner(self.sharded).expect("the Controller is gone");
        Ok(sharded.shutdown().await?)
    }
}

/// A replica with its own client and hub, whose Controller runs again over
/// every object whenever this replica gains a shard.
fn replica(server: &LeaseApiServer, name: &str) -> anyhow::Result<Replica> {
    let client = server.client_for(name);
    let hub = LeaseHub::new(client.clone());
    let config = ShardConfig::new(
        ElectorConfig::new("sharded-example")
            .namespace("default")
            .identity(name)
            .lease_duration(Duration::from_secs(2))
            .renew_deadline(Duration::from_secs(1))
            .retry_period(Duration::from_millis(250))
            .drain_timeout(Duration::from_secs(1)),
        SHARDS,
    );
    let sharded = Arc::new(ShardedElector::in_hub(&hub, config)?.spawn());
    let api: Api<Lease> = Api::namespaced(client, "default");
    let acquired = sharded
        .events()
        .filter_map(|e| async move { matches!(e, ShardEvent::ShardAcquired { .. }).then_some(()) });
    let ctx = Arc::new(Context {
        api: api.clone(),
        sharded: Arc::clone(&sharded),
    });
    let stop = CancellationToken::new();
    let controller = tokio::spawn(
        Controller::new(
            api,
            watcher::Config::default().labels(&format!("{LABEL}=true")),
        )
        .reconcile_all_on(acquired)
        .graceful_shutdown_on(stop.clone().cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {}),
    );
    Ok(Replica {
        name: name.to_owned(),
        sharded,
        stop,
        controller,
    })
}

/// Waits until every replica in `fleet` owns its share of the assignment
/// over all of them, then prints the owners and how long it took.
async fn settle(what: &str, fleet: &[Replica], since: Instant) {
    let names: Vec<&str> = fleet.iter().map(|r| r.name.as_str()).collect();
    let want = kube_elector::shard::Assignment::compute(SHARDS, &names);
    let done = |r: &Replica| {
        r.sharded.assignment() == want && r.sharded.owned().shards().eq(want.shards_of(&r.name))
    };
    while !fleet.iter().all(done) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("{what}: settled in {:?}", since.elapsed());
    for replica in fleet {
        let owned: Vec<u32> = replica.sharded.owned().shards().collect();
        println!("  {:<10} owns {owned:?}", replica.name);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = LeaseApiServer::start().await?;
    let api: Api<Lease> = Api::namespaced(server.client(), "default");
    for i in 0..8 {
        let object = Lease {
            metadata: ObjectMeta {
                name: Some(format!("object-{i}")),
                labels: Some(BTreeMap::from([(LABEL.to_owned(), "true".to_owned())])),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec::default()),
        };
        api.create(&PostParams::default(), &object).await?;
    }

    let mut fleet = Vec::new();
    for name in ["replica-a", "replica-b", "replica-c"] {
        let since = Instant::now();
        fleet.push(replica(&server, name)?);
        settle(&format!("{name} joins"), &fleet, since).await;
    }

    let since = Instant::now();
    fleet.remove(1).leave().await?;
    settle("replica-b leaves gracefully (handover)", &fleet, since).await;

    let since = Instant::now();
    server.partition(FaultTarget::Client("replica-c".into()));
    let crashed = fleet.remove(1);
    settle(
        "replica-c crashes (its member Lease expires)",
        &fleet,
        since,
    )
    .await;
    crashed.stop.cancel();

    tokio::time::sleep(Duration::from_millis(500)).await;
    for object in api
        .list(&kube::api::ListParams::default().labels(&format!("{LABEL}=true")))
        .await?
    {
        let by = object
            .annotations()
            .get(ANNOTATION)
            .map_or("-", String::as_str);
        println!("{}: reconciled by {by}", object.name_any());
    }
    Ok(())
}
