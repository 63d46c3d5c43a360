//! `kube-elector serve --label-pod` on a real kube-apiserver: replicas run
//! as processes of the real binary, each with `POD_NAME` naming a Pod
//! created through the API (no kubelet: the Pods stay Pending, and labels
//! need none). Leadership is handed over several times, by SIGTERM (the
//! leader releases) and by SIGKILL (its Lease expires and its label stays
//! until the successor removes it), while a sampler lists the labelled
//! Pods over and over: at every sample at most one Pod carries the label,
//! and after every handover the label is on the new leader's Pod.
//!
//! Needs `KUBE_ELECTOR_TEST_KUBECONFIG` (a real server) and the binary
//! (`KUBE_ELECTOR_CLI`, else `target/debug/kube-elector`), as
//! `scripts/e2e-real.sh` provides them; says SKIPPED and why without them.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

const LEADER_LABEL: &str = "kube-elector.io/leader";
const NAMESPACE: &str = "default";
const REPLICAS: usize = 3;
const PATIENCE: Duration = Duration::from_secs(30);

/// The `kube-elector` binary: `KUBE_ELECTOR_CLI`, else the workspace's
/// debug build.
fn binary() -> Option<PathBuf> {
    std::env::var_os("KUBE_ELECTOR_CLI")
        .map(PathBuf::from)
        .or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
                PathBuf::from,
            );
            Some(target.join("debug/kube-elector"))
        })
        .filter(|p| p.exists())
}

/// One replica: a `kube-elector serve --label-pod` process for one Pod.
struct Replica {
    pod: String,
    child: Option<Child>,
    /// The port it serves on.
    port: u16,
}

impl Replica {
    /// Starts the process and waits until it answers `GET /` (a signal
    /// sent before it handles signals would kill it).
    async fn spawn(&mut self, binary: &PathBuf, kubeconfig: &str, lease: &str) {
        // A free port, given back at once: nothing else here binds ports.
        self.port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let listen = format!("127.0.0.1:{}", self.port);
        let child = Command::new(binary)
            .args([
                "serve",
                "--label-pod",
                "--lease",
                lease,
                "--identity",
                &self.pod,
                "--listen",
                &listen,
                "--lease-duration",
                "2s",
                "--renew-deadline",
                "1s",
                "--retry-period",
                "250ms",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", &self.pod)
            .env("POD_NAMESPACE", NAMESPACE)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start kube-elector serve");
        self.child = Some(child);
        // An answer to `GET /`, not just a connection: the kernel accepts
        // one as soon as the socket is bound, before `serve` installs its
        // SIGTERM handler (a SIGTERM then killed a replica, exit 143, in 1
        // of 4 runs). Its runtime has one thread, where the main task
        // installs the handler before the spawned server first answers.
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(body) = get_root(&listen).await {
                let root: serde_json::Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("GET / of {}: not JSON ({e}): {body}", self.pod));
                assert_eq!(
                    root["identity"],
                    self.pod.as_str(),
                    "GET / names the replica"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} answers GET / on {listen} within {PATIENCE:?}",
                self.pod
            );
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, and its exit (status 0) within the patience.
    async fn terminate(&mut self) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().expect("a pid").to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid}");
        let status = timeout(PATIENCE, child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} exits within {PATIENCE:?} of SIGTERM", self.pod))
            .expect("wait");
        assert!(
            status.success(),
            "{}: exit status 0 after SIGTERM, got {status}",
            self.pod
        );
    }

    /// SIGKILL: a crash; nothing of it runs after.
    async fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.start_kill().expect("SIGKILL");
        child.wait().await.expect("wait");
    }
}

