//! `kube_elector::controller::LeaderController` on a real kube-apiserver,
//! over `ConfigMap`s (the embedded server serves only Leases), in both modes:
//! a leader reconciles, a follower calls no reconcile, and after the leader
//! shuts down without releasing (as if it crashed) its successor reconciles
//! every object, with a larger fencing token, including the changes made
//! while nobody led.
//!
//! Every test here is `#[ignore]`d: a plain `cargo test` lists them as
//! ignored, and `scripts/e2e-real.sh` runs them with `--include-ignored`
//! against the kube-apiserver it starts. Run so without
//! `KUBE_ELECTOR_TEST_KUBECONFIG`, each says `SKIPPED`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use kube_elector::controller::{LeaderContext, LeaderController};
use kube_elector::{ElectorHandle, LeaderElector, ShutdownOutcome};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use support::Target;

/// The longest any single wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(30);
/// Watched objects per test.
const OBJECTS: usize = 40;
const ANNOTATION: &str = "e2e.kube-elector.io/seen";
const DATA_KEY: &str = "gen";

/// One reconcile as the test saw it: which replica, which object, the
/// term's fencing token, and what it found in the data key.
#[derive(Debug, Clone)]
struct Seen {
    replica: &'static str,
    object: String,
    token: u64,
    value: String,
}

struct Data {
    api: Api<ConfigMap>,
    replica: &'static str,
    seen: mpsc::UnboundedSender<Seen>,
}

/// The bench's reconcile body: the annotation follows the data key.
async fn reconcile(
    cm: Arc<ConfigMap>,
    ctx: Arc<LeaderContext<Data>>,
) -> Result<Action, kube::Error> {
    let want = cm
        .data
        .as_ref()
        .and_then(|d| d.get(DATA_KEY))
        .cloned()
        .unwrap_or_default();
    if cm.annotations().get(ANNOTATION) != Some(&want) {
        let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION: want}}});
        ctx.api
            .patch(
                &cm.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    let _ = ctx.seen.send(Seen {
        replica: ctx.replica,
        object: cm.name_any(),
        token: ctx.fencing_token(),
        value: want,
    });
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ConfigMap>, _: &kube::Error, _: Arc<Data>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

/// A replica: an elector and its controller over the `ConfigMap`s of `label`.
struct Replica {
    handle: ElectorHandle,
    run: JoinHandle<()>,
}

/// `release`: whether its shutdown releases the Lease.
fn replica(
    target: &Target,
    lease: &str,
    name: &'static str,
    label: &str,
    warm: bool,
    release: bool,
    seen: mpsc::UnboundedSender<Seen>,
) -> Replica {
    let client = target.client_for(name);
    let config = support::short_config(lease, name).release_on_cancel(release);
    let handle = LeaderElector::new(client.clone(), config).unwrap().spawn();
    let api: Api<ConfigMap> = Api::namespaced(client, target.namespace());
    let watch = watcher::Config::default().labels(&format!("e2e-controller={label}"));
    let config = Config::default().concurrency(4);
    let gated = if warm {
        LeaderController::warm(Controller::new(api.clone(), watch).with_config(config))
    } else {
        let api = api.clone();
        LeaderController::cold(move || {
            Controller::new(api.clone(), watch.clone()).with_config(config.clone())
        })
    };
    let data = Arc::new(Data {
        api,
        replica: name,
        seen,
    });
    let run = tokio::spawn(
        gated
            .run(&handle, reconcile, error_policy, data)
            .for_each(|_| async {}),
    );
    Replica { handle, run }
}

/// Makes the test's `ConfigMap`s: label `e2e-controller=label`, data and
/// annotation equal (nothing to patch).
async fn populate(api: &Api<ConfigMap>, label: &str) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..OBJECTS {
        let name = format!("{label}-{i:03}");
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([("e2e-controller".into(), label.into())])),
                annotations: Some(BTreeMap::from([(ANNOTATION.into(), "0".into())])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(DATA_KEY.into(), "0".into())])),
            ..Default::default()
        };
        api.create(&PostParams::default(), &cm).await.unwrap();
        names.push(name);
    }
    names
}

/// Receives reconciles until `done` holds for what was received so far;
/// panics after PATIENCE naming `what`.
async fn collect_until(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    all: &mut Vec<Seen>,
    what: &str,
    done: impl Fn(&[Seen]) -> bool,
) {
    timeout(PATIENCE, async {
        while !done(all) {
            let seen = rx.recv().await.expect("the reconciles' channel closed");
            all.push(seen);
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no {what} within {PATIENCE:?}; reconciles seen: {}",
            all.len()
        )
    });
}

/// Every reconcile ran in its replica's term; replica-a's reports may
/// still arrive after its shutdown (a reconcile of its own patch's event,
/// sent before it ended), but none saw the changes made after it; replica-b
/// reconciled nothing while it followed (its token is its own term's).
fn assert_terms(seen: &[Seen], a_token: u64, b_token: u64) {
    for x in seen {
        let term = if x.replica == "replica-a" {
            a_token
        } else {
            b_token
        };
        assert_eq!(x.token, term, "{x:?} ran in its replica's term");
        assert!(
            x.replica == "replica-b" || x.value != "1",
            "replica-a reconciled after its shutdown: {x:?}"
        );
    }
}

