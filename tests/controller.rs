//! A kube-runtime `Controller` gated by leadership
//! (`ElectorHandle::run_while_leading` + `graceful_shutdown_on`): it
//! reconciles only while its replica leads, and a shutdown releases the Lease
//! only after the reconciles in flight finished (or the drain timeout passed).
//! The controller reconciles labelled Leases, which every target serves.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use kube_elector::{
    ElectorConfig, ElectorHandle, LeaderElector, LeaderState, Leadership, ShutdownOutcome,
};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use support::Target;

const LEASE: Duration = Duration::from_secs(2);
const RENEW_DEADLINE: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_millis(250);
/// The longest any single wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(20);
const RUN_LABEL: &str = "test.kube-elector.io/run";

/// One reconcile, as its replica saw it when it began.
#[derive(Clone, Debug)]
struct Reconcile {
    replica: String,
    object: String,
    leading: bool,
}

/// What the tests share with every reconcile.
struct Probe {
    log: Mutex<Vec<Reconcile>>,
    /// Reconciles of this object block until the test adds permits.
    slow: String,
    gate: Semaphore,
    entered: mpsc::UnboundedSender<String>,
}

impl Probe {
    fn new(slow: &str) -> (Arc<Self>, mpsc::UnboundedReceiver<String>) {
        let (entered, rx) = mpsc::unbounded_channel();
        let probe = Self {
            log: Mutex::new(Vec::new()),
            slow: slow.to_owned(),
            gate: Semaphore::new(0),
            entered,
        };
        (Arc::new(probe), rx)
    }

    fn log(&self) -> Vec<Reconcile> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn count(&self, replica: &str) -> usize {
        self.log().iter().filter(|r| r.replica == replica).count()
    }

    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

struct Context {
    leadership: Leadership,
    probe: Arc<Probe>,
}

async fn reconcile(object: Arc<Lease>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    let replica = ctx.leadership.identity().to_owned();
    ctx.probe
        .log
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Reconcile {
            replica: replica.clone(),
            object: object.name_any(),
            leading: ctx.leadership.is_leading(),
        });
    if object.name_any() == ctx.probe.slow {
        ctx.probe.entered.send(replica).ok();
        ctx.probe.gate.acquire().await.map(drop).ok();
    }
    Ok(Action::await_change())
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime asks for
fn error_policy(_: Arc<Lease>, _: &kube::Error, _: Arc<Context>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

/// A replica: its elector runs a Controller for each term it leads.
struct Replica {
    token: CancellationToken,
    state: watch::Receiver<LeaderState>,
    task: JoinHandle<ElectorHandle>,
}

impl Replica {
    fn spawn(
        target: &Target,
        config: ElectorConfig,
        identity: &str,
        run: &str,
        probe: &Arc<Probe>,
    ) -> Self {
        let client = target.client_for(identity);
        let handle = LeaderElector::new(client.clone(), config.identity(identity))
            .expect("valid config")
            .spawn();
        let api: Api<Lease> = Api::namespaced(client, target.namespace());
        let selector = format!("{RUN_LABEL}={run}");
        let probe = Arc::clone(probe);
        let token = handle.cancellation_token();
        let state = handle.subscribe();
        let task = tokio::spawn(async move {
            handle
                .run_while_leading(|leadership| {
                    let controller =
                        Controller::new(api.clone(), watcher::Config::default().labels(&selector))
                            .graceful_shutdown_on(leadership.cancelled_owned());
                    let ctx = Arc::new(Context {
                        leadership,
                        probe: Arc::clone(&probe),
                    });
                    controller
                        .run(reconcile, error_policy, ctx)
                        .for_each(|_| async {})
                })
                .await;
            handle
        });
        Self { token, state, task }
    }

    async fn wait_leading(&mut self, what: &str) {
        timeout(PATIENCE, self.state.wait_for(LeaderState::is_leader))
            .await
            .unwrap_or_else(|_| panic!("not within {PATIENCE:?}: {what}"))
            .expect("the elector runs");
    }

    /// Shuts the elector down and waits for the controller and the release.
    async fn shutdown(self) -> ShutdownOutcome {
        self.token.cancel();
        let handle = timeout(PATIENCE, self.task)
            .await
            .expect("the controller drains within the patience")
            .expect("replica task");
        handle.join().await.expect("shutdown")
    }
}

fn config(lease: &str, target: &Target) -> ElectorConfig {
    ElectorConfig::new(lease)
        .namespace(target.namespace())
        .lease_duration(LEASE)
        .renew_deadline(RENEW_DEADLINE)
        .retry_period(RETRY)
}

/// Creates `names` as Leases labelled for this run.
async fn objects(target: &Target, run: &str, names: &[String]) -> Api<Lease> {
    let api: Api<Lease> = Api::namespaced(target.client_for("admin"), target.namespace());
    for name in names {
        let object = Lease {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([(RUN_LABEL.to_owned(), run.to_owned())])),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec::default()),
        };
        api.create(&PostParams::default(), &object)
            .await
            .expect("create an object");
    }
    api
}

/// Waits until `replica` has reconciled every object, then changes them all
/// and waits until it has reconciled each change.
async fn reconciles_all_then_changes(
    probe: &Probe,
    api: &Api<Lease>,
    names: &[String],
    replica: &str,
) {
    support::eventually(
        &format!("{replica} reconciles every object"),
        PATIENCE,
        || probe.count(replica) >= names.len(),
    )
    .await;
    touch(api, names, replica).await;
    support::eventually(
        &format!("{replica} reconciles the changes"),
        PATIENCE,
        || probe.count(replica) >= 2 * names.len(),
    )
    .await;
}

