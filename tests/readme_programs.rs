//! The README's programs as real processes against the embedded server, as
//! a new user runs them: the Controller block hands over on SIGTERM within
//! one watch event; a preStop hook that names the new pod by its name hands
//! over to that pod's elector and knows it, and one that names nobody who
//! exists is told so; the sharding block reconciles every object whose shard
//! arrives after start-up. Each program (tests/readme/) holds its README
//! block's visible lines word for word, which the first tests check.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::watcher;
use kube_elector::shard::shard_for_key;
use kube_elector_testing::{LeaseApiServer, Verb};
use support::process::{PATIENCE, Process, holds_in_order, readme_block_visible_lines};

mod controller {
    include!("readme/controller.rs");
}
mod handover {
    include!("readme/handover.rs");
}
mod sharding {
    include!("readme/sharding.rs");
}

const README: &str = include_str!("../README.md");

// === The programs are the README's blocks ===

/// Whether `program` holds the visible lines of the README block under
/// `heading` (`ConfigMap` read as `Lease`), each part that starts at a line
/// beginning with one of `parts` word for word.
fn assert_holds_block(program: &str, file: &str, heading: &str, parts: &[&str]) {
    let block: Vec<String> = readme_block_visible_lines(README, heading)
        .into_iter()
        .map(|line| line.replace("ConfigMap", "Lease"))
        .collect();
    let mut starts: Vec<usize> = parts
        .iter()
        .map(|part| {
            block
                .iter()
                .position(|line| line.starts_with(part))
                .unwrap_or_else(|| panic!("the block under {heading:?} has no line {part:?}"))
        })
        .collect();
    starts.insert(0, 0);
    starts.push(block.len());
    for window in starts.windows(2) {
        let part = &block[window[0]..window[1]];
        assert!(
            holds_in_order(program, part),
            "{file} does not hold this part of the README's block under {heading:?}: {part:#?}"
        );
    }
}

#[test]
fn the_readme_controller_block_is_the_controller_program() {
    assert_holds_block(
        include_str!("readme/controller.rs"),
        "tests/readme/controller.rs",
        "## Running a Controller only while leading",
        &["async fn reconcile", "// Warm standby:"],
    );
}

#[test]
fn the_readme_sharding_block_is_the_sharding_program() {
    assert_holds_block(
        include_str!("readme/sharding.rs"),
        "tests/readme/sharding.rs",
        "### Sharded leadership: N shards over the replicas",
        &["async fn reconcile"],
    );
}

#[test]
fn the_readme_handover_call_is_the_hooks() {
    let block = readme_block_visible_lines(
        README,
        "### Handing over to a chosen successor, and coordinated election",
    );
    assert!(
        block.iter().any(|line| line
            == "handle.hand_over(Successor::Named(\"my-operator-7d9f\".into())).await?;"),
        "the README's handover block no longer names a pod: {block:#?}"
    );
}

// === The child processes (run by the tests below with --ignored) ===

#[test]
#[ignore = "the child process of the Controller test"]
fn controller_child() {
    controller::main().expect("the Controller program");
}

#[test]
#[ignore = "the child process of the handover test"]
fn handover_child() {
    handover::main().expect("the handover program");
}

#[test]
#[ignore = "the child process of the sharding test"]
fn sharding_child() {
    sharding::main().expect("the sharding program");
}

// === Helpers ===

/// A directory for one test's kubeconfigs, one per client identity (the
/// server counts requests per identity).
struct Kubeconfigs {
    dir: PathBuf,
}

impl Kubeconfigs {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(support::unique_name(test));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn for_client(&self, server: &LeaseApiServer, client: &str) -> PathBuf {
        let path = self.dir.join(client);
        server.write_kubeconfig(&path, client).unwrap();
        path
    }
}

async fn create_leases(server: &LeaseApiServer, names: impl IntoIterator<Item = String>) {
    let api: Api<Lease> = Api::namespaced(server.client(), "default");
    for name in names {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name),
                ..ObjectMeta::default()
            },
            ..Lease::default()
        };
        api.create(&PostParams::default(), &lease).await.unwrap();
    }
}