/// Every object of `label` on the server carries annotation `value`.
async fn assert_reconciled_on_server(api: &Api<ConfigMap>, label: &str, value: &str) {
    let list = api
        .list(&ListParams::default().labels(&format!("e2e-controller={label}")))
        .await
        .unwrap();
    assert_eq!(list.items.len(), OBJECTS);
    for cm in &list.items {
        assert_eq!(
            cm.annotations().get(ANNOTATION).map(String::as_str),
            Some(value),
            "{} is reconciled on the server",
            cm.name_any()
        );
    }
}

/// Waits until `handle` leads; its term's fencing token.
async fn leads(handle: &ElectorHandle, who: &str) -> u64 {
    let term = timeout(PATIENCE, handle.became_leader())
        .await
        .unwrap_or_else(|_| panic!("{who} leads within {PATIENCE:?}"))
        .unwrap();
    term.fencing_token()
}

/// Sets the data key of `name` to `value`.
async fn change(api: &Api<ConfigMap>, name: &str, value: &str) {
    let patch = serde_json::json!({"data": {DATA_KEY: value}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn takeover(warm: bool) {
    if std::env::var(support::KUBECONFIG_ENV).map_or(true, |p| p.is_empty()) {
        return support::skipped(
            "needs a real kube-apiserver for ConfigMaps: KUBE_ELECTOR_TEST_KUBECONFIG (scripts/e2e-real.sh sets it)",
        );
    }
    let target = Target::new().await;
    let label = support::unique_name(if warm { "ctl-warm" } else { "ctl-cold" });
    let lease = support::unique_name("ctl-lease");
    let api: Api<ConfigMap> = Api::namespaced(target.client_for("e2e-admin"), target.namespace());
    let names: BTreeSet<String> = populate(&api, &label).await.into_iter().collect();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut seen = Vec::new();

    // The first replica leads and reconciles every object of its term.
    // It does not release at shutdown, as after a crash: its successor
    // waits for the Lease to expire, and the test changes every object
    // meanwhile, while nobody leads.
    let a = replica(
        &target,
        &lease,
        "replica-a",
        &label,
        warm,
        false,
        tx.clone(),
    );
    let a_token = leads(&a.handle, "replica-a").await;
    collect_until(&mut rx, &mut seen, "first pass of replica-a", |s| {
        names
            .iter()
            .all(|n| s.iter().any(|x| x.replica == "replica-a" && &x.object == n))
    })
    .await;

    // A follower (warm: watching too) calls no reconcile while a leads:
    // one change is reconciled by a alone.
    let b = replica(&target, &lease, "replica-b", &label, warm, true, tx.clone());
    let probe = names.iter().next().unwrap().clone();
    change(&api, &probe, "probe").await;
    collect_until(&mut rx, &mut seen, "reconcile of the probe", |s| {
        s.iter().any(|x| x.object == probe && x.value == "probe")
    })
    .await;
    assert!(
        seen.iter()
            .all(|x| x.replica == "replica-a" && x.token == a_token),
        "only replica-a reconciles while it leads, in its term: {:?}",
        seen.iter()
            .find(|x| x.replica != "replica-a" || x.token != a_token)
    );

    // a shuts down (drains its reconciles, leaves the Lease held); every
    // object changes before b's term can start (the Lease runs 2 s more);
    // b reconciles every one of them with the new value: a warm b from its
    // store at the start of its term (the changes reached it as a
    // follower, which reconciles nothing), a cold one from its first list.
    assert_eq!(
        a.handle.shutdown().await.unwrap(),
        ShutdownOutcome::ReleaseSkipped
    );
    timeout(PATIENCE, a.run)
        .await
        .expect("replica-a's controller ends")
        .unwrap();
    for name in &names {
        change(&api, name, "1").await;
    }
    assert!(
        !b.handle.is_leader(),
        "the changes were made before replica-b's term (they took under a lease duration)"
    );
    let b_token = leads(&b.handle, "replica-b").await;
    assert!(
        b_token > a_token,
        "the new term's token {b_token} is above the old {a_token}"
    );
    collect_until(
        &mut rx,
        &mut seen,
        "reconcile of every object by replica-b",
        |s| {
            names.iter().all(|n| {
                s.iter()
                    .any(|x| x.replica == "replica-b" && &x.object == n && x.value == "1")
            })
        },
    )
    .await;
    assert_terms(&seen, a_token, b_token);
    assert_reconciled_on_server(&api, &label, "1").await;

    b.handle.shutdown().await.unwrap();
    timeout(PATIENCE, b.run)
        .await
        .expect("replica-b's controller ends")
        .unwrap();
    let _ = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&format!("e2e-controller={label}")),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real API server (ConfigMaps): scripts/e2e-real.sh runs it"]
async fn a_cold_takeover_reconciles_every_configmap_on_a_real_server() {
    takeover(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real API server (ConfigMaps): scripts/e2e-real.sh runs it"]
async fn a_warm_takeover_reconciles_every_configmap_on_a_real_server() {
    takeover(true).await;
}
