//! A real kube-apiserver restarted under live electors, and its etcd
//! compacted under a live watch. Each scenario starts its own server from
//! the `kube-apiserver-etcd` binary (`interop/cmd/apiserver`) on a data
//! directory of its own, which keeps the credentials, certificates and
//! ports across restarts, so the electors' clients keep working:
//!
//! - kube-apiserver restarted mid-term on the same etcd (etcd runs apart,
//!   `--etcd-only`): the electors keep or regain leadership, no overlap, and
//!   a later change of the Lease is still seen (no stuck watch);
//! - kube-apiserver and its etcd killed and restarted together on the same
//!   data: the same checks;
//! - etcd compacted while a follower's watch is cut off (behind the fault
//!   proxy), the apiserver without a watch cache (`--watch-cache=false`),
//!   so that the resume really gets 410 Gone: the run shows the 410 (from
//!   the follower's own trace and from a watch of the admin client at the
//!   same version), then the follower must still track the Lease and take
//!   it over when the leader hands it over.
//!
//! - the conformance check of `tests/support/restart.rs`, which the embedded
//!   server's `stop_gracefully` and `restart` must pass too: after SIGTERM
//!   requests fail while an open watch stays open and silent (about 10 s on
//!   v1.37), and after the restart a resume from the version that watch
//!   last saw gets 410 Expired, with the watch cache on.
//!
//! client-go's elector (`interop/cmd/client-go-elector`) is a candidate in
//! the restart scenarios. Each scenario prints its figures. Needs
//! `KUBE_ELECTOR_APISERVER` (the binary), `KUBE_ELECTOR_CLIENT_GO_ELECTOR`
//! and `KUBE_ELECTOR_FAULTPROXY`, as `scripts/e2e-real.sh` sets them; says
//! SKIPPED and why without them.

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_elector::{ElectorHandle, LeaderElector};
use kube_elector_testing::FaultTarget;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};

use futures::TryStreamExt;
use support::fault_proxy::{self, FaultProxy};
use support::recorder::Recorder;

const PATIENCE: Duration = Duration::from_secs(30);
/// A start of kube-apiserver on a loaded machine.
const START: Duration = Duration::from_secs(180);

// === The server's processes ===

fn binary(env: &str, local: &str) -> Option<PathBuf> {
    std::env::var_os(env)
        .map(PathBuf::from)
        .or_else(|| {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(local);
            path.exists().then_some(path)
        })
        .filter(|p| p.exists())
}

struct Binaries {
    apiserver: PathBuf,
    client_go: PathBuf,
    proxy: PathBuf,
}

fn binaries(scenario: &str) -> Option<Binaries> {
    let found = (
        binary(
            "KUBE_ELECTOR_APISERVER",
            "target/interop/kube-apiserver-etcd",
        ),
        binary(
            "KUBE_ELECTOR_CLIENT_GO_ELECTOR",
            "target/interop/client-go-elector",
        ),
        fault_proxy::binary(),
    );
    if let (Some(apiserver), Some(client_go), Some(proxy)) = found {
        return Some(Binaries {
            apiserver,
            client_go,
            proxy,
        });
    }
    eprintln!(
        "SKIPPED real_restart/{scenario}: needs the kube-apiserver-etcd binary \
         (KUBE_ELECTOR_APISERVER), the client-go elector (KUBE_ELECTOR_CLIENT_GO_ELECTOR) and the \
         fault proxy ({}); scripts/e2e-real.sh builds and names them",
        fault_proxy::PROXY_ENV
    );
    None
}

/// Starts `binary` with `args`, and waits (up to `patience`) for a stdout
/// line starting with `prefix`; returns the process and the line.
async fn start(binary: &Path, args: &[&str], log: &Path, prefix: &str) -> (Child, String) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the server's log");
    let mut child = Command::new(binary)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = timeout(START, async {
        while let Some(line) = lines.next_line().await.expect("the server's stdout") {
            if line.starts_with(prefix) {
                return line;
            }
        }
        panic!("{} exited before it printed {prefix}", binary.display())
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no {prefix} line from {} within {START:?}",
            binary.display()
        )
    });
    (child, line)
}