/// Every holder the Lease `name` had, in the order the server wrote them
/// (consecutive repeats folded; `""` is a release).
fn record_holders(server: &LeaseApiServer, name: &str) -> Arc<Mutex<Vec<String>>> {
    let holders = Arc::new(Mutex::new(Vec::<String>::new()));
    let api: Api<Lease> = Api::namespaced(server.client(), "default");
    let stream = watcher::watch_object(api, name);
    let sink = Arc::clone(&holders);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let Ok(Some(lease)) = event else { continue };
            let holder = lease
                .spec
                .and_then(|s| s.holder_identity)
                .unwrap_or_default();
            let mut holders = sink.lock().unwrap();
            if holders.last() != Some(&holder) {
                holders.push(holder);
            }
        }
    });
    holders
}

/// Whether `holders` goes from a holder of pod `from` to a release and then
/// straight to a holder of pod `to` (default identities: `<pod>_<suffix>`).
fn released_then_taken(holders: &[String], from: &str, to: &str) -> bool {
    holders.windows(3).any(|w| {
        w[0].starts_with(&format!("{from}_"))
            && w[1].is_empty()
            && w[2].starts_with(&format!("{to}_"))
    })
}

fn writes_of(server: &LeaseApiServer, client: &str) -> u64 {
    let counts = server.requests();
    [Verb::Create, Verb::Update, Verb::Patch, Verb::Delete]
        .into_iter()
        .map(|verb| counts.get(client, verb))
        .sum()
}

fn start(name: &str, child: &str, kubeconfig: &Path) -> Process {
    Process::start(name, child, kubeconfig, &[("POD_NAME", name)])
}

// === The tests ===

/// The README's Controller program (warm standby), two replicas: SIGTERM
/// to the leader ends its term, its reconciles drain, the Lease is released
/// (the server's record shows the release) and the other replica takes it
/// from that watch event, not after a lease, then reconciles with a larger
/// fencing token; the first exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_controller_hands_over_on_sigterm_within_a_watch_event() {
    let server = LeaseApiServer::start().await.unwrap();
    let configs = Kubeconfigs::new("readme-controller");
    create_leases(&server, ["work-1".to_owned()]).await;
    let holders = record_holders(&server, "readme-controller");
    let (first_config, second_config) = (
        configs.for_client(&server, "first"),
        configs.for_client(&server, "second"),
    );
    tokio::task::spawn_blocking(move || {
        let mut first = start("first", "controller_child", &first_config);
        first.wait_for("started leading");
        let first_token = token_of(&first.wait_for("reconciling object=work-1"));
        let mut second = start("second", "controller_child", &second_config);
        second.wait_for("campaigning for the Lease");
        first.sigterm();
        first.wait_for("released the Lease");
        first.wait_for("shut down: Released");
        second.wait_for("started leading");
        let second_token = token_of(&second.wait_for("reconciling object=work-1"));
        assert!(
            second_token > first_token,
            "the second replica reconciled with token {second_token}, not above the first's {first_token}"
        );
        assert_eq!(first.exit_code(), Some(0), "the first replica's exit code");
    })
    .await
    .unwrap();
    let holders = holders.lock().unwrap().clone();
    assert!(
        released_then_taken(&holders, "first", "second"),
        "the Lease did not go from the first replica through a release to the second: {holders:?}"
    );
}

/// Three pods' replicas with default identities (pod name and suffix). The
/// leader's preStop hook names `pod-c` by its pod name: pod-c's elector
/// takes the Lease from the release's watch event (the lease is longer
/// than the test waits), pod-b writes nothing, and the hook prints that
/// pod-c took over. Then pod-c's hook names a pod that does not exist: the
/// hook says who took over instead and the elector warns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_stop_hook_naming_a_pod_hands_over_to_it_and_knows() {
    let server = Arc::new(LeaseApiServer::start().await.unwrap());
    let configs = Kubeconfigs::new("readme-handover");
    let holders = record_holders(&server, "readme-handover");
    let paths: BTreeMap<&str, PathBuf> = ["pod-a", "pod-b", "pod-c"]
        .into_iter()
        .map(|pod| (pod, configs.for_client(&server, pod)))
        .collect();
    let server_ = Arc::clone(&server);
    tokio::task::spawn_blocking(move || {
        let server = server_;
        let mut a = start("pod-a", "handover_child", &paths["pod-a"]);
        a.wait_for("started leading");
        let mut b = start("pod-b", "handover_child", &paths["pod-b"]);
        let mut c = start("pod-c", "handover_child", &paths["pod-c"]);
        b.wait_for("campaigning for the Lease");
        c.wait_for("campaigning for the Lease");
        server.reset_counts();

        a.say("hand over to pod-c");
        a.wait_for("hook: hand_over(pod-c) returned Released");
        let line = a.wait_for("hook: pod-c");
        assert!(line.contains("hook: pod-c took over (pod-c_"), "{line}");
        c.wait_for("started leading");
        assert_eq!(
            writes_of(&server, "pod-b"),
            0,
            "pod-b wrote during the handover"
        );
        assert!(
            !b.lines().iter().any(|l| l.contains("started leading")),
            "pod-b led"
        );

        c.say("hand over to pod-z");
        let line = c.wait_for("hook: pod-z");
        assert!(
            line.contains("hook: pod-z did not take over: pod-"),
            "the hook was not told: {line}"
        );
        let warning = c.wait_for_seen("the handover named pod-z");
        assert!(warning.contains("WARN"), "not a warning: {warning}");

        for mut replica in [a, b, c] {
            replica.sigterm();
            assert_eq!(replica.exit_code(), Some(0), "a replica's exit code");
        }
    })
    .await
    .unwrap();
    let holders = holders.lock().unwrap().clone();
    assert!(
        released_then_taken(&holders, "pod-a", "pod-c"),
        "the Lease did not go from pod-a through a release to pod-c: {holders:?}"
    );
}

