//! The watch-trust rules on every watch of a `LeaseHub`: an `ERROR` event
//! of the namespace watch is a failure its members and taps hear of at
//! once, and a namespace watch that goes silent while a Lease it serves is
//! held is distrusted after about one renew interval. Hub members then
//! read their Leases, and a sharded membership lists its member Leases, so
//! a joiner gets its share while the namespace watch is broken. Embedded
//! server only (they inject watch faults).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use kube_elector::{
    ElectorConfig, ElectorHandle,
    hub::LeaseHub,
    shard::{Assignment, ShardConfig, ShardedElector, ShardedHandle},
};
use kube_elector_testing::{FaultTarget, LeaseApiServer, Verb};
use tokio::time::Instant;

use support::broken_watch::{BrokenWatch, follower_with_a_broken_watch};

const PATIENCE: Duration = Duration::from_secs(30);

fn client(id: &str) -> FaultTarget {
    FaultTarget::Client(id.into())
}

// === Hub members ===

/// Lease 10 s, renew deadline 8 s, retry 2 s: the follower's expiry timer
/// is five renews away.
const RETRY: Duration = Duration::from_secs(2);

fn config(name: &str, who: &str) -> ElectorConfig {
    support::short_config(name, who)
        .lease_duration(Duration::from_secs(10))
        .renew_deadline(Duration::from_secs(8))
        .retry_period(RETRY)
}