/// The body of a 200 answer to `GET /` at `addr`, if there was one.
async fn get_root(addr: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut answer = String::new();
    timeout(Duration::from_secs(5), stream.read_to_string(&mut answer))
        .await
        .ok()?
        .ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// What the sampler saw: how many samples, and every one with two
/// labelled Pods or more.
#[derive(Default)]
struct Samples {
    count: usize,
    violations: Vec<Vec<String>>,
    /// The labelled Pods of the latest sample.
    latest: Vec<String>,
    /// Every Pod that carried the label at some sample.
    ever: std::collections::BTreeSet<String>,
}

/// Lists the labelled Pods among `ours` until `stop`, one consistent read
/// each time, into `samples`.
async fn sample(
    pods: Api<Pod>,
    samples: Arc<Mutex<Samples>>,
    stop: Arc<AtomicBool>,
    ours: Vec<String>,
) {
    let params = ListParams::default().labels(&format!("{LEADER_LABEL}=true"));
    while !stop.load(Ordering::Relaxed) {
        let listed = pods
            .list_metadata(&params)
            .await
            .expect("list the labelled Pods");
        let labelled: Vec<String> = listed
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .filter(|n| ours.contains(n))
            .collect();
        let mut s = samples.lock().unwrap();
        s.count += 1;
        s.ever.extend(labelled.iter().cloned());
        if labelled.len() > 1 {
            s.violations.push(labelled.clone());
        }
        s.latest = labelled;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver and the kube-elector binary: scripts/e2e-real.sh runs it"]
#[allow(clippy::too_many_lines)] // Pods, replicas, four handovers, the verdict: read top to bottom
async fn the_leader_label_follows_leadership_and_is_on_at_most_one_pod_at_every_sample() {
    let kubeconfig = std::env::var(support::KUBECONFIG_ENV)
        .ok()
        .filter(|p| !p.is_empty());
    let (Some(kubeconfig), Some(binary)) = (kubeconfig, binary()) else {
        support::skipped(&format!(
            "needs a real server ({}) and the kube-elector binary (KUBE_ELECTOR_CLI, or \
             target/debug/kube-elector from `cargo build -p kube-elector-cli`); \
             scripts/e2e-real.sh provides both",
            support::KUBECONFIG_ENV
        ));
        return;
    };
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig).expect("read the kubeconfig"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("load the kubeconfig");
    let client = kube::Client::try_from(config).expect("client");
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let leases: Api<Lease> = Api::namespaced(client, NAMESPACE);

    let lease = support::unique_name("label");
    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|i| Replica {
            pod: format!("{lease}-{i}"),
            child: None,
            port: 0,
        })
        .collect();
    for r in &replicas {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": r.pod },
            "spec": { "containers": [{ "name": "app", "image": "registry.k8s.io/pause:3.10" }] },
        }))
        .expect("a Pod");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create the Pod (no kubelet: it stays Pending)");
    }
    let ours: Vec<String> = replicas.iter().map(|r| r.pod.clone()).collect();

    let samples = Arc::new(Mutex::new(Samples::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let sampling = tokio::spawn(sample(pods.clone(), samples.clone(), stop.clone(), ours));

    for r in &mut replicas {
        r.spawn(&binary, &kubeconfig, &lease).await;
    }

    // The holder the Lease records, once the label is on its Pod alone
    // (identities are the Pods' names) and a sample taken after `since`
    // says so.
    let settled = |not: Option<String>, since: usize| {
        let (leases, samples, lease) = (leases.clone(), samples.clone(), lease.clone());
        async move {
            let deadline = Instant::now() + PATIENCE;
            loop {
                let holder = leases
                    .get_opt(&lease)
                    .await
                    .expect("read the Lease")
                    .and_then(|l| l.spec?.holder_identity)
                    .filter(|h| !h.is_empty());
                let (latest, count) = {
                    let s = samples.lock().unwrap();
                    (s.latest.clone(), s.count)
                };
                if let Some(holder) = holder
                    && Some(&holder) != not.as_ref()
                    && count > since
                    && latest == [holder.clone()]
                {
                    return holder;
                }
                assert!(
                    Instant::now() < deadline,
                    "within {PATIENCE:?}, a leader other than {not:?} whose Pod alone carries \
                     the label (latest sample: {latest:?})"
                );
                sleep(Duration::from_millis(20)).await;
            }
        }
    };

    let mut leader = settled(None, 0).await;
    for (round, crash) in [false, true, false, true].into_iter().enumerate() {
        let i = replicas.iter().position(|r| r.pod == leader).expect("ours");
        if crash {
            replicas[i].kill().await;
        } else {
            replicas[i].terminate().await;
        }
        let since = samples.lock().unwrap().count;
        let next = settled(Some(leader.clone()), since).await;
        eprintln!(
            "round {round}: {} of {leader}, the label moved to {next}",
            if crash { "SIGKILL" } else { "SIGTERM" }
        );
        // The old replica comes back (a restarted container), as a follower.
        replicas[i].spawn(&binary, &kubeconfig, &lease).await;
        leader = next;
    }

    for r in &mut replicas {
        r.terminate().await;
    }
    stop.store(true, Ordering::Relaxed);
    timeout(PATIENCE, sampling)
        .await
        .expect("the sampler stops")
        .expect("the sampler did not panic");
    for r in &replicas {
        let _ = pods.delete(&r.pod, &DeleteParams::default()).await;
    }
    let _ = leases.delete(&lease, &DeleteParams::default()).await;

    let s = samples.lock().unwrap();
    eprintln!(
        "{} samples; Pods that carried the label: {:?}",
        s.count, s.ever
    );
    assert!(
        s.violations.is_empty(),
        "at most one Pod labelled at every sample; {} of {} samples had more: {:?}",
        s.violations.len(),
        s.count,
        &s.violations[..s.violations.len().min(5)]
    );
    assert!(
        s.ever.len() >= 2,
        "the label moved between Pods: {:?}",
        s.ever
    );
}