/// The README's sharding program: objects that exist before a replica
/// starts are skipped while it owns no shard, and reconciled when their
/// shard arrives; when a second replica joins, it reconciles every object
/// of each shard that moves to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_sharding_program_reconciles_objects_whose_shard_arrives_later() {
    const SHARDS: u32 = 32;
    let server = Arc::new(LeaseApiServer::start().await.unwrap());
    let configs = Kubeconfigs::new("readme-sharding");
    let objects: Vec<String> = (0..24).map(|i| format!("work-{i}")).collect();
    create_leases(&server, objects.clone()).await;
    let keys: BTreeSet<String> = objects.iter().map(|o| format!("default/{o}")).collect();
    let (a_config, b_config) = (
        configs.for_client(&server, "replica-a"),
        configs.for_client(&server, "replica-b"),
    );
    let server_ = Arc::clone(&server);
    let keys_ = keys.clone();
    tokio::task::spawn_blocking(move || {
        let (server, keys) = (server_, keys_);
        let mut a = start("replica-a", "sharding_child", &a_config);
        wait_reconciled(&mut a, &keys);

        let mut b = start("replica-b", "sharding_child", &b_config);
        // Wait until the shards are balanced: half of them replica-b's.
        let deadline = std::time::Instant::now() + PATIENCE;
        let owned_by_b = loop {
            let owned: BTreeSet<u32> = (0..SHARDS)
                .filter(|s| {
                    server
                        .holder("default", &format!("my-operator-{s}"))
                        .is_some_and(|h| h.starts_with("replica-b-"))
                })
                .collect();
            if owned.len() == (SHARDS / 2) as usize {
                break owned;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "replica-b owns {} shards, not {}, after {PATIENCE:?}; the holders: {:?}",
                owned.len(),
                SHARDS / 2,
                (0..SHARDS)
                    .map(|s| server.holder("default", &format!("my-operator-{s}")))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let b_keys: BTreeSet<String> = keys
            .iter()
            .filter(|k| owned_by_b.contains(&shard_for_key(k, SHARDS)))
            .cloned()
            .collect();
        assert!(!b_keys.is_empty(), "no object's shard moved: add objects");
        wait_reconciled(&mut b, &b_keys);
    })
    .await
    .unwrap();
}

/// The fencing token of a "reconciling" line (`token=N`).
fn token_of(line: &str) -> u64 {
    line.split("token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|token| token.parse().ok())
        .unwrap_or_else(|| panic!("no token in {line:?}"))
}

/// Waits until `replica` logged "reconciling" for every key of `keys`, for
/// at most [`PATIENCE`] (its other objects, the shard Leases among them,
/// keep it saying "reconciling").
fn wait_reconciled(replica: &mut Process, keys: &BTreeSet<String>) {
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut seen = BTreeSet::new();
    while !keys.is_subset(&seen) {
        assert!(
            std::time::Instant::now() < deadline,
            "not reconciled within {PATIENCE:?}: {:?}",
            keys.difference(&seen).collect::<Vec<_>>()
        );
        let line = replica.wait_for("reconciling");
        if let Some(key) = line.split("key=").nth(1) {
            seen.insert(key.trim().to_owned());
        }
    }
}
