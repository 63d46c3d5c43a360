//! kube-runtime Controllers gated by leadership through
//! `kube_elector::controller::LeaderController`, cold and warm standby,
//! against the embedded server, and the labels and owner references an
//! elector writes on its Lease.
//!
//! The controllers reconcile Leases labelled for the test's run (the
//! embedded server serves nothing else); the election Lease carries the
//! run's label too, and is kept out of the watch by a label of its own.
//! Each replica talks to the server through two clients: `<id>` for its
//! elector, `<id>-controller` for its Controller (watch, list, the
//! reconciles' writes), so that the server's request counters tell what
//! the Controller did.
//!
//! The watch's 410 relist is kept out: kube-runtime's watcher keeps one
//! watch open for 290 s (longer than any test here) and the embedded server
//! keeps 10,000 events of history, so a watch that reconnects resumes
//! without a list; a LIST counted for a controller is its first list.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use kube_elector::controller::{LeaderContext, LeaderController};
use kube_elector::{ElectorConfig, ElectorHandle, LeaderElector, LeaderState, ShutdownOutcome};
use kube_elector_testing::{FaultTarget, LeaseApiServer, Verb};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

const NAMESPACE: &str = "default";
const LEASE: Duration = Duration::from_secs(2);
const RENEW_DEADLINE: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_millis(250);
/// The longest any single wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(20);
const RUN_LABEL: &str = "test.kube-elector.io/run";
const ROLE_LABEL: &str = "test.kube-elector.io/role";
const MARK: &str = "test.kube-elector.io/reconciled-by";

/// One reconcile, as its replica saw it.
#[derive(Clone, Debug)]
struct Reconcile {
    replica: String,
    object: String,
    fencing_token: u64,
    /// Whether the term held when the reconcile began.
    leading: bool,
    started: Instant,
    /// When the reconcile returned or was dropped.
    ended: Option<Instant>,
}

/// What the tests share with every reconcile of every replica.
struct Probe {
    log: Mutex<Vec<Reconcile>>,
    /// Reconciles of this object by this replica block until the test adds
    /// permits.
    slow: Option<(String, String)>,
    gate: Semaphore,
    entered: mpsc::UnboundedSender<String>,
}

impl Probe {
    fn new(slow: Option<(&str, &str)>) -> (Arc<Self>, mpsc::UnboundedReceiver<String>) {
        let (entered, rx) = mpsc::unbounded_channel();
        let probe = Self {
            log: Mutex::new(Vec::new()),
            slow: slow.map(|(r, o)| (r.to_owned(), o.to_owned())),
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

    fn by(&self, replica: &str) -> Vec<Reconcile> {
        self.log()
            .into_iter()
            .filter(|r| r.replica == replica)
            .collect()
    }

    /// Whether `replica` has reconciled each of `names`.
    fn reconciled_all(&self, replica: &str, names: &[String]) -> bool {
        let done = self.by(replica);
        names.iter().all(|n| done.iter().any(|r| &r.object == n))
    }

    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

/// Records when a reconcile ends, also when its future is dropped.
struct Ended<'a>(&'a Probe, usize);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        let mut log = self.0.log.lock().unwrap_or_else(PoisonError::into_inner);
        log[self.1].ended = Some(Instant::now());
    }
}

/// A replica's context: its name, the probe, the API its writes go to.
struct Data {
    replica: String,
    probe: Arc<Probe>,
    api: Api<Lease>,
}