/// SIGTERM, and the exit within 30 s (else SIGKILL).
async fn stop(mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if timeout(PATIENCE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// A kube-apiserver on its own data directory, with its etcd inside or
/// apart.
struct Server {
    binary: PathBuf,
    dir: PathBuf,
    /// etcd run apart (`--etcd-only`), and its URL.
    etcd: Option<(Child, String)>,
    apiserver: Option<Child>,
    extra: Vec<String>,
}

impl Server {
    /// Starts etcd apart (if `apart`) and kube-apiserver with `extra` flags.
    async fn start(binary: &Path, scenario: &str, apart: bool, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(support::unique_name(scenario));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            binary: binary.to_owned(),
            dir,
            etcd: None,
            apiserver: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        if apart {
            server.start_etcd().await;
        }
        server.start_apiserver().await;
        server
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    async fn start_etcd(&mut self) {
        let data = self.dir.join("etcd-data");
        let (child, line) = start(
            &self.binary,
            &["--etcd-only", "--data-dir", data.to_str().unwrap()],
            &self.log(),
            "ETCD ",
        )
        .await;
        let url = line.trim_start_matches("ETCD ").trim().to_owned();
        self.etcd = Some((child, url));
    }

    /// Starts kube-apiserver; how long it took to be ready.
    async fn start_apiserver(&mut self) -> Duration {
        let started = Instant::now();
        let data = self.dir.join("data");
        let kubeconfig = self.kubeconfig();
        let mut args = vec![
            "--data-dir".to_owned(),
            data.to_str().unwrap().to_owned(),
            "--kubeconfig".to_owned(),
            kubeconfig.to_str().unwrap().to_owned(),
            "--coordinated-leader-election=false".to_owned(),
        ];
        if let Some((_, url)) = &self.etcd {
            args.extend(["--etcd-servers".to_owned(), url.clone()]);
        }
        args.extend(self.extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, _) = start(&self.binary, &args, &self.log(), "READY ").await;
        self.apiserver = Some(child);
        started.elapsed()
    }

    async fn stop_apiserver(&mut self) {
        if let Some(child) = self.apiserver.take() {
            stop(child).await;
        }
    }

    /// SIGKILL: kube-apiserver (and its etcd, if inside) die at once.
    async fn kill_apiserver(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            let _ = child.kill().await;
        }
    }

    fn etcd_url(&self) -> &str {
        &self.etcd.as_ref().expect("etcd runs apart").1
    }

    async fn config(&self) -> kube::Config {
        kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(self.kubeconfig()).expect("read the kubeconfig"),
            &KubeConfigOptions::default(),
        )
        .await
        .expect("load the kubeconfig")
    }

    async fn shutdown(mut self) {
        self.stop_apiserver().await;
        if let Some((child, _)) = self.etcd.take() {
            stop(child).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// kube-apiserver as the restart conformance check sees it: SIGTERM, then
/// its exit and a start on the same etcd and credentials.
impl support::restart::Restartable for Server {
    async fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config().await).expect("a client")
    }

    async fn begin_stop(&mut self) {
        if let Some(pid) = self.apiserver.as_ref().and_then(Child::id) {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
    }

    async fn start_again(&mut self) {
        if let Some(mut child) = self.apiserver.take()
            && timeout(PATIENCE, child.wait()).await.is_err()
        {
            let _ = child.kill().await;
        }
        self.start_apiserver().await;
    }
}

// === etcd's JSON gateway ===

/// A POST of `body` to etcd's gRPC gateway; its JSON answer.
async fn etcd_post(url: &str, path: &str, body: &Value) -> Value {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = timeout(PATIENCE, async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("etcd");
        stream.write_all(request.as_bytes()).await.expect("etcd");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("etcd");
        answer
    })
    .await
    .expect("etcd answers");
    let (head, json) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "etcd {path}: {answer}");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("etcd {path}: {e}: {answer}"))
}

