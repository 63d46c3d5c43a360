//! Attacks on mutual exclusion, one test per way to two leaders that an
//! adversary found: outside writers, odd clocks, shared identities, lost
//! and late answers, silent watches, blocked runtimes, absurd configs. Each
//! names the property it protects. Embedded server only (they inject faults).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube_elector::{
    ElectorConfig, ElectorHandle, LeaderElector, ShutdownOutcome,
    clock::WallClock,
    hub::LeaseHub,
    lock::{LeaseLock, LeaseLockParams},
};
use kube_elector_testing::{FaultTarget, LeaseApiServer, Verb};
use tokio::time::{Instant, timeout};

use support::client_faults::ClientFaults;
use support::recorder::Recorder;

const LEASE: Duration = Duration::from_secs(2);
const RENEW_DEADLINE: Duration = Duration::from_secs(1);
const PATIENCE: Duration = Duration::from_secs(20);

fn config(lease: &str, identity: &str) -> ElectorConfig {
    support::short_config(lease, identity)
}

fn slow_config(lease: &str, identity: &str) -> ElectorConfig {
    // The attacks on outside writers: lease 4 s, renew deadline 3 s, retry 2 s.
    config(lease, identity)
        .lease_duration(Duration::from_secs(4))
        .renew_deadline(Duration::from_secs(3))
        .retry_period(Duration::from_secs(2))
}

fn spawn(server: &LeaseApiServer, config: ElectorConfig, client: &str) -> ElectorHandle {
    LeaderElector::new(server.client_for(client), config)
        .expect("valid config")
        .spawn()
}

fn client(id: &str) -> FaultTarget {
    FaultTarget::Client(id.into())
}

fn leases(server: &LeaseApiServer) -> Api<Lease> {
    Api::namespaced(server.client_for("outsider"), "default")
}

async fn leads(handle: &ElectorHandle, who: &str) -> kube_elector::Leadership {
    timeout(PATIENCE, handle.became_leader())
        .await
        .unwrap_or_else(|_| panic!("{who} did not lead within {PATIENCE:?}"))
        .unwrap_or_else(|e| panic!("{who}: {e}"))
}

/// Waits until the Lease's resourceVersion moves past `after` (a renew).
async fn next_version(api: &Api<Lease>, name: &str, after: &str) -> Lease {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(lease) = api.get(name).await
            && lease.metadata.resource_version.as_deref() != Some(after)
        {
            return lease;
        }
        assert!(Instant::now() < deadline, "the Lease was never renewed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes `edit` into the Lease as an outside writer would (kubectl edit):
/// a conditional PUT, read again after a conflict.
async fn outside_edit(api: &Api<Lease>, name: &str, edit: impl Fn(&mut LeaseSpec)) {
    for _ in 0..20 {
        let mut lease = api.get(name).await.expect("read the Lease");
        edit(lease.spec.get_or_insert_with(LeaseSpec::default));
        if api
            .replace(name, &PostParams::default(), &lease)
            .await
            .is_ok()
        {
            return;
        }
    }
    panic!("the outside edit kept conflicting");
}

/// Watches for `window` (a soak, not a synchronisation) and fails on overlap.
async fn no_overlap_for(recorder: &Recorder, window: Duration) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
        recorder.assert_no_overlap();
    }
}

/// A wall clock that never moves.
#[derive(Debug)]
struct FrozenClock(Timestamp);

impl WallClock for FrozenClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

// === 1. Outside writers ===