/// Changes every object, so that the controller reconciles each again.
async fn touch(api: &Api<Lease>, names: &[String], mark: &str) {
    for name in names {
        let patch = serde_json::json!({ "metadata": { "annotations": { "test.kube-elector.io/touch": mark } } });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("touch an object");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_start_only_while_their_replica_leads() {
    let target = Target::new().await;
    let run = support::unique_name("gated");
    let lease = format!("{run}-election");
    let names: Vec<String> = (0..3).map(|i| format!("{run}-object-{i}")).collect();
    let api = objects(&target, &run, &names).await;
    let (probe, _entered) = Probe::new("none");

    let mut a = Replica::spawn(&target, config(&lease, &target), "gated-a", &run, &probe);
    a.wait_leading("a leads").await;
    let mut b = Replica::spawn(&target, config(&lease, &target), "gated-b", &run, &probe);
    reconciles_all_then_changes(&probe, &api, &names, "gated-a").await;
    assert_eq!(
        probe.count("gated-b"),
        0,
        "the follower reconciled: {:?}",
        probe.log()
    );

    assert_eq!(a.shutdown().await, ShutdownOutcome::Released);
    b.wait_leading("b takes over").await;
    let a_total = probe.count("gated-a");
    reconciles_all_then_changes(&probe, &api, &names, "gated-b").await;
    assert_eq!(
        probe.count("gated-a"),
        a_total,
        "a reconciled after its shutdown: {:?}",
        probe.log()
    );
    let outside: Vec<Reconcile> = probe.log().into_iter().filter(|r| !r.leading).collect();
    assert!(
        outside.is_empty(),
        "reconciles began outside their term: {outside:?}"
    );
    assert!(probe.log().iter().all(|r| names.contains(&r.object)));
    assert_eq!(b.shutdown().await, ShutdownOutcome::Released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_the_lease_only_after_the_reconcile_in_flight_finished() {
    let target = Target::new().await;
    let run = support::unique_name("inflight");
    let lease = format!("{run}-election");
    let slow = format!("{run}-slow");
    let api = objects(&target, &run, std::slice::from_ref(&slow)).await;
    let (probe, mut entered) = Probe::new(&slow);

    let mut a = Replica::spawn(
        &target,
        config(&lease, &target).drain_timeout(PATIENCE),
        "inflight-a",
        &run,
        &probe,
    );
    a.wait_leading("a leads").await;
    let who = timeout(PATIENCE, entered.recv())
        .await
        .expect("a reconcile starts");
    assert_eq!(who.as_deref(), Some("inflight-a"));
    let mut b = Replica::spawn(
        &target,
        config(&lease, &target).drain_timeout(Duration::from_millis(500)),
        "inflight-b",
        &run,
        &probe,
    );
    support::wait_sees_leader(&mut b.state, "inflight-a", PATIENCE).await;

    // a shuts down with a reconcile in flight: for twice the lease duration
    // the Lease stays a's and b does not lead.
    a.token.cancel();
    let early = timeout(LEASE * 2, b.state.wait_for(LeaderState::is_leader))
        .await
        .is_ok();
    assert!(!early, "b led while a's reconcile was in flight");
    let holder = api
        .get(&lease)
        .await
        .expect("the election Lease")
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some("inflight-a"));

    probe.open();
    let handle = timeout(PATIENCE, a.task)
        .await
        .expect("a's controller drains")
        .expect("task");
    assert_eq!(
        handle.join().await.expect("shutdown"),
        ShutdownOutcome::Released
    );
    b.wait_leading("b leads after the release").await;
    assert_eq!(b.shutdown().await, ShutdownOutcome::Released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_timeout_bounds_a_reconcile_that_never_finishes() {
    let target = Target::new().await;
    let run = support::unique_name("stuck");
    let lease = format!("{run}-election");
    let slow = format!("{run}-slow");
    objects(&target, &run, std::slice::from_ref(&slow)).await;
    let (probe, mut entered) = Probe::new(&slow);

    let drain = Duration::from_millis(500);
    let mut a = Replica::spawn(
        &target,
        config(&lease, &target).drain_timeout(drain),
        "stuck-a",
        &run,
        &probe,
    );
    a.wait_leading("a leads").await;
    timeout(PATIENCE, entered.recv())
        .await
        .expect("a reconcile starts");
    let mut b = Replica::spawn(
        &target,
        config(&lease, &target).drain_timeout(drain),
        "stuck-b",
        &run,
        &probe,
    );
    support::wait_sees_leader(&mut b.state, "stuck-a", PATIENCE).await;

    a.token.cancel();
    // The reconcile never ends by itself, yet the Lease is released after the
    // drain timeout and b leads; a's controller, still stuck, is dropped.
    b.wait_leading("b leads after a's drain timeout").await;
    let handle = timeout(PATIENCE, a.task)
        .await
        .expect("a's stuck controller is dropped after the drain timeout")
        .expect("task");
    assert_eq!(
        handle.join().await.expect("shutdown"),
        ShutdownOutcome::Released
    );
    assert_eq!(
        probe.gate.available_permits(),
        0,
        "the gate never opened: the reconcile did not finish by itself"
    );
    assert_eq!(b.shutdown().await, ShutdownOutcome::Released);
}