/// etcd's current revision.
async fn etcd_revision(url: &str) -> i64 {
    let answer = etcd_post(
        url,
        "/v3/kv/range",
        &json!({ "key": "AA==", "count_only": true }),
    )
    .await;
    answer["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .or_else(|| answer["header"]["revision"].as_i64())
        .expect("a revision")
}

// === Candidates ===

/// The library's debug trace, kept to look for what a watch saw.
fn trace() -> Arc<Mutex<Vec<u8>>> {
    static TRACE: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    TRACE
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = Arc::clone(&buffer);
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter("kube_elector=debug")
                .with_ansi(false)
                .with_writer(move || TraceWriter(Arc::clone(&writer)))
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
            buffer
        })
        .clone()
}

struct TraceWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for TraceWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Lines of the trace since `from` (a length of it) that contain all of `words`.
fn traced(from: usize, words: &[&str]) -> Vec<String> {
    let trace = trace();
    let trace = trace.lock().unwrap();
    String::from_utf8_lossy(&trace[from.min(trace.len())..])
        .lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .map(str::to_owned)
        .collect()
}

fn trace_len() -> usize {
    trace().lock().unwrap().len()
}

fn kube_elector(
    client: kube::Client,
    lease: &str,
    identity: &str,
    recorder: &Recorder,
) -> ElectorHandle {
    let handle = LeaderElector::new(client, support::short_config(lease, identity))
        .unwrap()
        .spawn();
    recorder.watch(&handle);
    handle
}

/// client-go's elector, its terms in `recorder`, and the holders it
/// reported (`new_leader`).
struct ClientGo {
    child: Child,
    seen: tokio::sync::watch::Receiver<Vec<String>>,
}

impl ClientGo {
    fn spawn(
        binary: &Path,
        kubeconfig: &Path,
        lease: &str,
        identity: &str,
        recorder: &Recorder,
    ) -> Self {
        let mut child = Command::new(binary)
            .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
            .args([
                "--namespace",
                "default",
                "--lease-name",
                lease,
                "--identity",
                identity,
            ])
            .args(["--lease-duration-ms", "3000", "--renew-deadline-ms", "1000"])
            .args(["--retry-period-ms", "250"])
            .args(["--content-type", "application/vnd.kubernetes.protobuf"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the client-go elector");
        let stdout = child.stdout.take().unwrap();
        let (tx, seen) = tokio::sync::watch::channel(Vec::new());
        let recorder = recorder.clone();
        let who = identity.to_owned();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                // Stamped by the process's wall clock; laid on ours.
                let ts = event["ts_unix_nanos"].as_i64().unwrap_or(0);
                let now_wall = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
                let ago = Duration::from_nanos(u64::try_from(now_wall - ts).unwrap_or(0));
                let at = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
                match event["event"].as_str() {
                    Some("started_leading") => recorder.start_at(&who, at),
                    Some("stopped_leading") => recorder.end_at(&who, at),
                    Some("new_leader") => {
                        let leader = event["leader"].as_str().unwrap_or("").to_owned();
                        tx.send_modify(|seen| seen.push(leader));
                    }
                    _ => {}
                }
            }
            recorder.end_at(&who, Instant::now());
        });
        Self { child, seen }
    }

    async fn terminate(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let _ = timeout(PATIENCE, self.child.wait()).await;
    }
}

/// Waits until someone leads (by the recorder); how long that took.
async fn someone_leads(recorder: &Recorder, patience: Duration, what: &str) -> Duration {
    let from = Instant::now();
    assert!(
        recorder.wait_leading(from + patience).await,
        "{what}: no leader within {patience:?}: {:#?}",
        recorder.intervals()
    );
    from.elapsed()
}