/// `a` leads and `b` follows (lease 4 s, renew deadline 3 s, retry 2 s),
/// both recorded.
async fn leader_and_follower(
    server: &LeaseApiServer,
    name: &str,
) -> (Recorder, ElectorHandle, ElectorHandle) {
    let recorder = Recorder::default();
    let a = spawn(server, slow_config(name, "a"), "a");
    recorder.watch(&a);
    drop(leads(&a, "a").await);
    let b = spawn(server, slow_config(name, "b"), "b");
    recorder.watch(&b);
    support::wait_sees_leader(&mut b.subscribe(), "a", PATIENCE).await;
    (recorder, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_never_counts_on_more_than_the_duration_the_lease_records() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("shortened");
    let api = leases(&server);
    let (recorder, a, b) = leader_and_follower(&server, &name).await;
    // The leader hears of the edit 600 ms late; the follower at once.
    server.delay_watch(client("a"), Duration::from_millis(600));
    let before = api.get(&name).await.unwrap();
    let renewed = next_version(
        &api,
        &name,
        before.metadata.resource_version.as_deref().unwrap(),
    )
    .await;
    drop(renewed);
    outside_edit(&api, &name, |spec| spec.lease_duration_seconds = Some(1)).await;
    no_overlap_for(&recorder, Duration::from_secs(5)).await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    recorder.assert_no_overlap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_clear_of_the_holder_overlaps_at_most_the_leaders_watch_lag() {
    // A documented limit: a follower takes a free Lease at once (that is
    // what makes handovers fast), so an outside writer that clears the
    // holder makes two leaders until the leader hears of it.
    let lag = Duration::from_millis(600);
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("cleared");
    let api = leases(&server);
    let (recorder, a, b) = leader_and_follower(&server, &name).await;
    server.delay_watch(client("a"), lag);
    outside_edit(&api, &name, |spec| {
        spec.holder_identity = Some(String::new());
    })
    .await;
    let term = recorder.term_of("b", false).await;
    let a_term = recorder.term_of("a", true).await;
    let overlap = Recorder::overlap_between(&a_term, &term);
    // The bound measured: the injected lag, plus room for scheduling.
    let bound = lag + Duration::from_millis(250);
    eprintln!("overlap after an outside clear with a {lag:?} watch lag: {overlap:?}");
    assert!(
        overlap <= bound,
        "overlap {overlap:?} exceeds the watch lag bound {bound:?}"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

// === 2. Clocks ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_wall_clock_still_renews_a_record_followers_observe() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("frozen");
    let recorder = Recorder::default();
    let frozen = Arc::new(FrozenClock(Timestamp::now()));
    let a = spawn(&server, config(&name, "a").clock(frozen), "a");
    recorder.watch(&a);
    drop(leads(&a, "a").await);
    let b = spawn(&server, config(&name, "b"), "b");
    recorder.watch(&b);
    support::wait_sees_leader(&mut b.subscribe(), "a", PATIENCE).await;
    no_overlap_for(&recorder, LEASE * 2).await;
    assert!(a.is_leader(), "the frozen-clock leader lost its Lease");
    assert!(!b.is_leader());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    recorder.assert_no_overlap();
}

// === 3. Shared identities ===

/// An old instance of `pod-0` leads and is partitioned; a new instance with
/// the same identity (`new_config`) starts and leads; the old one heals.
async fn twins(
    server: &LeaseApiServer,
    name: &str,
    new_config: ElectorConfig,
) -> (Recorder, ElectorHandle, ElectorHandle) {
    let recorder = Recorder::default();
    let old = spawn(server, config(name, "pod-0"), "pod-0-old");
    recorder.watch(&old);
    drop(leads(&old, "old").await);
    server.partition(client("pod-0-old"));
    // The replacement pod starts with the same name while the old one runs.
    let new = spawn(server, new_config, "pod-0-new");
    recorder.watch(&new);
    drop(leads(&new, "new").await);
    server.heal(client("pod-0-old"));
    (recorder, old, new)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_with_one_identity_never_lead_at_once() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("twins");
    let (recorder, old, new) = twins(&server, &name, config(&name, "pod-0")).await;
    no_overlap_for(&recorder, LEASE * 2).await;
    assert!(
        new.is_leader() && !old.is_leader(),
        "after the heal: new {}, old {}",
        new.is_leader(),
        old.is_leader()
    );
    old.shutdown().await.unwrap();
    new.shutdown().await.unwrap();
    recorder.assert_no_overlap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopting_a_twins_lease_overlaps_at_most_until_the_old_instances_deadline() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("adopt");
    let adopting = config(&name, "pod-0").adopt_own_lease(true);
    let (recorder, old, new) = twins(&server, &name, adopting).await;
    tokio::time::sleep(LEASE * 2).await;
    assert!(new.is_leader() && !old.is_leader());
    let terms = recorder.intervals();
    assert_eq!(
        terms.len(),
        2,
        "the old instance led again after the heal: {terms:#?}"
    );
    let overlap = Recorder::overlap_between(&terms[0], &terms[1]);
    eprintln!("overlap while adopting a twin's Lease: {overlap:?}");
    assert!(
        overlap <= RENEW_DEADLINE,
        "overlap {overlap:?} outlasted the old instance's renew deadline"
    );
    old.shutdown().await.unwrap();
    new.shutdown().await.unwrap();
}

// === 4. Drains ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_is_protected_only_while_renews_succeed() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("drain-partition");
    let a = Arc::new(spawn(
        &server,
        config(&name, "a").drain_timeout(Duration::from_secs(10)),
        "a",
    ));
    let work_ended = Arc::new(Mutex::new(None::<Instant>));
    let worker = {
        let (a, ended) = (Arc::clone(&a), Arc::clone(&work_ended));
        tokio::spawn(async move {
            a.run_while_leading(|leadership| {
                let ended = Arc::clone(&ended);
                async move {
                    let _record = RecordEnd(ended);
                    leadership.lost().await;
                    // Work that needs 4 s more after its term ended.
                    tokio::time::sleep(Duration::from_secs(4)).await;
                }
            })
            .await;
        })
    };
    timeout(
        PATIENCE,
        a.subscribe().wait_for(kube_elector::LeaderState::is_leader),
    )
    .await
    .unwrap()
    .unwrap();
    let b = spawn(&server, config(&name, "b"), "b");
    support::wait_sees_leader(&mut b.subscribe(), "a", PATIENCE).await;
    server.partition(client("a"));
    // Shut down while partitioned: the drain cannot renew.
    a.cancellation_token().cancel();
    let b_leads = leads(&b, "b").await;
    let b_started = b_leads.started_at();
    let ended = timeout(PATIENCE, async {
        loop {
            if let Some(at) = *work_ended.lock().unwrap() {
                return at;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the leader work ended");
    assert!(
        ended <= b_started,
        "leader work ran {:?} past the moment the next leader started",
        ended - b_started
    );
    drop(b_leads);
    server.heal(client("a"));
    worker.abort();
    b.shutdown().await.unwrap();
}

struct RecordEnd(Arc<Mutex<Option<Instant>>>);

impl Drop for RecordEnd {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }
}

/// Replicas whose settings differ (a rollout that changed them, or one
/// replica configured by hand): lease 2 s / 4 s / 6 s with renew deadlines
/// and retry periods to match. A follower counts the duration the holder
/// recorded, not its own, and a leader never counts on more than that: the
/// leader is partitioned again and again, and no two ever lead at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_different_durations_never_lead_at_once() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("mixed-settings");
    let recorder = Recorder::default();
    let mut handles = Vec::new();
    for (who, lease, deadline, retry) in [
        ("short", 2_000, 1_000, 250),
        ("mid", 4_000, 3_000, 1_000),
        ("long", 6_000, 4_000, 1_500),
    ] {
        let config = config(&name, who)
            .lease_duration(Duration::from_millis(lease))
            .renew_deadline(Duration::from_millis(deadline))
            .retry_period(Duration::from_millis(retry));
        let handle = spawn(&server, config, who);
        recorder.watch(&handle);
        handles.push((who, handle));
    }
    let mut leaders = Vec::new();
    for round in 0..4 {
        let deadline = Instant::now() + PATIENCE;
        assert!(
            recorder.wait_leading(deadline).await,
            "round {round}: nobody leads"
        );
        let (who, handle) = handles
            .iter()
            .find(|(who, _)| recorder.is_leading(who))
            .expect("a term is open");
        leaders.push(*who);
        // Partitioned until another leads (after the duration it
        // recorded, whatever their own), then healed.
        server.partition(client(who));
        timeout(PATIENCE, handle.subscribe().wait_for(|s| s.term.is_none()))
            .await
            .unwrap_or_else(|_| panic!("round {round}: {who} still leads, partitioned"))
            .expect("the elector runs");
        for (other, handle) in handles.iter().filter(|(other, _)| other != who) {
            let moved =
                |s: &kube_elector::LeaderState| s.leader.as_deref().is_some_and(|l| l != *who);
            timeout(PATIENCE, handle.subscribe().wait_for(moved))
                .await
                .unwrap_or_else(|_| panic!("round {round}: {other} never saw a new leader"))
                .expect("the elector runs");
        }
        server.heal(client(who));
    }
    for (_, handle) in handles {
        handle.shutdown().await.unwrap();
    }
    recorder.assert_no_overlap();
    assert!(
        leaders.windows(2).any(|w| w[0] != w[1]),
        "leadership never moved: {leaders:?}"
    );
}

// === 5. The polled lock ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_lease_lock_acts_only_within_its_validity() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("polled");
    let ttl = Duration::from_secs(2);
    // 0.45 × TTL of latency on one lock's every request.
    server.set_latency(client("slow"), ttl.mul_f64(0.45));
    let beliefs = Arc::new(Mutex::new(Vec::<(String, Instant, Instant)>::new()));
    let mut pollers = Vec::new();
    for who in ["slow", "fast"] {
        let lock = LeaseLock::new(
            server.client_for(who),
            "default",
            LeaseLockParams {
                holder_id: who.into(),
                lease_name: name.clone(),
                lease_ttl: ttl,
            },
        );
        let beliefs = Arc::clone(&beliefs);
        pollers.push(tokio::spawn(async move {
            let end = Instant::now() + Duration::from_secs(8);
            let mut last: Option<(Instant, Instant)> = None;
            while Instant::now() < end {
                let result = lock.try_acquire_or_renew().await;
                let now = Instant::now();
                // As documented: leader while `is_leading()`, which ends at
                // `valid_until` unless the next result extends it.
                if let Some((from, until)) = last.take() {
                    beliefs
                        .lock()
                        .unwrap()
                        .push((who.into(), from, until.min(now)));
                }
                if let Ok(result) = result
                    && result.is_leading()
                {
                    last = Some((now, result.valid_until.unwrap()));
                }
                tokio::time::sleep(ttl / 4).await;
            }
            if let Some((from, until)) = last {
                beliefs
                    .lock()
                    .unwrap()
                    .push((who.into(), from, until.min(Instant::now())));
            }
        }));
    }
    for poller in pollers {
        poller.await.unwrap();
    }
    let beliefs = beliefs.lock().unwrap().clone();
    for (who, from, until) in &beliefs {
        for (other, f2, u2) in &beliefs {
            assert!(
                !(who != other && from < u2 && f2 < until),
                "{who} and {other} both acted as leader: {:?} of overlap",
                (*until).min(*u2) - (*from).max(*f2)
            );
        }
    }
    assert!(!beliefs.is_empty(), "nobody ever led");
}

// === 6. A blocked runtime ===

/// How the blocked leader of `blocked_leader` was made.
#[derive(Clone, Copy, Debug)]
enum Blocked {
    /// A plain elector, leading.
    Plain,
    /// An elector of a `LeaseHub`, leading.
    Hub,
    /// A declared candidate of coordinated election (the gate on, no
    /// controller: it runs the plain election beside its `LeaseCandidate`).
    Coordinated,
}

/// `a` leads in a runtime of its own; once `b` sees it lead, the leader
/// work blocks that runtime for three lease durations. `b` takes over, and
/// `a`'s guard must say it no longer leads, while its task cannot run.
async fn blocked_leader(how: Blocked) {
    let server = LeaseApiServer::builder()
        .coordinated_leader_election(matches!(how, Blocked::Coordinated))
        .start()
        .await
        .unwrap();
    let name = support::unique_name("blocked");
    let kube_config = server.kube_config_for("a");
    let (guard_tx, guard_rx) = tokio::sync::oneshot::channel();
    let (block_tx, block_rx) = tokio::sync::oneshot::channel::<()>();
    let lease = name.clone();
    let blocked = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let client = kube::Client::try_from(kube_config).unwrap();
            let elector = match how {
                Blocked::Hub => LeaseHub::new(client).elector(config(&lease, "a")),
                Blocked::Plain => LeaderElector::new(client, config(&lease, "a")),
                Blocked::Coordinated => {
                    LeaderElector::new(client, config(&lease, "a").coordinated("1.34.0", "1.34.0"))
                }
            };
            let a = elector.unwrap().spawn();
            let guard = a.became_leader().await.unwrap();
            guard_tx.send(guard).unwrap();
            block_rx.await.unwrap();
            // Leader work that blocks the runtime for three lease durations.
            std::thread::sleep(LEASE * 3);
            drop(a);
        });
    });
    let guard = timeout(PATIENCE, guard_rx).await.unwrap().unwrap();
    assert!(guard.is_leading());
    let b = spawn(&server, config(&name, "b"), "b");
    support::wait_sees_leader(&mut b.subscribe(), "a", PATIENCE).await;
    block_tx.send(()).unwrap();
    let b_leads = leads(&b, "b").await;
    assert!(
        !guard.is_leading(),
        "{how:?}: the blocked leader's guard still says it leads while b leads"
    );
    drop(b_leads);
    tokio::task::spawn_blocking(move || blocked.join().unwrap())
        .await
        .unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_answers_from_its_own_deadline_while_its_runtime_is_blocked() {
    blocked_leader(Blocked::Plain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_electors_guard_answers_from_its_own_deadline_while_its_runtime_is_blocked() {
    blocked_leader(Blocked::Hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinated_candidates_guard_answers_from_its_own_deadline_while_its_runtime_is_blocked()
{
    blocked_leader(Blocked::Coordinated).await;
}

// === 8. Fencing tokens ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_grow_across_a_deleted_and_recreated_lease() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("fence-delete");
    let api = leases(&server);
    let a = spawn(&server, config(&name, "a"), "a");
    let first = leads(&a, "a").await.fencing_token();
    a.shutdown().await.unwrap();
    // Someone else holds it for a while, then the Lease is deleted.
    let b = spawn(&server, config(&name, "b"), "b");
    let second = leads(&b, "b").await.fencing_token();
    b.shutdown().await.unwrap();
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    // A replica that never saw the old Lease creates it anew.
    let c = spawn(&server, config(&name, "c"), "c");
    let third = leads(&c, "c").await.fencing_token();
    c.shutdown().await.unwrap();
    assert!(
        first < second && second < third,
        "tokens {first}, {second}, {third}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_never_repeat_at_the_largest_transition_count() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("fence-max");
    let api = leases(&server);
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(String::new()),
            lease_transitions: Some(i32::MAX),
            ..LeaseSpec::default()
        }),
    };
    api.create(&PostParams::default(), &lease).await.unwrap();
    let mut tokens = Vec::new();
    for who in ["a", "b", "c"] {
        let e = spawn(&server, config(&name, who), who);
        tokens.push(leads(&e, who).await.fencing_token());
        assert_eq!(e.shutdown().await.unwrap(), ShutdownOutcome::Released);
    }
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "tokens {tokens:?}");
}

