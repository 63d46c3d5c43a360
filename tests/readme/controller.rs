// The README's "Running a Controller only while leading" program: it holds
// the block's visible lines word for word (tests/readme_programs.rs checks
// it), around them what its hidden lines stand for, with one change the
// test makes too: `ConfigMap` reads `Lease`, as the embedded server serves
// nothing else.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use kube_elector::{ElectorConfig, ElectorHandle, LeaderElector};
use tracing_subscriber::EnvFilter;

use kube_elector::controller::{LeaderContext, LeaderController};

struct Context;

#[allow(clippy::unused_async)] // the signature kube-runtime asks for
async fn reconcile(cm: Arc<Lease>, ctx: Arc<LeaderContext<Context>>) -> Result<Action, kube::Error> {
    // `ctx` derefs to `Context`; the term's fencing token fences writes.
    tracing::info!(object = %cm.name_any(), token = ctx.fencing_token(), "reconciling");
    Ok(Action::await_change())
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime asks for
fn error_policy(_: Arc<Lease>, _: &kube::Error, _: Arc<Context>) -> Action {
    Action::await_change()
}

async fn run(elector: ElectorHandle, api: Api<Lease>, ctx: Arc<Context>) -> anyhow::Result<()> {
    // Warm standby: every replica watches and keeps its store; the leader
    // reconciles, and a new leader reconciles its whole store at once, no list.
    let controller = LeaderController::warm(Controller::new(api, watcher::Config::default()));
    // Cold instead: `LeaderController::cold(move || Controller::new(api.clone(), ...))`,
    // built per term, so followers send nothing and a new leader lists first.
    let run = tokio::spawn(
        controller
            .run(&elector, reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );
    // On SIGTERM or Ctrl-C: end the term, let reconciles finish, release.
    let outcome = elector
        .run_until_signal(|leadership| async move {
            leadership.lost().await;
            anyhow::Ok(())
        })
        .await?;
    run.await?; // the controller ends once the elector has stopped
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
