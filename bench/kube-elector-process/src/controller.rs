//! `--controller cold|warm`: a kube-runtime Controller over the ConfigMaps
//! of `--selector`, gated by one elector through
//! `kube_elector::controller::LeaderController`, for the controller scenario
//! of bench/controller_bench.py. The reconcile body is the benchmark's (the
//! same as interop/cmd/controller-runtime-manager's): if annotation
//! `--annotation` differs from data key `--data-key`, merge-patch it and
//! print a `reconciled` line; otherwise nothing. A warm replica prints
//! `synced` once its store has listed.

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::watcher;
use kube_elector::controller::{LeaderContext, LeaderController};
use kube_elector::{ElectorConfig, LeaderElector, LeaderEvent};
use tokio::signal::unix::{SignalKind, signal};

use crate::{IMPL, protocol};

struct Data {
    api: kube::Api<ConfigMap>,
    annotation: String,
    data_key: String,
    identity: String,
}

async fn reconcile(
    cm: Arc<ConfigMap>,
    ctx: Arc<LeaderContext<Data>>,
) -> Result<Action, kube::Error> {
    let want = cm
        .data
        .as_ref()
        .and_then(|d| d.get(&ctx.data_key))
        .cloned()
        .unwrap_or_default();
    let have = cm
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&ctx.annotation));
    if have == Some(&want) {
        return Ok(Action::await_change());
    }
    let name = cm.metadata.name.clone().unwrap_or_default();
    let patch = serde_json::json!({"metadata": {"annotations": {ctx.annotation.as_str(): want}}});
    ctx.api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    protocol::emit_reconciled(IMPL, &ctx.identity, &name, &want);
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ConfigMap>, error: &kube::Error, _: Arc<Data>) -> Action {
    eprintln!("reconcile failed: {error}");
    Action::requeue(std::time::Duration::from_millis(100))
}

pub async fn run(args: &protocol::Args, client: kube::Client, config: ElectorConfig, warm: bool) {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    protocol::emit(IMPL, &args.identity, "ready", "");
    let handle = LeaderElector::new(client.clone(), config)
        .expect("valid config")
        .spawn();
    let mut events = handle.events();
    let api = kube::Api::<ConfigMap>::namespaced(client, &args.namespace);
    let watch = watcher::Config::default().labels(&args.selector);
    let controller_config = Config::default().concurrency(args.concurrency);
    let data = Arc::new(Data {
        api: api.clone(),
        annotation: args.annotation.clone(),
        data_key: args.data_key.clone(),
        identity: args.identity.clone(),
    });
    let gated = if warm {
        let controller = Controller::new(api, watch).with_config(controller_config);
        let store = controller.store();
        let identity = args.identity.clone();
        // Polled, not awaited: kube-runtime's Store readiness (a oneshot
        // behind a mutex) wakes only the last task that polled it, and the
        // Controller's own wait polls after this one, so an await here
        // would never wake. Every 10 ms is well inside the figures.
        tokio::spawn(async move {
            loop {
                match store.wait_until_ready().now_or_never() {
                    Some(Ok(())) => break protocol::emit(IMPL, &identity, "synced", ""),
                    Some(Err(_)) => break,
                    None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                }
            }
        });
        LeaderController::warm(controller)
    } else {
        LeaderController::cold(move || {
            Controller::new(api.clone(), watch.clone()).with_config(controller_config.clone())
        })
    };
    let running = tokio::spawn(
        gated
            .run(&handle, reconcile, error_policy, data)
            .for_each(|_| async {}),
    );
    let mut leading = false;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            event = events.next() => match event {
                Some(LeaderEvent::StartedLeading) => {
                    leading = true;
                    protocol::emit(IMPL, &args.identity, "started_leading", &args.identity);
                }
                Some(LeaderEvent::StoppedLeading) if leading => {
                    leading = false;
                    protocol::emit(IMPL, &args.identity, "stopped_leading", "");
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    // The term ends at the signal (the line protocol), before the shutdown
    // drains the reconciles in flight and releases the Lease.
    if leading {
        protocol::emit(IMPL, &args.identity, "stopped_leading", "");
    }
    let shutdown = tokio::spawn(handle.shutdown());
    while events.next().await.is_some() {}
    let _ = shutdown.await;
    let _ = running.await;
    protocol::emit(IMPL, &args.identity, "exited", "");
}