/// A leader and a follower, each through a hub of its own client.
async fn hub_follower_with_a_broken_watch(
    name: &str,
    break_watch: impl FnOnce(&LeaseApiServer),
) -> BrokenWatch {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name(name);
    let elector = |who: &str| -> ElectorHandle {
        LeaseHub::new(server.client_for(who))
            .elector(config(&name, who))
            .expect("valid config")
            .spawn()
    };
    let (a, b) = (elector("a"), elector("b"));
    let broken = follower_with_a_broken_watch(&server, &name, a, &b, break_watch).await;
    b.shutdown().await.unwrap();
    assert!(
        broken.taken_after_release < RETRY * 2,
        "the follower took the release {:?} after it (retry period {RETRY:?})",
        broken.taken_after_release
    );
    broken
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_member_distrusts_a_silent_namespace_watch_after_about_one_renew_interval() {
    let broken = hub_follower_with_a_broken_watch("hub-silent", |server| {
        server.black_hole_watch(client("b"), true);
    })
    .await;
    assert!(
        broken.renews_before_first_read <= 1,
        "the member first read its Lease after {} more renews of the leader",
        broken.renews_before_first_read
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_member_reads_at_once_when_the_namespace_watch_errors() {
    let broken = hub_follower_with_a_broken_watch("hub-erroring", |server| {
        server.fail_watch(client("b"), true);
    })
    .await;
    assert_eq!(
        broken.renews_before_first_read, 0,
        "the member first read its Lease after {} more renews of the leader",
        broken.renews_before_first_read
    );
}

// === Observers ===

/// `a` leads; an observer (client `"b"`) follows, on its own watch or
/// through a hub; its watch breaks. Returns the renews of `a` before the
/// observer's first read, after checking that it still sees the next
/// leader (`c`, whose watch works) once `a` releases.
async fn an_observer_with_a_broken_watch(
    in_hub: bool,
    break_watch: impl FnOnce(&LeaseApiServer),
) -> u64 {
    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("observer");
    let elector = |who: &str| -> ElectorHandle {
        kube_elector::LeaderElector::new(server.client_for(who), config(&name, who))
            .expect("valid config")
            .spawn()
    };
    let a = elector("a");
    drop(
        tokio::time::timeout(PATIENCE, a.became_leader())
            .await
            .expect("a leads in time")
            .expect("it leads"),
    );
    let observer = if in_hub {
        LeaseHub::new(server.client_for("b")).observer(support::observer_of(
            &name,
            Duration::from_secs(8),
            RETRY,
        ))
    } else {
        kube_elector::observer::LeaderObserver::new(
            server.client_for("b"),
            support::observer_of(&name, Duration::from_secs(8), RETRY),
        )
    }
    .expect("valid config")
    .spawn();
    support::wait_sees_leader(&mut observer.subscribe(), "a", PATIENCE).await;
    let renews = support::broken_watch::renews_before_first_read(&server, &name, break_watch).await;
    a.shutdown().await.unwrap();
    let c = elector("c");
    support::wait_sees_leader(&mut observer.subscribe(), "c", PATIENCE).await;
    c.shutdown().await.unwrap();
    observer.shutdown().await.unwrap();
    renews
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_distrusts_a_silent_watch_after_about_one_renew_interval() {
    for in_hub in [false, true] {
        let renews = an_observer_with_a_broken_watch(in_hub, |server| {
            server.black_hole_watch(client("b"), true);
        })
        .await;
        assert!(
            renews <= 1,
            "the observer (in a hub: {in_hub}) first read the Lease after {renews} more renews"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_reads_at_once_when_its_watch_errors() {
    for in_hub in [false, true] {
        let renews = an_observer_with_a_broken_watch(in_hub, |server| {
            server.fail_watch(client("b"), true);
        })
        .await;
        assert_eq!(
            renews, 0,
            "the observer (in a hub: {in_hub}) first read the Lease after {renews} more renews"
        );
    }
}

/// The other two watch faults: a watch that lags steadily, and a server
/// restart whose resumed watches get 410 Gone. The observer still sees
/// the next leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_sees_the_next_leader_while_its_watch_lags_and_across_a_restart() {
    type Fault = fn(&LeaseApiServer);
    let faults: [(&str, Fault); 2] = [
        ("a lag", |server| {
            server.delay_watch(client("b"), Duration::from_millis(800));
        }),
        ("a restart", LeaseApiServer::restart),
    ];
    for (what, fault) in faults {
        let server = LeaseApiServer::start().await.unwrap();
        let name = support::unique_name("observer");
        let elector = |who: &str| -> ElectorHandle {
            kube_elector::LeaderElector::new(server.client_for(who), config(&name, who))
                .expect("valid config")
                .spawn()
        };
        let a = elector("a");
        drop(
            tokio::time::timeout(PATIENCE, a.became_leader())
                .await
                .expect("a leads in time")
                .expect("it leads"),
        );
        let observer = kube_elector::observer::LeaderObserver::new(
            server.client_for("b"),
            support::observer_of(&name, Duration::from_secs(8), RETRY),
        )
        .expect("valid config")
        .spawn();
        support::wait_sees_leader(&mut observer.subscribe(), "a", PATIENCE).await;
        fault(&server);
        a.shutdown().await.unwrap();
        let c = elector("c");
        tokio::time::timeout(
            PATIENCE,
            observer
                .subscribe()
                .wait_for(|s| s.leader.as_deref() == Some("c")),
        )
        .await
        .unwrap_or_else(|_| panic!("after {what}, the observer never saw c lead"))
        .expect("the observer runs");
        c.shutdown().await.unwrap();
        observer.shutdown().await.unwrap();
    }
}

// === Shard membership ===

const SHARDS: u32 = 6;

fn shard_config(prefix: &str, identity: &str) -> ShardConfig {
    ShardConfig::new(
        ElectorConfig::new(prefix)
            .namespace("default")
            .identity(identity)
            .lease_duration(Duration::from_secs(4))
            .renew_deadline(Duration::from_secs(3))
            .retry_period(Duration::from_millis(500))
            .drain_timeout(Duration::from_secs(1)),
        SHARDS,
    )
}

fn replica(server: &LeaseApiServer, prefix: &str, identity: &str) -> ShardedHandle {
    let hub = LeaseHub::new(server.client_for(identity));
    ShardedElector::in_hub(&hub, shard_config(prefix, identity))
        .expect("a valid configuration")
        .spawn()
}

/// Whether every replica sees `replicas` as the members and owns exactly
/// its share of their assignment.
fn balanced(replicas: &[&ShardedHandle]) -> bool {
    let members: Vec<&str> = replicas.iter().map(|r| r.identity()).collect();
    let assignment = Assignment::compute(SHARDS, &members);
    replicas.iter().all(|r| {
        let mine: BTreeSet<u32> = assignment.shards_of(r.identity()).collect();
        r.assignment() == assignment && r.owned().shards().collect::<BTreeSet<_>>() == mine
    })
}

/// `x` owns every shard; its namespace watch breaks; `y` joins. A silent
/// or erroring watch tells `x` nothing of `y`: `x` learns of it only by
/// listing the member Leases (`listed`), so the two balance only if `x`
/// stops trusting its broken watch.
async fn a_joiner_gets_its_share_while_the_namespace_watch_is_broken(
    listed: bool,
    break_watch: impl FnOnce(&LeaseApiServer),
) {
    let server = LeaseApiServer::start().await.unwrap();
    let prefix = support::unique_name("joiner");
    let x = replica(&server, &prefix, "x");
    support::eventually("x owns every shard alone", PATIENCE, || balanced(&[&x])).await;
    break_watch(&server);
    let lists = server.requests().get("x", Verb::List);
    let y = replica(&server, &prefix, "y");
    support::eventually(
        "x hands y its share while x's namespace watch is broken",
        PATIENCE,
        || balanced(&[&x, &y]),
    )
    .await;
    assert!(
        !listed || server.requests().get("x", Verb::List) > lists,
        "x learnt of y by listing the member Leases"
    );
    server.clear_faults();
    y.shutdown().await.unwrap();
    x.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_gets_its_share_while_the_namespace_watch_is_silent() {
    a_joiner_gets_its_share_while_the_namespace_watch_is_broken(true, |server| {
        server.black_hole_watch(client("x"), true);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_gets_its_share_while_the_namespace_watch_errors() {
    a_joiner_gets_its_share_while_the_namespace_watch_is_broken(true, |server| {
        server.fail_watch(client("x"), true);
    })
    .await;
}

/// A watch that lags steadily (here by a whole retry period and more)
/// still delivers the joiner's member Lease, late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_gets_its_share_while_the_namespace_watch_lags() {
    a_joiner_gets_its_share_while_the_namespace_watch_is_broken(false, |server| {
        server.delay_watch(client("x"), Duration::from_millis(800));
    })
    .await;
}

/// A restart (as after a crash of kube-apiserver) ends every open watch,
/// and a resume from a version served before it gets 410 Gone: `x` lists
/// again and sees the joiner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_gets_its_share_across_a_server_restart_and_410() {
    a_joiner_gets_its_share_while_the_namespace_watch_is_broken(true, LeaseApiServer::restart)
        .await;
}

// === What trusting sooner costs ===

/// Figures, not a bound on time: a follower's reads per minute at the
/// default timings (lease 15 s, renew deadline 10 s, retry 2 s), with a
/// healthy watch and with one that lags steadily. The property asserted: the earlier distrust never
/// costs more reads than polling every retry period would.
/// `cargo test --test watch_trust -- --ignored --nocapture` prints them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a one-minute measurement per row; run for BENCHMARKS.md"]
#[allow(clippy::cast_precision_loss)] // counts of requests, far below 2^52
async fn a_lagging_watch_costs_the_follower_no_more_reads_than_polling() {
    const WINDOW: Duration = Duration::from_secs(60);
    const DEFAULT_RETRY: Duration = Duration::from_secs(2);
    let lags = [
        Duration::ZERO,
        Duration::from_millis(500),
        Duration::from_millis(1500),
    ];
    for lag in lags {
        let server = LeaseApiServer::start().await.unwrap();
        let name = support::unique_name("lagging");
        let default = |who: &str| ElectorConfig::new(&name).namespace("default").identity(who);
        let a = kube_elector::LeaderElector::new(server.client_for("a"), default("a"))
            .expect("valid config")
            .spawn();
        drop(
            tokio::time::timeout(PATIENCE, a.became_leader())
                .await
                .expect("a leads in time")
                .expect("it leads"),
        );
        let b = kube_elector::LeaderElector::new(server.client_for("b"), default("b"))
            .expect("valid config")
            .spawn();
        support::wait_sees_leader(&mut b.subscribe(), "a", PATIENCE).await;
        server.delay_watch(client("b"), lag);
        let gets = server.requests().get("b", Verb::Get);
        let renews = server.requests().get("a", Verb::Update);
        let start = Instant::now();
        tokio::time::sleep(WINDOW).await;
        let window = start.elapsed();
        let gets = server.requests().get("b", Verb::Get) - gets;
        let renews = server.requests().get("a", Verb::Update) - renews;
        let periods = window.as_secs_f64() / DEFAULT_RETRY.as_secs_f64();
        eprintln!(
            "watch lag {lag:?}: the follower sent {gets} GETs in {window:.1?} ({:.1} a minute); \
             the leader renewed {renews} times",
            gets as f64 * 60.0 / window.as_secs_f64()
        );
        assert!(
            (gets as f64) <= periods,
            "{gets} reads in {periods:.0} retry periods"
        );
        b.shutdown().await.unwrap();
        a.shutdown().await.unwrap();
    }
}
