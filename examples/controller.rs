//! A kube-runtime `Controller` that runs only while its replica leads.
//!
//! Two replicas in one process each run an elector and, for every term they
//! lead, a Controller (with `ElectorHandle::run_while_leading`). The
//! controller reconciles Leases labelled `example.kube-elector.io/managed`,
//! writing who reconciled them and with which fencing token; Leases, because
//! the embedded API server serves nothing else. Halfway, the leader shuts
//! down: its controller stops taking work, finishes what is in flight, and
//! only then is the election Lease released to the other replica.
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
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use kube_elector::{ElectorConfig, ElectorHandle, LeaderElector, Leadership};
use kube_elector_testing::LeaseApiServer;

const LABEL: &str = "example.kube-elector.io/managed";
const ANNOTATION: &str = "example.kube-elector.io/reconciled-by";

/// What a reconcile needs: the API, and the term it runs in.
struct Context {
    api: Api<Lease>,
    leadership: Leadership,
}

async fn reconcile(object: Arc<Lease>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    let mark = format!(
        "{} (fencing token {})",
        ctx.leadership.identity(),
        ctx.leadership.fencing_token()
    );
    if object.annotations().get(ANNOTATION) != Some(&mark) {
        // A little work, so that a shutdown finds some in flight.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let patch = serde_json::json!({ "metadata": { "annotations": { ANNOTATION: mark } } });
        ctx.api
            .patch(
                &object.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        println!(
            "  {} reconciled {}",
            ctx.leadership.identity(),
            object.name_any()
        );
    }
    Ok(Action::await_change())
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime asks for
fn error_policy(object: Arc<Lease>, error: &kube::Error, _: Arc<Context>) -> Action {
    println!("  reconciling {} failed: {error}", object.name_any());
    Action::requeue(Duration::from_secs(1))
}

/// One replica: an elector, and a Controller for each term it leads.
fn replica(
    client: &kube::Client,
    namespace: &str,
    identity: &str,
) -> anyhow::Result<ElectorHandle> {
    let elector = LeaderElector::new(
        client.clone(),
        ElectorConfig::new("controller-example")
            .namespace(namespace)
            .identity(identity)
            .lease_duration(Duration::from_secs(4))
            .renew_deadline(Duration::from_secs(2))
            .retry_period(Duration::from_millis(500)),
    )?
    .spawn();
    Ok(elector)
}

async fn run_controller(elector: Arc<ElectorHandle>, api: Api<Lease>) {
    elector
        .run_while_leading(|leadership| {
            let api = api.clone();
            async move {
                println!("{} leads: starting its controller", leadership.identity());
                let stop = leadership.cancelled_owned();
                let identity = leadership.identity().to_owned();
                let ctx = Arc::new(Context {
                    api: api.clone(),
                    leadership,
                });
                Controller::new(
                    api,
                    watcher::Config::default().labels(&format!("{LABEL}=true")),
                )
                .graceful_shutdown_on(stop)
                .run(reconcile, error_policy, ctx)
                .for_each(|_| async {})
                .await;
                // The Context (and the guard in it) is gone: the Lease may go.
                println!("{identity}: controller drained");
            }
        })
        .await;
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

    // Some objects for the controller.
    for i in 1..=3 {
        let object = Lease {
            metadata: ObjectMeta {
                name: Some(format!("managed-{i}")),
                labels: Some(BTreeMap::from([(LABEL.to_owned(), "true".to_owned())])),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec::default()),
        };
        match api.create(&PostParams::default(), &object).await {
            Ok(_) | Err(kube::Error::Api(_)) => {} // created, or there already
            Err(error) => return Err(error.into()),
        }
    }

    let a = Arc::new(replica(&client, namespace, "replica-a")?);
    let controller_a = tokio::spawn(run_controller(Arc::clone(&a), api.clone()));
    a.became_leader().await.map(drop)?;
    let b = Arc::new(replica(&client, namespace, "replica-b")?);
    let controller_b = tokio::spawn(run_controller(Arc::clone(&b), api.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!("-- replica-a shuts down; replica-b takes over once a's controller drained");
    a.cancellation_token().cancel();
    controller_a.await?;
    let a = Arc::into_inner(a).expect("the controller task is done");
    println!("replica-a: {:?}", a.join().await?);
    b.became_leader().await.map(drop)?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    b.cancellation_token().cancel();
    controller_b.await?;
    let b = Arc::into_inner(b).expect("the controller task is done");
    println!("replica-b: {:?}", b.join().await?);
    for object in api
        .list(&kube::api::ListParams::default().labels(&format!("{LABEL}=true")))
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
