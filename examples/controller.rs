//! A kube-runtime `Controller` that reconciles only while its replica leads,
//! in both modes of `kube_elector::controller::LeaderController`.
//!
//! Two replicas in one process each run an elector and a leader-gated
//! Controller of Leases labelled `example.kube-elector.io/managed` (Leases,
//! because the embedded API server serves nothing else; the election Lease
//! carries a label of its own and is left out of the watch). Each reconcile
//! writes who reconciled the object, with which fencing token. Halfway, the
//! leader shuts down: no reconcile starts after its term, those in flight
//! finish, and only then is the Lease released to the other replica.
//!
//! First in cold mode (a Controller per term: the new leader lists every
//! object before it reconciles), then warm standby (both replicas watch; the
//! new leader reconciles its warm store at once, with no list).
//!
//! ```text
//! cargo run --example controller                 # embedded Lease API server
//! KUBECONFIG=~/.kube/config cargo run --example controller
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use kube_elector::controller::{LeaderContext, LeaderController};
use kube_elector::{ElectorConfig, ElectorHandle, LeaderElector};
use kube_elector_testing::LeaseApiServer;
use tokio::task::JoinHandle;

const MANAGED: &str = "example.kube-elector.io/managed";
const ELECTION: &str = "example.kube-elector.io/election";
const ANNOTATION: &str = "example.kube-elector.io/reconciled-by";

/// What every reconcile of a replica shares.
struct Data {
    api: Api<Lease>,
}

async fn reconcile(
    object: Arc<Lease>,
    ctx: Arc<LeaderContext<Data>>,
) -> Result<Action, kube::Error> {
    let identity = ctx.leadership().identity().to_owned();
    let mark = format!("{identity} (fencing token {})", ctx.fencing_token());
    if object.annotations().get(ANNOTATION) != Some(&mark) {
        // A little work, so that a shutdown finds some in flight.
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Conditional on the version read: a later term's write since makes
        // this one fail instead of landing on top of it.
        let patch = serde_json::json!({ "metadata": {
            "resourceVersion": object.resource_version(),
            "annotations": { ANNOTATION: mark },
        } });
        ctx.api
            .patch(
                &object.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        println!("  {identity} reconciled {}", object.name_any());
    }
    Ok(Action::await_change())
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime asks for
fn error_policy(object: Arc<Lease>, error: &kube::Error, _: Arc<Data>) -> Action {
    println!("  reconciling {} failed: {error}", object.name_any());
    Action::requeue(Duration::from_secs(1))
}

/// One replica: an elector, and a leader-gated Controller beside it.
fn replica(
    client: &kube::Client,
    namespace: &str,
    lease: &str,
    identity: &str,
    warm: bool,
) -> anyhow::Result<(ElectorHandle, JoinHandle<()>)> {
    let elector = LeaderElector::new(
        client.clone(),
        ElectorConfig::new(lease)
            .namespace(namespace)
            .identity(identity)
            .lease_duration(Duration::from_secs(4))
            .renew_deadline(Duration::from_secs(2))
            .retry_period(Duration::from_millis(500))
            // Tells the election Lease from the managed ones.
            .lease_label(ELECTION, "true"),
    )?
    .spawn();
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let watched = watcher::Config::default().labels(&format!("{MANAGED}=true,{ELECTION}!=true"));
    let controller = if warm {
        LeaderController::warm(Controller::new(api.clone(), watched))
    } else {
        let api = api.clone();
        LeaderController::cold(move || Controller::new(api.clone(), watched.clone()))
    };
    let run = controller
        .run(&elector, reconcile, error_policy, Arc::new(Data { api }))
        .for_each(|_| async {});
    Ok((elector, tokio::spawn(run)))
}

/// Two replicas take turns: a leads, shuts down, b takes over.
async fn handover(client: &kube::Client, namespace: &str, warm: bool) -> anyhow::Result<()> {
    let mode = if warm { "warm" } else { "cold" };
    let lease = format!("controller-example-{mode}");
    let (a, run_a) = replica(client, namespace, &lease, &format!("{mode}-a"), warm)?;
    a.became_leader().await.map(drop)?;
    let (b, run_b) = replica(client, namespace, &lease, &format!("{mode}-b"), warm)?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!("-- {mode}-a shuts down; {mode}-b takes over once a's reconciles drained");
    println!("{mode}-a: {:?}", a.shutdown().await?);
    run_a.await?;
    b.became_leader().await.map(drop)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("{mode}-b: {:?}", b.shutdown().await?);
    run_b.await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A real cluster if KUBECONFIG is set, else the embedded server.
    let (client, _server) = if std::env::var_os("KUBECONFIG").is_some() {
        (kube::Client::try_default().await?, None)
    } else {
        let server = LeaseApiServer::start().await?;
        (server.client(), Some(server))
    };
    let namespace = "default";
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);

    // Some objects for the controllers.
    for i in 1..=3 {
        let object = Lease {
            metadata: ObjectMeta {
                name: Some(format!("managed-{i}")),
                labels: Some(BTreeMap::from([(MANAGED.to_owned(), "true".to_owned())])),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec::default()),
        };
        match api.create(&PostParams::default(), &object).await {
            Ok(_) | Err(kube::Error::Api(_)) => {} // created, or there already
            Err(error) => return Err(error.into()),
        }
    }

    println!("== cold: a Controller per term");
    handover(&client, namespace, false).await?;
    println!("== warm standby: both replicas watch, the leader reconciles");
    handover(&client, namespace, true).await?;

    for object in api
        .list(&ListParams::default().labels(&format!("{MANAGED}=true")))
        .await?
    {
        println!(
            "{}: {}",
            object.name_any(),
            object
                .annotations()
                .get(ANNOTATION)
                .map_or("-", String::as_str)
        );
    }
    Ok(())
}
