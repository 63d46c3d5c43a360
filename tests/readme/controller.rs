// The README's "Running a Controller only while leading" program: `run`
// holds the block's visible lines word for word (tests/readme_programs.rs
// checks it), around them what its hidden lines stand for. It watches
// Leases, as the embedded server serves nothing else; the block's `api`
// is whatever `Api` the program gives it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use kube_elector::{ElectorConfig, ElectorHandle, LeaderElector};
use tracing_subscriber::EnvFilter;

struct Context;

#[allow(clippy::unused_async)] // the signature kube-runtime asks for
async fn reconcile(object: Arc<Lease>, _: Arc<Context>) -> Result<Action, kube::Error> {
    println!("reconciled {}", object.name_any());
    Ok(Action::await_change())
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime asks for
fn error_policy(_: Arc<Lease>, _: &kube::Error, _: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(1))
}

async fn run(elector: ElectorHandle, api: Api<Lease>, ctx: Arc<Context>) -> anyhow::Result<()> {
    let outcome = elector
        .run_until_signal(|leadership| {
            let (api, ctx) = (api.clone(), Arc::clone(&ctx)); // each term gets its own
            async move {
                Controller::new(api, watcher::Config::default())
                    .graceful_shutdown_on(leadership.cancelled_owned())
                    .run(reconcile, error_policy, ctx)
                    .for_each(|_| async {})
                    .await;
                drop(leadership); // reconciles drained: the Lease may be released now
                anyhow::Ok(())
            }
        })
        .await?;
    println!("shut down: {outcome:?}");
    Ok(())
}

pub(super) fn main() -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        tracing_subscriber::fmt().with_env_filter(filter).init();
        let client = kube::Client::try_default().await?;
        let elector =
            LeaderElector::new(client.clone(), ElectorConfig::new("readme-controller"))?.spawn();
        run(elector, Api::default_namespaced(client), Arc::new(Context)).await
    })
}