// === 9. Cancelled writes ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_during_a_create_releases_the_lease_it_may_have_written() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("cancel-create");
    let api = leases(&server);
    server.delay_write_answers(client("a"), Duration::from_secs(3));
    let a = spawn(&server, config(&name, "a"), "a");
    // The create landed; its answer is on its way.
    support::eventually("the create landed", PATIENCE, || {
        server.requests().get("a", Verb::Create) > 0
    })
    .await;
    let landed = timeout(PATIENCE, async {
        loop {
            if let Ok(Some(lease)) = api.get_opt(&name).await {
                return lease;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(landed.spec.unwrap().holder_identity.as_deref(), Some("a"));
    server.delay_write_answers(client("a"), Duration::ZERO);
    assert_eq!(a.shutdown().await.unwrap(), ShutdownOutcome::Released);
    let after = api.get(&name).await.unwrap().spec.unwrap();
    assert_eq!(
        after.holder_identity.as_deref(),
        Some(""),
        "the departed elector still holds the Lease"
    );
}

/// A release that fails once (a 500, a dropped connection) is tried again:
/// without it the followers wait out a lease duration. Found looking for
/// a real-server handover that took a lease duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_fails_once_is_tried_again() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("release-retry");
    let a = spawn(&server, config(&name, "a"), "a");
    drop(leads(&a, "a").await);
    // The next update of a's is its release: the term has just begun, so
    // its first renew is a retry period away, and the shutdown comes first.
    let updates = server.requests().get("a", Verb::Update);
    server.fail_next(client("a"), Verb::Update, 1);
    assert_eq!(a.shutdown().await.unwrap(), ShutdownOutcome::Released);
    let after = leases(&server).get(&name).await.unwrap().spec.unwrap();
    assert_eq!(after.holder_identity.as_deref(), Some(""), "not released");
    assert_eq!(
        server.requests().get("a", Verb::Update) - updates,
        2,
        "one failed release and one that landed"
    );
}

// === 10. Silent and erroring watches ===

/// Lease 10 s, renew deadline 8 s, retry 2 s: the follower's expiry timer
/// is five renews away, so only the watch-trust rules make it read sooner.
const WATCHED_RETRY: Duration = Duration::from_secs(2);

fn watched_config(name: &str, who: &str) -> ElectorConfig {
    config(name, who)
        .lease_duration(Duration::from_secs(10))
        .renew_deadline(Duration::from_secs(8))
        .retry_period(WATCHED_RETRY)
}

async fn a_follower_with_a_broken_watch(
    name: &str,
    break_watch: impl FnOnce(&LeaseApiServer),
) -> support::broken_watch::BrokenWatch {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name(name);
    let a = spawn(&server, watched_config(&name, "a"), "a");
    let b = spawn(&server, watched_config(&name, "b"), "b");
    let broken =
        support::broken_watch::follower_with_a_broken_watch(&server, &name, a, &b, break_watch)
            .await;
    b.shutdown().await.unwrap();
    // Once it reads, it polls every retry period: the release is found by
    // the next poll (the bound is twice that, for a loaded machine).
    assert!(
        broken.taken_after_release < WATCHED_RETRY * 2,
        "the follower took the release {:?} after it (retry period {WATCHED_RETRY:?})",
        broken.taken_after_release
    );
    broken
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_distrusts_a_silent_watch_after_about_one_renew_interval() {
    let broken = a_follower_with_a_broken_watch("silent-watch", |server| {
        server.black_hole_watch(client("b"), true);
    })
    .await;
    // Silence is distrusted 1.2 retry periods after the last event: after
    // the leader's first renew since the break, before its second.
    assert!(
        broken.renews_before_first_read <= 1,
        "the follower first read the Lease after {} more renews of the leader",
        broken.renews_before_first_read
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_reads_at_once_when_its_watch_errors() {
    let broken = a_follower_with_a_broken_watch("erroring-watch", |server| {
        server.fail_watch(client("b"), true);
    })
    .await;
    assert_eq!(
        broken.renews_before_first_read, 0,
        "the follower first read the Lease after {} more renews of the leader",
        broken.renews_before_first_read
    );
}

// === 11. Hung requests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hung_request_does_not_cost_the_term() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("hung-once");
    let faults = ClientFaults::default();
    let client = faults.client(server.kube_config_for("a"));
    let recorder = Recorder::default();
    let a = LeaderElector::new(client, config(&name, "a"))
        .unwrap()
        .spawn();
    recorder.watch(&a);
    drop(leads(&a, "a").await);
    faults.hang_next_puts(1);
    support::eventually("a renew hung", PATIENCE, || faults.hung() == 1).await;
    tokio::time::sleep(RENEW_DEADLINE * 3).await;
    let terms = recorder.intervals();
    assert!(
        terms.len() == 1 && terms[0].end.is_none(),
        "one hung renew ended the term: {terms:#?}"
    );
    a.shutdown().await.unwrap();
}

// === 12. Guards on every path ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_work_is_cancelled_when_the_elector_dies_with_its_runtime() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("dropped-runtime");
    let kube_config = server.kube_config_for("a");
    let guard = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let guard = runtime.block_on(async move {
            let client = kube::Client::try_from(kube_config).unwrap();
            let a = LeaderElector::new(client, config(&name, "a"))
                .unwrap()
                .spawn();
            let guard = a.became_leader().await.unwrap();
            std::mem::forget(a); // the handle never shuts it down
            guard
        });
        drop(runtime);
        guard
    })
    .join()
    .unwrap();
    assert!(
        guard.token().is_cancelled(),
        "the elector's runtime is gone but its term's token is not cancelled"
    );
    assert!(!guard.is_leading());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_join_future_shuts_the_elector_down() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("dropped-join");
    let api = leases(&server);
    let a = spawn(&server, config(&name, "a"), "a");
    drop(leads(&a, "a").await);
    assert!(timeout(Duration::from_millis(200), a.join()).await.is_err());
    support::eventually("the elector released the Lease", PATIENCE, || {
        server.requests().get("a", Verb::Update) > 0
    })
    .await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let holder = api.get(&name).await.unwrap().spec.unwrap().holder_identity;
        if holder.as_deref() == Some("") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the elector runs on detached (holder {holder:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// === 13–15. Absurd configs ===

#[test]
fn absurd_durations_are_refused_without_a_panic() {
    let result = ElectorConfig::new("x")
        .retry_period(Duration::MAX)
        .validate();
    assert!(result.is_err());
    let result = ElectorConfig::new("x")
        .renew_deadline(Duration::MAX)
        .validate();
    assert!(result.is_err());
    let result = ElectorConfig::new("x")
        .lease_duration(Duration::MAX)
        .validate();
    assert!(result.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_tolerances_and_drain_timeouts_neither_panic_nor_skip_the_release() {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("absurd");
    let a = spawn(
        &server,
        config(&name, "a").drain_timeout(Duration::MAX),
        "a",
    );
    let health = a.health_check(Duration::MAX);
    let guard = leads(&a, "a").await;
    assert_eq!(health.check(), Ok(()));
    drop(guard);
    assert_eq!(a.shutdown().await.unwrap(), ShutdownOutcome::Released);
}

/// Any configuration that validates runs without a panic: the loop campaigns,
/// leads or follows, and shuts down with an outcome (not a task error).
#[test]
fn validated_configs_never_panic_the_loop() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(LeaseApiServer::start()).unwrap();
    let strategy = (1u64..=3, 0u32..=100, 1u32..=100, 0u64..=3000, any::<bool>());
    let mut runner = TestRunner::new(Config {
        cases: 8,
        ..Config::default()
    });
    runner
        .run(
            &strategy,
            |(lease_s, renew_pct, retry_pct, drain_ms, release)| {
                let lease = Duration::from_secs(lease_s);
                let renew = lease.mul_f64(f64::from(renew_pct) / 100.0);
                let retry = renew.mul_f64(f64::from(retry_pct) / 100.0);
                let config = config(&support::unique_name("any-config"), "any")
                    .lease_duration(lease)
                    .renew_deadline(renew)
                    .retry_period(retry)
                    .drain_timeout(Duration::from_millis(drain_ms))
                    .release_on_cancel(release);
                if config.validate().is_err() {
                    return Ok(());
                }
                runtime.block_on(async {
                    let handle = LeaderElector::new(server.client_for("any"), config)
                        .unwrap()
                        .spawn();
                    let _ = timeout(lease * 2, handle.became_leader()).await;
                    let outcome = timeout(PATIENCE, handle.shutdown()).await;
                    prop_assert!(
                        matches!(outcome, Ok(Ok(_))),
                        "shutdown ended with {outcome:?}"
                    );
                    Ok(())
                })
            },
        )
        .unwrap();
}