/// Waits until a term starts at or after `since` (by the recorder); who
/// and how long after `since`.
async fn term_since(recorder: &Recorder, since: Instant, what: &str) -> (String, Duration) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(term) = recorder.intervals().into_iter().find(|i| i.start >= since) {
            return (term.who, term.start.saturating_duration_since(since));
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no new term within {PATIENCE:?}: {:#?}",
            recorder.intervals()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The open term's holder, by the recorder.
fn leader_of(recorder: &Recorder) -> Option<String> {
    recorder
        .intervals()
        .into_iter()
        .find(|i| i.end.is_none())
        .map(|i| i.who)
}

/// An outside writer's forced takeover by `intruder`: every candidate must
/// see it (the electors in their state, client-go in a `new_leader`).
/// How long until the last one saw it.
async fn every_candidate_sees(
    api: &Api<Lease>,
    lease: &str,
    intruder: &str,
    electors: &[&ElectorHandle],
    client_go: &mut ClientGo,
) -> Duration {
    // The holder renews meanwhile: read and write again on a conflict.
    let deadline = Instant::now() + PATIENCE;
    let written = loop {
        let mut record = api.get(lease).await.expect("the Lease");
        let spec = record.spec.get_or_insert_with(Default::default);
        spec.holder_identity = Some(intruder.to_owned());
        spec.lease_duration_seconds = Some(2);
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        let written = Instant::now();
        match api.replace(lease, &PostParams::default(), &record).await {
            Ok(_) => break written,
            Err(kube::Error::Api(status)) if status.code == 409 && Instant::now() < deadline => {}
            Err(e) => panic!("the outside write: {e}"),
        }
    };
    for e in electors {
        support::wait_sees_leader(&mut e.subscribe(), intruder, PATIENCE).await;
    }
    timeout(
        PATIENCE,
        client_go
            .seen
            .wait_for(|seen| seen.iter().any(|s| s == intruder)),
    )
    .await
    .expect("client-go reports the intruder within the patience")
    .expect("client-go runs");
    written.elapsed()
}

// === Scenarios ===

/// What a restart scenario does to the server.
#[derive(Clone, Copy, Debug)]
enum Restart {
    /// SIGTERM to kube-apiserver, etcd (apart) kept running; start it again.
    ApiserverOnly,
    /// SIGKILL to the process of kube-apiserver and its etcd; start both again.
    BothKilled,
}

async fn restart_scenario(how: Restart) {
    // The trace's subscriber is installed before the electors start.
    let _ = trace();
    let scenario = match how {
        Restart::ApiserverOnly => "apiserver-restart",
        Restart::BothKilled => "apiserver-etcd-restart",
    };
    let Some(bins) = binaries(scenario) else {
        return;
    };
    let apart = matches!(how, Restart::ApiserverOnly);
    let mut server = Server::start(&bins.apiserver, scenario, apart, &[]).await;
    let config = server.config().await;
    let api: Api<Lease> =
        Api::namespaced(kube::Client::try_from(config.clone()).unwrap(), "default");
    let lease = support::unique_name(scenario);
    let recorder = Recorder::default();
    let a = kube_elector(
        kube::Client::try_from(config.clone()).unwrap(),
        &lease,
        "a",
        &recorder,
    );
    let b = kube_elector(
        kube::Client::try_from(config.clone()).unwrap(),
        &lease,
        "b",
        &recorder,
    );
    let mut go = ClientGo::spawn(
        &bins.client_go,
        &server.kubeconfig(),
        &lease,
        "client-go",
        &recorder,
    );
    someone_leads(&recorder, PATIENCE, scenario).await;
    // Mid-term: the leader has renewed a few times.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = leader_of(&recorder).expect("a leader");
    let terms_before = recorder.intervals().len();

    let down = Instant::now();
    let trace_at_stop = trace_len();
    match how {
        Restart::ApiserverOnly => server.stop_apiserver().await,
        Restart::BothKilled => server.kill_apiserver().await,
    }
    let start_took = server.start_apiserver().await;
    let outage = down.elapsed();
    // A term that outlived the outage is kept; else a new one must start.
    let kept = recorder.intervals().len() == terms_before && recorder.is_leading(&before);
    let (after, regained) = if kept {
        (before.clone(), Duration::ZERO)
    } else {
        // kube-apiserver serves a moment before READY is printed.
        let (who, since_down) = term_since(&recorder, down, scenario).await;
        (who, since_down)
    };
    recorder.assert_no_overlap();
    // What the electors' watches saw across the restart, from their trace.
    let in_lease = format!("lease={lease} ");
    let silent = traced(
        trace_at_stop,
        &[&in_lease, "the watch has delivered nothing"],
    )
    .len();
    let gone = traced(trace_at_stop, &[&in_lease, "code=410"]).len();

    // No stuck view: a later change reaches every candidate.
    let written = Instant::now();
    let seen = every_candidate_sees(&api, &lease, "intruder", &[&a, &b], &mut go).await;
    // The intruder's record expires (2 s after it was seen); someone takes it back.
    let (retaken_by, retaken) = term_since(&recorder, written, scenario).await;
    recorder.assert_no_overlap();

    eprintln!(
        "{scenario}: outage {outage:.2?} (start to READY {start_took:.2?}); leader before {before}, \
         after {after} ({}, the new term {regained:.2?} after the stop began); a later outside write seen by all three \
         candidates in {seen:.2?}, the Lease retaken by {retaken_by} {retaken:.2?} after the write; \
         overlap 0 over {} terms; across the restart, {silent} elector(s) found their watch silent \
         and polled, {gone} resumed watch(es) got 410 Expired and relisted",
        if kept {
            "kept its term"
        } else {
            "leadership regained"
        },
        recorder.intervals().len()
    );
    go.terminate().await;
    let _ = a.shutdown().await;
    let _ = b.shutdown().await;
    recorder.assert_no_overlap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts kube-apiserver and etcd of its own: scripts/e2e-real.sh runs it"]
async fn apiserver_restarted_on_the_same_etcd_keeps_electors_working() {
    restart_scenario(Restart::ApiserverOnly).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts kube-apiserver and etcd of its own: scripts/e2e-real.sh runs it"]
async fn apiserver_and_etcd_killed_and_restarted_on_the_same_data_keep_electors_working() {
    restart_scenario(Restart::BothKilled).await;
}

/// Waits until the Lease is three versions past `version` (the leader
/// renewed).
/// The embedded server's model of a graceful stop and a restart
/// (`tests/restart.rs`) checked against the real thing: watches open and
/// silent after requests fail, 410 for a resume after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts kube-apiserver and etcd of its own: scripts/e2e-real.sh runs it"]
async fn kube_apiserver_keeps_watches_open_and_silent_into_a_stop_and_expires_their_versions_after_a_restart()
 {
    let scenario = "restart-conformance";
    let Some(bins) = binaries(scenario) else {
        return;
    };
    let mut server = Server::start(&bins.apiserver, scenario, true, &[]).await;
    support::restart::check(&mut server, "kube-apiserver (watch cache on)").await;
    server.shutdown().await;
}

async fn renewed(api: &Api<Lease>, lease: &str, version: &str) {
    let version: i64 = version.parse().unwrap();
    loop {
        let now = api.get(lease).await.unwrap().metadata.resource_version;
        if now.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) > version + 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a watch of the Lease from `version` gets first: `410 Expired`, or
/// whatever else it got.
async fn watch_answer(api: &Api<Lease>, lease: &str, version: &str) -> String {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={lease}"))
        .timeout(5);
    match api.watch(&params, version).await {
        Ok(stream) => {
            let mut stream = std::pin::pin!(stream);
            match timeout(PATIENCE, stream.try_next()).await {
                Ok(Ok(Some(WatchEvent::Error(status)))) => {
                    format!("{} {}", status.code, status.reason)
                }
                other => format!("{other:?}"),
            }
        }
        Err(e) => format!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts kube-apiserver and etcd of its own: scripts/e2e-real.sh runs it"]
async fn a_watch_resumed_below_the_compacted_revision_gets_410_and_the_follower_relists() {
    let scenario = "compaction";
    let Some(bins) = binaries(scenario) else {
        return;
    };
    let trace_from = trace_len();
    let server = Server::start(&bins.apiserver, scenario, true, &["--watch-cache=false"]).await;
    let config = server.config().await;
    let admin = kube::Client::try_from(config.clone()).unwrap();
    let api: Api<Lease> = Api::namespaced(admin, "default");
    let proxy = FaultProxy::start(&bins.proxy, config.clone()).await;
    let lease = support::unique_name(scenario);
    let recorder = Recorder::default();
    let leader = kube_elector(proxy.client_for("leader"), &lease, "leader", &recorder);
    recorder.term_of("leader", false).await;
    let follower = kube_elector(proxy.client_for("follower"), &lease, "follower", &recorder);
    support::wait_sees_leader(&mut follower.subscribe(), "leader", PATIENCE).await;
    support::eventually("the follower watches the Lease", PATIENCE, || {
        !traced(trace_from, &["identity=follower", "watching the Lease"]).is_empty()
    })
    .await;

    // Cut the follower off while the leader renews, then compact etcd
    // above every version the follower saw (none is newer than the Lease
    // read after the cut).
    let follower_target = FaultTarget::Client("follower".into());
    proxy.set(&follower_target, json!({ "partition": true }));
    let seen_version = api
        .get(&lease)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    timeout(PATIENCE, renewed(&api, &lease, &seen_version))
        .await
        .expect("the leader renews");
    let revision = etcd_revision(server.etcd_url()).await;
    etcd_post(
        server.etcd_url(),
        "/v3/kv/compaction",
        &json!({ "revision": revision.to_string(), "physical": true }),
    )
    .await;
    // The server itself answers a watch from the follower's old version with 410.
    let direct = watch_answer(&api, &lease, &seen_version).await;
    assert!(
        direct.starts_with("410"),
        "a watch from {seen_version} after compacting at {revision}: {direct}"
    );

    // Heal, resetting the follower's connections: its watch resumes from
    // where it was, below the compacted revision.
    let healed = Instant::now();
    proxy.set(
        &follower_target,
        json!({ "partition": false, "reset": true }),
    );
    let patience = PATIENCE;
    let gone = loop {
        let lines = traced(trace_from, &["identity=follower", "code=410"]);
        if let Some(line) = lines.into_iter().next() {
            break line;
        }
        assert!(
            healed.elapsed() < patience,
            "the follower's watch did not report 410 within {patience:?} of the heal; its trace:\n{}",
            traced(trace_from, &["identity=follower"]).join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let saw_410 = healed.elapsed();
    // After the relist it still tracks the Lease: a handover reaches it.
    support::wait_sees_leader(&mut follower.subscribe(), "leader", PATIENCE).await;
    let handover = Instant::now();
    let _ = leader.shutdown().await;
    let term = recorder.term_of("follower", false).await;
    let took = term.start.saturating_duration_since(handover);
    recorder.assert_no_overlap();
    let watched_again =
        !traced(trace_from, &["identity=follower", "watching the Lease"]).is_empty();
    eprintln!(
        "compaction: etcd compacted at revision {revision} while the follower (at {seen_version}) was \
         cut off; the admin client's watch from {seen_version} got {direct}; the follower's resumed \
         watch got 410 {saw_410:.2?} after the heal ({gone:?}); it relisted{} and took over {took:.2?} \
         after the leader's shutdown began; overlap 0",
        if watched_again {
            " and watched again"
        } else {
            ""
        },
    );
    let _ = std::io::stderr().flush();
    let _ = follower.shutdown().await;
    drop(proxy);
    server.shutdown().await;
}