async fn reconcile(
    object: Arc<Lease>,
    ctx: Arc<LeaderContext<Data>>,
) -> Result<Action, kube::Error> {
    let probe = &ctx.probe;
    let name = object.name_any();
    let index = {
        let mut log = probe.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.push(Reconcile {
            replica: ctx.replica.clone(),
            object: name.clone(),
            fencing_token: ctx.fencing_token(),
            leading: ctx.leadership().is_leading(),
            started: Instant::now(),
            ended: None,
        });
        log.len() - 1
    };
    let _ended = Ended(probe, index);
    if probe.slow.as_ref() == Some(&(ctx.replica.clone(), name.clone())) {
        probe.entered.send(ctx.replica.clone()).ok();
        probe.gate.acquire().await.map(drop).ok();
    }
    // Mark the object with the term that reconciled it, when it differs:
    // the leader's write; a follower never gets here.
    let mark = format!("{}/{}", ctx.replica, ctx.fencing_token());
    if object.annotations().get(MARK) != Some(&mark) {
        let patch = serde_json::json!({ "metadata": { "annotations": { MARK: mark } } });
        ctx.api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(Action::await_change())
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime asks for
fn error_policy(_: Arc<Lease>, _: &kube::Error, _: Arc<Data>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Cold,
    Warm,
    /// Warm, one reconcile at a time (as a Controller with concurrency 1).
    WarmOneAtATime,
}

/// One replica: an elector, and a leader-gated Controller beside it.
struct Replica {
    name: String,
    handle: ElectorHandle,
    run: JoinHandle<()>,
}

impl Replica {
    fn spawn(
        server: &LeaseApiServer,
        mode: Mode,
        lease: &str,
        run: &str,
        name: &str,
        probe: &Arc<Probe>,
    ) -> Self {
        Self::spawn_with(server, mode, config(lease, run), run, name, probe)
    }

    fn spawn_with(
        server: &LeaseApiServer,
        mode: Mode,
        config: ElectorConfig,
        run: &str,
        name: &str,
        probe: &Arc<Probe>,
    ) -> Self {
        let handle = LeaderElector::new(server.client_for(name), config.identity(name))
            .expect("valid config")
            .spawn();
        let api: Api<Lease> =
            Api::namespaced(server.client_for(&format!("{name}-controller")), NAMESPACE);
        // The run's Leases, but not the election Lease (which has the run's
        // label too).
        let selector = format!("{RUN_LABEL}={run},{ROLE_LABEL}!=election");
        let data = Arc::new(Data {
            replica: name.to_owned(),
            probe: Arc::clone(probe),
            api: api.clone(),
        });
        let controller = match mode {
            Mode::Warm => LeaderController::warm(Controller::new(
                api,
                watcher::Config::default().labels(&selector),
            )),
            Mode::WarmOneAtATime => LeaderController::warm(
                Controller::new(api, watcher::Config::default().labels(&selector))
                    .with_config(kube::runtime::controller::Config::default().concurrency(1)),
            ),
            Mode::Cold => LeaderController::cold(move || {
                Controller::new(api.clone(), watcher::Config::default().labels(&selector))
            }),
        };
        let stream = controller.run(&handle, reconcile, error_policy, data);
        let run = tokio::spawn(stream.for_each(|_| async {}));
        Self {
            name: name.to_owned(),
            handle,
            run,
        }
    }

    async fn wait_leading(&self) {
        let mut state = self.handle.subscribe();
        timeout(PATIENCE, state.wait_for(LeaderState::is_leader))
            .await
            .unwrap_or_else(|_| panic!("not within {PATIENCE:?}: {} leads", self.name))
            .expect("the elector runs");
    }

    fn fencing_token(&self) -> u64 {
        self.handle.state().term.expect("leads").fencing_token()
    }

    /// Shuts the elector down; its controller ends once it has stopped.
    async fn shutdown(self) -> ShutdownOutcome {
        let outcome = timeout(PATIENCE, self.handle.shutdown())
            .await
            .expect("the elector shuts down within the patience")
            .expect("shutdown");
        timeout(PATIENCE, self.run)
            .await
            .expect("the controller ends once its elector has stopped")
            .expect("controller task");
        outcome
    }
}

fn config(lease: &str, run: &str) -> ElectorConfig {
    ElectorConfig::new(lease)
        .namespace(NAMESPACE)
        .lease_duration(LEASE)
        .renew_deadline(RENEW_DEADLINE)
        .retry_period(RETRY)
        .lease_label(RUN_LABEL, run)
        .lease_label(ROLE_LABEL, "election")
}

/// Creates `count` Leases labelled for `run`, and returns their names.
async fn objects(server: &LeaseApiServer, run: &str, count: usize) -> Vec<String> {
    let api: Api<Lease> = Api::namespaced(server.client_for("admin"), NAMESPACE);
    let mut names = Vec::new();
    for i in 0..count {
        let name = format!("{run}-object-{i}");
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
        names.push(name);
    }
    names
}

/// Changes every object, so that a controller reconciles each again.
async fn touch(server: &LeaseApiServer, names: &[String], mark: &str) {
    let api: Api<Lease> = Api::namespaced(server.client_for("admin"), NAMESPACE);
    for name in names {
        let patch = serde_json::json!({ "metadata": { "annotations": { "test.kube-elector.io/touch": mark } } });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("touch an object");
    }
}

fn writes(server: &LeaseApiServer, client: &str) -> u64 {
    let counts = server.requests();
    [Verb::Create, Verb::Update, Verb::Patch, Verb::Delete]
        .into_iter()
        .map(|verb| counts.get(client, verb))
        .sum()
}

async fn reconciled_all(probe: &Probe, replica: &str, names: &[String]) {
    support::eventually(
        &format!("{replica} reconciles every object"),
        PATIENCE,
        || probe.reconciled_all(replica, names),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_follower_keeps_its_store_but_calls_no_user_code_and_writes_nothing() {
    let server = LeaseApiServer::start().await.expect("server");
    let run = support::unique_name("warmfollow");
    let lease = format!("{run}-election");
    let names = objects(&server, &run, 3).await;
    let (probe, _entered) = Probe::new(None);

    let a = Replica::spawn(&server, Mode::Warm, &lease, &run, "wf-a", &probe);
    a.wait_leading().await;
    let b = Replica::spawn(&server, Mode::Warm, &lease, &run, "wf-b", &probe);
    reconciled_all(&probe, "wf-a", &names).await;
    // b is warm: it has listed and watches the objects.
    support::eventually("b's controller lists and watches", PATIENCE, || {
        let counts = server.requests();
        counts.get("wf-b-controller", Verb::List) >= 1
            && counts.get("wf-b-controller", Verb::Watch) >= 1
    })
    .await;
    touch(&server, &names, "1").await;
    support::eventually("a reconciles the changes", PATIENCE, || {
        probe.by("wf-a").len() >= 2 * names.len()
    })
    .await;

    assert!(
        probe.by("wf-b").is_empty(),
        "the follower ran user code: {:?}",
        probe.log()
    );
    assert_eq!(
        writes(&server, "wf-b-controller"),
        0,
        "the follower's controller wrote"
    );
    assert!(
        writes(&server, "wf-a-controller") >= 1,
        "the leader's reconciles wrote nothing"
    );
    assert!(
        probe.log().iter().all(|r| names.contains(&r.object)),
        "the election Lease was reconciled: {:?}",
        probe.log()
    );
    assert!(
        probe.log().iter().all(|r| r.leading),
        "a reconcile began outside its term"
    );

    assert_eq!(a.shutdown().await, ShutdownOutcome::Released);
    // b takes the released Lease before it shuts down in turn.
    b.wait_leading().await;
    assert_eq!(b.shutdown().await, ShutdownOutcome::Released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_takeover_reconciles_every_object_with_a_larger_token_and_lists_nothing() {
    let server = LeaseApiServer::start().await.expect("server");
    let run = support::unique_name("warmtake");
    let lease = format!("{run}-election");
    let names = objects(&server, &run, 5).await;
    let (probe, _entered) = Probe::new(None);

    let a = Replica::spawn(&server, Mode::Warm, &lease, &run, "wt-a", &probe);
    a.wait_leading().await;
    let a_token = a.fencing_token();
    let b = Replica::spawn(&server, Mode::Warm, &lease, &run, "wt-b", &probe);
    reconciled_all(&probe, "wt-a", &names).await;
    support::eventually("b's controller has listed and watches", PATIENCE, || {
        server.requests().get("wt-b-controller", Verb::Watch) >= 1
    })
    .await;
    let lists_before = server.requests().get("wt-b-controller", Verb::List);
    assert_eq!(
        lists_before, 1,
        "b's controller listed more than once before the takeover"
    );

    // a shuts down: b takes over and reconciles every object from its
    // warm store, with no list.
    assert_eq!(a.shutdown().await, ShutdownOutcome::Released);
    b.wait_leading().await;
    let b_token = b.fencing_token();
    reconciled_all(&probe, "wt-b", &names).await;
    assert_eq!(
        server.requests().get("wt-b-controller", Verb::List),
        lists_before,
        "b's controller listed between its election and its reconciles"
    );
    assert!(
        b_token > a_token,
        "b's token {b_token} is not larger than a's {a_token}"
    );
    for r in probe.by("wt-b") {
        assert_eq!(
            r.fencing_token, b_token,
            "b reconciled outside its term: {r:?}"
        );
        assert!(r.leading);
    }
    // Every reconcile of a ended before b's first began.
    let a_end = probe
        .by("wt-a")
        .iter()
        .filter_map(|r| r.ended)
        .max()
        .expect("a reconciled");
    let b_start = probe
        .by("wt-b")
        .iter()
        .map(|r| r.started)
        .min()
        .expect("b reconciled");
    assert!(a_end <= b_start, "a's reconciles overlapped b's");
    assert_eq!(b.shutdown().await, ShutdownOutcome::Released);
}

/// A warm follower remembers what changed while it followed (watch events
/// after its store's first read): its term reconciles those first, beside
/// the Controller's pass over the whole store, so that a few changed
/// objects do not wait behind every unchanged one. With the Controller one
/// reconcile at a time, each changed object's first reconcile in b's term
/// is among its first few, not spread over the whole store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_takeover_reconciles_what_changed_while_following_first() {
    const OBJECTS: usize = 150;
    const FIRST: usize = 15;
    let server = LeaseApiServer::start().await.expect("server");
    let run = support::unique_name("warmfirst");
    let lease = format!("{run}-election");
    let names = objects(&server, &run, OBJECTS).await;
    let (probe, _entered) = Probe::new(None);

    let a = Replica::spawn(&server, Mode::WarmOneAtATime, &lease, &run, "wf-a", &probe);
    a.wait_leading().await;
    // a's first reconciles write to every object: b starts after them, so
    // that they are not changes it sees while following.
    reconciled_all(&probe, "wf-a", &names).await;
    support::eventually("a wrote its mark on every object", PATIENCE, || {
        writes(&server, "wf-a-controller") >= OBJECTS as u64
    })
    .await;
    let b = Replica::spawn(&server, Mode::WarmOneAtATime, &lease, &run, "wf-b", &probe);
    support::eventually("b's controller has listed and watches", PATIENCE, || {
        server.requests().get("wf-b-controller", Verb::Watch) >= 1
    })
    .await;
    // Three objects change while b follows (a reconciles them), then a
    // hands over.
    let changed = [&names[OBJECTS - 1], &names[OBJECTS / 2], &names[7]].map(String::clone);
    touch(&server, &changed, "while-b-follows").await;
    support::eventually("a reconciles the changed objects", PATIENCE, || {
        probe.by("wf-a").len() >= OBJECTS + changed.len()
    })
    .await;
    assert_eq!(a.shutdown().await, ShutdownOutcome::Released);
    b.wait_leading().await;
    reconciled_all(&probe, "wf-b", &names).await;
    let order: Vec<String> = probe.by("wf-b").into_iter().map(|r| r.object).collect();
    for name in &changed {
        let at = order
            .iter()
            .position(|o| o == name)
            .expect("b reconciled the changed object");
        assert!(
            at < FIRST,
            "{name}, changed while b followed, was b's reconcile number {at} of {}, not among its first {FIRST}",
            order.len()
        );
    }
    assert_eq!(b.shutdown().await, ShutdownOutcome::Released);
}

/// The early lane and the pass over the whole store both reconcile an
/// object changed while following, but never at once: b's first reconcile
/// of it blocks (the probe's gate) until every other object has been
/// reconciled by the pass, which reached it too; b's reconciles of that
/// object still follow one another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_changed_while_following_is_never_reconciled_twice_at_once() {
    let server = LeaseApiServer::start().await.expect("server");
    let run = support::unique_name("warmonce");
    let lease = format!("{run}-election");
    let names = objects(&server, &run, 20).await;
    let changed = names[3].clone();
    let (probe, mut entered) = Probe::new(Some(("wo-b", &changed)));

    let a = Replica::spawn(&server, Mode::Warm, &lease, &run, "wo-a", &probe);
    a.wait_leading().await;
    reconciled_all(&probe, "wo-a", &names).await;
    support::eventually("a wrote its mark on every object", PATIENCE, || {
        writes(&server, "wo-a-controller") >= names.len() as u64
    })
    .await;
    let b = Replica::spawn(&server, Mode::Warm, &lease, &run, "wo-b", &probe);
    support::eventually("b's controller has listed and watches", PATIENCE, || {
        server.requests().get("wo-b-controller", Verb::Watch) >= 1
    })
    .await;
    touch(&server, std::slice::from_ref(&changed), "while-b-follows").await;
    support::eventually("a reconciles the changed object", PATIENCE, || {
        probe.by("wo-a").len() > names.len()
    })
    .await;
    assert_eq!(a.shutdown().await, ShutdownOutcome::Released);
    b.wait_leading().await;
    timeout(PATIENCE, entered.recv())
        .await
        .expect("b starts reconciling the changed object")
        .expect("probe");
    let others: Vec<String> = names.iter().filter(|n| **n != changed).cloned().collect();
    reconciled_all(&probe, "wo-b", &others).await;
    probe.open();
    support::eventually("b reconciles the changed object twice", PATIENCE, || {
        probe
            .by("wo-b")
            .iter()
            .filter(|r| r.object == changed && r.ended.is_some())
            .count()
            >= 2
    })
    .await;
    let mut runs: Vec<Reconcile> = probe
        .by("wo-b")
        .into_iter()
        .filter(|r| r.object == changed)
        .collect();
    runs.sort_by_key(|r| r.started);
    for pair in runs.windows(2) {
        let ended = pair[0].ended.expect("ended before the next began");
        assert!(
            ended <= pair[1].started,
            "two reconciles of {changed} by b at once: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(b.shutdown().await, ShutdownOutcome::Released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_takeover_lists_before_it_reconciles() {
    // The contrast to the warm takeover: the same counter does see a cold
    // leader's list, so the warm test's "no list" is not a blind counter.
    let server = LeaseApiServer::start().await.expect("server");
    let run = support::unique_name("coldtake");
    let lease = format!("{run}-election");
    let names = objects(&server, &run, 3).await;
    let (probe, _entered) = Probe::new(None);

    let a = Replica::spawn(&server, Mode::Cold, &lease, &run, "ct-a", &probe);
    a.wait_leading().await;
    let b = Replica::spawn(&server, Mode::Cold, &lease, &run, "ct-b", &probe);
    reconciled_all(&probe, "ct-a", &names).await;
    assert_eq!(
        server.requests().client("ct-b-controller"),
        0,
        "a cold follower sent requests for its controller"
    );
    assert_eq!(a.shutdown().await, ShutdownOutcome::Released);
    b.wait_leading().await;
    reconciled_all(&probe, "ct-b", &names).await;
    assert!(server.requests().get("ct-b-controller", Verb::List) >= 1);
    assert_eq!(b.shutdown().await, ShutdownOutcome::Released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_in_flight_hold_the_term_and_are_drained_before_the_release() {
    let server = LeaseApiServer::start().await.expect("server");
    let run = support::unique_name("warmdrain");
    let lease = format!("{run}-election");
    let names = objects(&server, &run, 2).await;
    let (probe, mut entered) = Probe::new(Some(("wd-a", &names[0])));

    let a = Replica::spawn_with(
        &server,
        Mode::Warm,
        config(&lease, &run).drain_timeout(PATIENCE),
        &run,
        "wd-a",
        &probe,
    );
    a.wait_leading().await;
    let who = timeout(PATIENCE, entered.recv())
        .await
        .expect("a's slow reconcile starts");
    assert_eq!(who.as_deref(), Some("wd-a"));
    let b = Replica::spawn(&server, Mode::Warm, &lease, &run, "wd-b", &probe);
    support::wait_sees_leader(&mut b.handle.subscribe(), "wd-a", PATIENCE).await;

    // a shuts down with a reconcile in flight: for twice the lease
    // duration the Lease stays a's and b does not lead.
    let shutdown = tokio::spawn(a.shutdown());
    let early = timeout(
        LEASE * 2,
        b.handle.subscribe().wait_for(LeaderState::is_leader),
    )
    .await
    .is_ok();
    assert!(!early, "b led while a's reconcile was in flight");
    assert_eq!(server.holder(NAMESPACE, &lease).as_deref(), Some("wd-a"));

    probe.open();
    let outcome = timeout(PATIENCE, shutdown)
        .await
        .expect("a drains")
        .expect("task");
    assert_eq!(outcome, ShutdownOutcome::Released);
    b.wait_leading().await;
    reconciled_all(&probe, "wd-b", &names).await;
    let a_end = probe
        .by("wd-a")
        .iter()
        .filter_map(|r| r.ended)
        .max()
        .expect("a reconciled");
    let b_start = probe
        .by("wd-b")
        .iter()
        .map(|r| r.started)
        .min()
        .expect("b reconciled");
    assert!(a_end <= b_start, "a's drained reconcile overlapped b's");
    assert_eq!(b.shutdown().await, ShutdownOutcome::Released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_partition_the_old_leaders_reconciles_end_at_its_deadline_before_the_new_leaders_begin()
 {
    let server = LeaseApiServer::start().await.expect("server");
    let run = support::unique_name("warmpart");
    let lease = format!("{run}-election");
    let names = objects(&server, &run, 3).await;
    // a's reconcile of the first object never returns by itself.
    let (probe, mut entered) = Probe::new(Some(("wp-a", &names[0])));

    // A long drain timeout: only the term's deadline can end a's reconcile.
    let a = Replica::spawn_with(
        &server,
        Mode::Warm,
        config(&lease, &run).drain_timeout(PATIENCE),
        &run,
        "wp-a",
        &probe,
    );
    a.wait_leading().await;
    timeout(PATIENCE, entered.recv())
        .await
        .expect("a's stuck reconcile starts");
    let b = Replica::spawn(&server, Mode::Warm, &lease, &run, "wp-b", &probe);
    support::wait_sees_leader(&mut b.handle.subscribe(), "wp-a", PATIENCE).await;

    // a's elector is cut off: its term ends at its renew deadline, and its
    // stuck reconcile with it; b takes over a lease duration later.
    server.partition(FaultTarget::Client("wp-a".into()));
    b.wait_leading().await;
    reconciled_all(&probe, "wp-b", &names).await;

    let stuck = probe
        .by("wp-a")
        .into_iter()
        .find(|r| r.object == names[0])
        .expect("a's stuck reconcile");
    let a_end = probe
        .by("wp-a")
        .iter()
        .map(|r| r.ended.expect("every reconcile of a has ended"))
        .max()
        .expect("a reconciled");
    let b_start = probe
        .by("wp-b")
        .iter()
        .map(|r| r.started)
        .min()
        .expect("b reconciled");
    assert!(stuck.ended.is_some(), "a's stuck reconcile was not dropped");
    assert!(
        a_end < b_start,
        "a's reconciles ran {:?} into b's",
        a_end.saturating_duration_since(b_start)
    );
    assert_eq!(
        probe.gate.available_permits(),
        0,
        "the stuck reconcile was let go by the test"
    );
    assert_eq!(b.shutdown().await, ShutdownOutcome::Released);
    server.heal(FaultTarget::Client("wp-a".into()));
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_mode_ends_cleanly_when_the_term_ends_before_the_first_list() {
    let server = LeaseApiServer::start().await.expect("server");
    let run = support::unique_name("coldnolist");
    let lease = format!("{run}-election");
    objects(&server, &run, 1).await;
    let (probe, _entered) = Probe::new(None);
    // The controller's first list never completes.
    server.hang(FaultTarget::Client("cn-a-controller".into()));

    let a = Replica::spawn(&server, Mode::Cold, &lease, &run, "cn-a", &probe);
    a.wait_leading().await;
    // The term ends before the list can complete: the controller, and so
    // the shutdown, still end.
    assert_eq!(a.shutdown().await, ShutdownOutcome::Released);
    assert!(probe.log().is_empty());
    server.release(FaultTarget::Client("cn-a-controller".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_controller_whose_first_list_never_completes_still_ends_with_its_elector() {
    let server = LeaseApiServer::start().await.expect("server");
    let run = support::unique_name("warmnolist");
    let lease = format!("{run}-election");
    objects(&server, &run, 1).await;
    let (probe, _entered) = Probe::new(None);
    server.hang(FaultTarget::Client("wn-a-controller".into()));

    let a = Replica::spawn(&server, Mode::Warm, &lease, &run, "wn-a", &probe);
    a.wait_leading().await;
    assert_eq!(a.shutdown().await, ShutdownOutcome::Released);
    assert!(probe.log().is_empty());
    server.release(FaultTarget::Client("wn-a-controller".into()));
}

/// Creates Lease `name` with someone else's labels (`other=kept`,
/// `zone=old`) and owner, and returns that owner.
async fn lease_with_someone_elses_metadata(admin: &Api<Lease>, name: &str) -> OwnerReference {
    let foreign = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "someone".into(),
        uid: "uid-someone".into(),
        ..OwnerReference::default()
    };
    admin
        .create(
            &PostParams::default(),
            &Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    labels: Some(BTreeMap::from([
                        ("other".to_owned(), "kept".to_owned()),
                        ("zone".to_owned(), "old".to_owned()),
                    ])),
                    owner_references: Some(vec![foreign.clone()]),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec::default()),
            },
        )
        .await
        .expect("create the Lease");
    foreign
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acquire_writes_the_lease_labels_and_owner_references_and_a_renew_keeps_them() {
    let server = LeaseApiServer::start().await.expect("server");
    let lease = support::unique_name("labelled");
    let admin: Api<Lease> = Api::namespaced(server.client_for("admin"), NAMESPACE);
    let foreign = lease_with_someone_elses_metadata(&admin, &lease).await;
    let owner = OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "operator".into(),
        uid: "uid-operator".into(),
        ..OwnerReference::default()
    };
    let labelled = |zone: &str| {
        ElectorConfig::new(&lease)
            .namespace(NAMESPACE)
            .lease_duration(LEASE)
            .renew_deadline(RENEW_DEADLINE)
            .retry_period(RETRY)
            .lease_labels([("zone", zone), ("app", "operator")])
            .owner_reference(owner.clone())
    };
    let read = || async {
        let lease = admin.get(&lease).await.expect("the Lease");
        (
            lease.labels().clone(),
            lease.owner_references().to_vec(),
            lease.resource_version(),
        )
    };

    let a = LeaderElector::new(server.client_for("lab-a"), labelled("a").identity("lab-a"))
        .expect("valid")
        .spawn();
    a.became_leader().await.map(drop).expect("a leads");
    let (labels, owners, version) = read().await;
    let expected = |zone: &str| {
        BTreeMap::from([
            ("app".to_owned(), "operator".to_owned()),
            ("other".to_owned(), "kept".to_owned()),
            ("zone".to_owned(), zone.to_owned()),
        ])
    };
    assert_eq!(labels, expected("a"), "the acquire's labels");
    assert_eq!(
        owners,
        vec![foreign.clone(), owner.clone()],
        "the acquire's owners"
    );
    // A renew (a new resourceVersion, same holder) keeps them.
    // Nothing else writes on this server: a newer version is a's renew.
    let acquired: u64 = version.as_deref().unwrap_or("0").parse().expect("a number");
    support::eventually("a renews", PATIENCE, || {
        server.resource_version() > acquired
    })
    .await;
    let (labels, owners, renewed) = read().await;
    assert_eq!(server.holder(NAMESPACE, &lease).as_deref(), Some("lab-a"));
    assert_ne!(renewed, version, "no renew happened");
    assert_eq!(labels, expected("a"), "a renew dropped labels");
    assert_eq!(
        owners,
        vec![foreign.clone(), owner.clone()],
        "a renew changed the owners"
    );

    // The next holder writes its own zone.
    let b = LeaderElector::new(server.client_for("lab-b"), labelled("b").identity("lab-b"))
        .expect("valid")
        .spawn();
    assert_eq!(
        a.shutdown().await.expect("shutdown"),
        ShutdownOutcome::Released
    );
    timeout(PATIENCE, b.became_leader())
        .await
        .expect("b leads in time")
        .map(drop)
        .expect("b leads");
    let (labels, owners, _) = read().await;
    assert_eq!(labels, expected("b"), "b's acquire");
    assert_eq!(owners, vec![foreign, owner]);
    assert_eq!(
        b.shutdown().await.expect("shutdown"),
        ShutdownOutcome::Released
    );
}
