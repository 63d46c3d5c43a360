//! The child of `kube-elector run` runs only inside its replica's terms:
//! the children's own timestamps, checked against the Lease's history as
//! the server recorded it (every version, through a watch of the test's
//! own), under a partition of the leader, hung requests of the leader, and
//! a SIGKILL of the leader's process group.

mod support;

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{WatchEvent, WatchParams};
use kube_elector_testing::{FaultTarget, LeaseApiServer};
use support::{ChildRun, PATIENCE, Replica, child_runs, heartbeat_command, scratch, unique_name};

/// Not a test: the child process of the tests (run with `--ignored`).
#[test]
#[ignore = "the child process of the tests"]
fn heartbeat_child() {
    let file = std::env::var_os("HEARTBEAT_FILE").expect("HEARTBEAT_FILE");
    support::heartbeat(std::path::Path::new(&file));
}

/// A term as the Lease recorded it: who took it, and the `acquireTime` it
/// wrote (its own wall clock when it sent the write, so before the write
/// landed and before its child could start).
#[derive(Clone, Debug)]
struct Acquired {
    holder: String,
    at: i64,
}

/// Every version of the Lease, in order, through a watch.
fn record_history(
    server: &LeaseApiServer,
    lease: &str,
) -> (Arc<Mutex<Vec<Acquired>>>, tokio::task::JoinHandle<()>) {
    let api: kube::Api<Lease> = kube::Api::namespaced(server.client_for("historian"), "default");
    let history = Arc::new(Mutex::new(Vec::<Acquired>::new()));
    let out = Arc::clone(&history);
    let params = WatchParams::default().fields(&format!("metadata.name={lease}"));
    let task = tokio::spawn(async move {
        let mut version = "0".to_owned();
        let mut last: Option<(String, i32)> = None;
        loop {
            let Ok(stream) = api.watch(&params, &version).await else {
                // A retry's back-off, not a synchronisation.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(event)) = stream.next().await {
                let (WatchEvent::Added(lease) | WatchEvent::Modified(lease)) = event else {
                    continue;
                };
                version = lease.metadata.resource_version.clone().unwrap_or_default();
                let spec = lease.spec.unwrap_or_default();
                let holder = spec.holder_identity.unwrap_or_default();
                let transitions = spec.lease_transitions.unwrap_or_default();
                let key = (holder.clone(), transitions);
                if holder.is_empty() || last.as_ref() == Some(&key) {
                    last = Some(key);
                    continue;
                }
                last = Some(key);
                let at = spec
                    .acquire_time
                    .map(|t| t.0.as_microsecond())
                    .expect("an acquisition writes acquireTime");
                out.lock().unwrap().push(Acquired { holder, at });
            }
        }
    });
    (history, task)
}

/// Each run of `who`'s child lies inside one of `who`'s terms: it started
/// after `who` acquired the Lease, and its last timestamp comes before the
/// next acquisition by anyone else.
fn assert_runs_inside_terms(who: &str, runs: &[ChildRun], history: &[Acquired]) {
    for run in runs {
        let term = history
            .iter()
            .enumerate()
            .rfind(|(_, a)| a.holder == who && a.at <= run.first)
            .unwrap_or_else(|| {
                panic!(
                    "{who}'s child started at {} outside any term of {who}: {history:?}",
                    run.first
                )
            });
        if let Some(next) = history[term.0 + 1..].iter().find(|a| a.holder != who) {
            assert!(
                run.last < next.at,
                "{who}'s child ran until {} but {} acquired the Lease at {} ({} µs of overlap): {history:?}",
                run.last,
                next.holder,
                next.at,
                run.last - next.at
            );
        }
    }
}

async fn wait_holder(server: &LeaseApiServer, lease: &str, not: Option<&str>) -> String {
    server
        .wait_for_holder("default", lease, not, PATIENCE)
        .await
        .expect("a holder within the patience")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_runs_only_inside_its_terms_under_a_partition_hung_requests_and_a_killed_leader()
{
    let server = LeaseApiServer::start().await.unwrap();
    let dir = scratch("fencing");
    let lease = unique_name("fencing");
    let (history, historian) = record_history(&server, &lease);
    let files = [dir.join("a.beats"), dir.join("b.beats")];
    let args = |file| {
        let mut args: Vec<String> = [
            "run",
            "--lease",
            &lease,
            "--namespace",
            "default",
            "--lease-duration",
            "2s",
            "--renew-deadline",
            "1500ms",
            "--retry-period",
            "250ms",
            "--grace-period",
            "500ms",
            "--",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(heartbeat_command(file));
        args
    };
    let start = |name: &str, file| {
        let args = args(file);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Replica::start(&server, &dir, name, &args)
    };

    let mut replicas = vec![start("a", &files[0]), start("b", &files[1])];
    let by_name = |name: &str| usize::from(name == "b");

    // 1. A partition cuts the leader off: its child is stopped before the
    //    other replica may take the Lease.
    let first = wait_holder(&server, &lease, None).await;
    tokio::task::block_in_place(|| replicas[by_name(&first)].wait_for("started the child"));
    server.partition(FaultTarget::Client(first.clone()));
    let second = wait_holder(&server, &lease, Some(&first)).await;
    tokio::task::block_in_place(|| {
        replicas[by_name(&first)].wait_for("the child was stopped as the term ran out");
        replicas[by_name(&second)].wait_for("started the child");
    });
    server.heal(FaultTarget::Client(first.clone()));

    // 2. The new leader's requests hang: the same, the other way round.
    server.hang(FaultTarget::Client(second.clone()));
    let third = wait_holder(&server, &lease, Some(&second)).await;
    assert_eq!(third, first);
    tokio::task::block_in_place(|| {
        replicas[by_name(&second)].wait_for("the child was stopped as the term ran out");
        replicas[by_name(&third)].wait_for("started the child");
    });
    server.release(FaultTarget::Client(second.clone()));

    // 3. The leader's process group is killed (its child dies of the
    //    parent-death signal); the other takes over at expiry.
    tokio::task::block_in_place(|| replicas[by_name(&third)].kill_group());
    let fourth = wait_holder(&server, &lease, Some(&third)).await;
    tokio::task::block_in_place(|| replicas[by_name(&fourth)].wait_for("started the child"));
    let survivor = replicas.swap_remove(by_name(&fourth));
    survivor.signal("TERM");
    let (status, _) = tokio::task::block_in_place(|| survivor.finish());
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "the heartbeat child dies of SIGTERM"
    );
    drop(replicas);
    historian.abort();

    let history = history.lock().unwrap().clone();
    assert!(history.len() >= 4, "four terms at least: {history:?}");
    let runs = [child_runs(&files[0]), child_runs(&files[1])];
    for (who, runs) in ["a", "b"].iter().zip(&runs) {
        assert!(!runs.is_empty(), "{who}'s child ran");
        assert_runs_inside_terms(who, runs, &history);
    }
    // And directly: no instant at which both children ran.
    for x in &runs[0] {
        for y in &runs[1] {
            assert!(
                x.last < y.first || y.last < x.first,
                "the children overlapped: a {x:?}, b {y:?}"
            );
        }
    }
}
