//! The randomized fault schedule of `tests/chaos.rs` and `tests/real_faults.rs`:
//! one schedule, two backends. On the embedded server the faults are its
//! own (per client: latency, 5xx, partitions, hung and refused clients,
//! late, silent and failing watches, lost and late answers, stale reads);
//! through the TCP fault proxy in front of a real kube-apiserver they are
//! what a network can do (latency per direction, black holes, partitions,
//! resets, refused connections), each fault of the schedule expressed as
//! the nearest of those, as the log says. Outside writers (deletions, forced
//! takeovers, duration edits) go through an admin client either way.

#![allow(dead_code, unreachable_pub)] // each of the two test files uses a part of this

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube_elector::{
    ElectorConfig, ElectorHandle, LeaderElector,
    clock::{SkewedClock, WallClock},
    handover::Successor,
    hub::LeaseHub,
    metrics::ElectorMetrics,
    observer::{LeaderObserver, ObserverHandle},
};
use kube_elector_testing::{FaultTarget, LeaseApiServer, Verb};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use crate::support::fault_proxy::FaultProxy;
use crate::support::recorder::Recorder;
use crate::support::scrape::Scrape;

pub const LEASE: Duration = Duration::from_secs(2);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(1);
pub const RETRY: Duration = Duration::from_millis(250);
/// Room for scheduling on a loaded two-core CI machine in the liveness check.
pub const SLACK: Duration = Duration::from_secs(1);
/// client-go's lease duration in a mixed cast. client-go counts its term
/// from the answer to its renew (kube-elector from the request), and keeps
/// leading for a retry period plus its renew deadline after it: a longer
/// lease than kube-elector's covers the late answers of the schedule (up to
/// 0.9 s) as client-go's own defaults (15 s / 10 s / 2 s) would.
pub const CLIENT_GO_LEASE: Duration = Duration::from_secs(3);
/// The settings of some of the electors on the embedded server (replicas
/// whose settings differ: a rollout that changed them): longer durations.
const SLOW: (Duration, Duration, Duration) = (
    Duration::from_secs(3),
    Duration::from_secs(2),
    Duration::from_millis(400),
);

// === Backends ===

/// Where the schedule's faults go.
pub enum Backend {
    /// The embedded server: its own per-client faults.
    Embedded(LeaseApiServer),
    /// A real API server behind the TCP fault proxy: each fault expressed at
    /// the TCP level (the returned note says how).
    Proxy(Box<FaultProxy>),
}

/// How a backend expressed a fault: `None` as asked, else how instead.
type How = Option<&'static str>;

impl Backend {
    pub fn client_for(&self, client: &str) -> kube::Client {
        match self {
            Self::Embedded(server) => server.client_for(client),
            Self::Proxy(proxy) => proxy.client_for(client),
        }
    }

    /// Latency of every request. Proxy: half of it each way.
    fn set_latency(&self, target: FaultTarget, latency: Duration) -> How {
        match self {
            Self::Embedded(server) => server.set_latency(target, latency),
            Self::Proxy(proxy) => {
                let half = u64::try_from(latency.as_millis() / 2).unwrap_or(u64::MAX);
                proxy.set(&target, json!({ "latency_ms": half }));
                return Some("proxy: half of it each way");
            }
        }
        None
    }

    /// 5xx answers: an HTTP fault; the proxy resets every connection instead.
    fn set_error_rate(&self, target: FaultTarget, rate: f64) -> How {
        match self {
            Self::Embedded(server) => server.set_error_rate(target, rate),
            Self::Proxy(proxy) => {
                proxy.set(&target, json!({ "reset": true }));
                return Some("proxy: no HTTP status at TCP level; every connection reset instead");
            }
        }
        None
    }

    fn partition(&self, target: FaultTarget) -> How {
        match self {
            Self::Embedded(server) => server.partition(target),
            Self::Proxy(proxy) => {
                proxy.set(&target, json!({ "partition": true }));
                return Some("proxy: bytes held both ways, new connections too");
            }
        }
        None
    }

    fn heal(&self, target: FaultTarget) -> How {
        match self {
            Self::Embedded(server) => server.heal(target),
            Self::Proxy(proxy) => {
                proxy.set(&target, json!({ "partition": false, "reset": true }));
                return Some("proxy: healed by resetting the held connections");
            }
        }
        None
    }

    fn hang(&self, target: FaultTarget) -> How {
        match self {
            Self::Embedded(server) => server.hang(target),
            Self::Proxy(proxy) => {
                proxy.set(&target, json!({ "partition": true }));
                return Some("proxy: a partition healed later keeping the connections");
            }
        }
        None
    }

    fn release(&self, target: FaultTarget) -> How {
        match self {
            Self::Embedded(server) => server.release(target),
            Self::Proxy(proxy) => {
                proxy.set(&target, json!({ "partition": false }));
                return Some("proxy: the held bytes go through late");
            }
        }
        None
    }

    fn refuse_connections(&self, target: FaultTarget, refuse: bool) -> How {
        match self {
            Self::Embedded(server) => server.refuse_connections(target, refuse),
            Self::Proxy(proxy) => {
                proxy.set(&target, json!({ "refuse": refuse }));
                return refuse.then_some("proxy: new connections reset at accept, open ones kept");
            }
        }
        None
    }

    fn delay_watch(&self, target: FaultTarget, delay: Duration) -> How {
        match self {
            Self::Embedded(server) => server.delay_watch(target, delay),
            Self::Proxy(proxy) => {
                proxy.set(
                    &target,
                    json!({ "down_latency_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX) }),
                );
                return Some("proxy: every answer late, the watch's too");
            }
        }
        None
    }

    fn black_hole_watch(&self, target: FaultTarget, on: bool) -> How {
        match self {
            Self::Embedded(server) => server.black_hole_watch(target, on),
            Self::Proxy(proxy) => {
                proxy.set(&target, json!({ "black_hole": on }));
                return Some("proxy: bytes dropped both ways, connections kept open");
            }
        }
        None
    }

    fn fail_watch(&self, target: FaultTarget, on: bool) -> How {
        match self {
            Self::Embedded(server) => server.fail_watch(target, on),
            Self::Proxy(proxy) => {
                proxy.set(&target, json!({ "refuse": on, "reset": on }));
                return Some("proxy: every connection reset, new ones at accept");
            }
        }
        None
    }

    fn lose_write_answers(&self, target: FaultTarget, on: bool) -> How {
        match self {
            Self::Embedded(server) => server.lose_write_answers(target, on),
            Self::Proxy(proxy) => {
                proxy.set(&target, json!({ "down_black_hole": on }));
                return Some("proxy: every answer dropped, requests delivered");
            }
        }
        None
    }

    fn delay_write_answers(&self, target: FaultTarget, delay: Duration) -> How {
        match self {
            Self::Embedded(server) => server.delay_write_answers(target, delay),
            Self::Proxy(proxy) => {
                proxy.set(
                    &target,
                    json!({ "down_latency_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX) }),
                );
                return Some("proxy: every answer late");
            }
        }
        None
    }

    fn stale_reads(&self, target: FaultTarget, on: bool) -> How {
        match self {
            Self::Embedded(server) => server.stale_reads(target, on),
            Self::Proxy(proxy) => {
                proxy.set(
                    &target,
                    json!({ "up_latency_ms": if on { 400 } else { 0 } }),
                );
                return Some("proxy: no cache at TCP level; requests 400ms late instead");
            }
        }
        None
    }

    fn clear_faults(&self) {
        match self {
            Self::Embedded(server) => server.clear_faults(),
            Self::Proxy(proxy) => proxy.clear(),
        }
    }
}

// === client-go among the candidates ===

/// client-go's elector (`interop/cmd/client-go-elector`) as a candidate,
/// through its own port of the proxy; its terms go to the recorder from its
/// event lines (their wall-clock stamps laid on the recorder's clock).
pub struct ClientGoPeer {
    pub binary: PathBuf,
    /// The real server's kubeconfig, from which each instance's is made.
    pub kubeconfig: PathBuf,
    /// The running instance: its label (client id and identity) and process.
    running: Option<(String, tokio::process::Child)>,
    instances: usize,
}

impl ClientGoPeer {
    pub fn new(binary: PathBuf, kubeconfig: PathBuf) -> Self {
        Self {
            binary,
            kubeconfig,
            running: None,
            instances: 0,
        }
    }

    fn label(&self) -> Option<&str> {
        self.running.as_ref().map(|(label, _)| label.as_str())
    }
}

/// The instant of a wall-clock stamp (Unix nanoseconds) on this process's
/// monotonic clock: both clocks read now, and the difference carried over.
fn instant_of(ts_unix_nanos: i64) -> Instant {
    let now_instant = Instant::now();
    let now_wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
    let ago = now_wall - i128::from(ts_unix_nanos);
    let ago = Duration::from_nanos(u64::try_from(ago.unsigned_abs()).unwrap_or(u64::MAX));
    if now_wall >= i128::from(ts_unix_nanos) {
        now_instant.checked_sub(ago).unwrap_or(now_instant)
    } else {
        now_instant + ago
    }
}

/// A wall clock that never moves.
#[derive(Debug)]
struct FrozenClock(jiff::Timestamp);

impl WallClock for FrozenClock {
    fn now(&self) -> jiff::Timestamp {
        self.0
    }
}

/// A wall clock that runs at `rate` times the real rate from its creation.
#[derive(Debug)]
struct RateClock {
    start: jiff::Timestamp,
    origin: std::time::Instant,
    rate: f64,
}

impl RateClock {
    fn new(rate: f64) -> Self {
        Self {
            start: jiff::Timestamp::now(),
            origin: std::time::Instant::now(),
            rate,
        }
    }
}

impl WallClock for RateClock {
    fn now(&self) -> jiff::Timestamp {
        let elapsed = self.origin.elapsed().mul_f64(self.rate);
        let elapsed = SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::ZERO);
        self.start.checked_add(elapsed).unwrap_or(self.start)
    }
}

/// A small deterministic generator (xorshift64*), so a seed replays exactly
/// the same schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

pub struct Chaos {
    pub faults: Backend,
    /// client-go's elector among the candidates (real servers).
    pub client_go: Option<ClientGoPeer>,
    lease: String,
    recorder: Recorder,
    /// Each elector with its label: the client id its faults are aimed at,
    /// or, in a crowd, `<client>#<n>` (two electors may share an identity,
    /// never a label).
    electors: Vec<(String, ElectorHandle)>,
    /// In a crowd: the "processes", each a hub on its own client, whose
    /// electors share one watch and stand in one line; faults aimed at an
    /// elector hit its whole process.
    hubs: Vec<(String, LeaseHub)>,
    /// Each elector's own metrics registry, by client id.
    registries: Vec<(String, Registry)>,
    spawned: usize,
    log: String,
    started: Instant,
    rng: Rng,
    /// When the Lease was last deleted.
    deleted_at: Option<Instant>,
    /// When an elector was last started.
    spawned_at: Option<Instant>,
    /// An observer on a client of its own (embedded server: its requests
    /// are counted apart), a target of the faults like any elector.
    observer: Option<ObserverHandle>,
}

/// The client id of the chaos run's observer.
const OBSERVER: &str = "chaos-observer";

impl Chaos {
    /// How a backend expressed the last fault, when not as asked.
    fn explain(&mut self, how: How) {
        if let Some(how) = how {
            let _ = writeln!(self.log, "           ({how})");
        }
    }

    /// Starts (or restarts, as a new instance) the client-go candidate.
    async fn spawn_client_go(&mut self) {
        let Some(peer) = self.client_go.as_mut() else {
            return;
        };
        let Backend::Proxy(proxy) = &self.faults else {
            unreachable!("client-go runs through the proxy")
        };
        peer.instances += 1;
        let label = format!("client-go-{}", peer.instances);
        let kubeconfig = std::env::temp_dir().join(format!(
            "{}.kubeconfig",
            crate::support::unique_name(&label)
        ));
        proxy.write_kubeconfig(&peer.kubeconfig, &label, &kubeconfig);
        let ms = |d: Duration| d.as_millis().to_string();
        let mut child = tokio::process::Command::new(&peer.binary)
            .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
            .args(["--namespace", "default", "--lease-name", &self.lease])
            .args(["--identity", &label])
            .args(["--lease-duration-ms", &ms(CLIENT_GO_LEASE)])
            .args(["--renew-deadline-ms", &ms(RENEW_DEADLINE)])
            .args(["--retry-period-ms", &ms(RETRY)])
            .args(["--content-type", "application/vnd.kubernetes.protobuf"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the client-go elector");
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let recorder = self.recorder.clone();
        let who = label.clone();
        tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let at = instant_of(event["ts_unix_nanos"].as_i64().unwrap_or(0));
                match event["event"].as_str() {
                    Some("ready") => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Some("started_leading") => recorder.start_at(&who, at),
                    Some("stopped_leading") => recorder.end_at(&who, at),
                    _ => {}
                }
            }
            // Gone (a crash): whatever term it had ended by now.
            recorder.end_at(&who, Instant::now());
        });
        tokio::time::timeout(Duration::from_secs(20), ready)
            .await
            .expect("the client-go elector is ready within 20 s")
            .expect("the client-go elector runs");
        peer.running = Some((label.clone(), child));
        self.note(&format!("spawn {label} (client-go's elector)"));
        self.spawned_at = Some(Instant::now());
    }

    /// Stops the client-go candidate: SIGTERM (it stops leading, releases,
    /// exits) or SIGKILL (a crash: the Lease expires on its own).
    async fn stop_client_go(&mut self, graceful: bool) {
        let Some((label, mut child)) = self.client_go.as_mut().and_then(|p| p.running.take())
        else {
            return;
        };
        if graceful {
            let pid = child.id().expect("running").to_string();
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .await;
            assert!(
                tokio::time::timeout(LEASE * 5, child.wait()).await.is_ok(),
                "{label} did not exit within {:?} of SIGTERM\n{}",
                LEASE * 5,
                self.log
            );
        } else {
            let _ = child.kill().await;
            self.recorder.end_at(&label, Instant::now());
        }
    }

    pub fn note(&mut self, what: &str) {
        let at = self.started.elapsed().as_secs_f64();
        let _ = writeln!(self.log, "{at:8.3}s {what}");
    }

    fn spawn(&mut self) {
        self.spawned += 1;
        let hub =
            (!self.hubs.is_empty()).then(|| self.hubs[self.spawned % self.hubs.len()].clone());
        let client = match &hub {
            Some((process, _)) => format!("{process}#{}", self.spawned),
            None => format!("chaos-{}", self.spawned),
        };
        // Now and then a twin: a second instance with a running elector's
        // identity (a StatefulSet pod and its replacement).
        let twin = !self.electors.is_empty() && self.rng.below(6) == 0;
        let identity = if twin {
            let i = usize::try_from(self.rng.below(self.electors.len() as u64)).unwrap();
            self.electors[i].1.identity().to_owned()
        } else {
            client.clone()
        };
        let (clock, mut described) = self.clock();
        // On the embedded server, one elector in three has other settings.
        let slow = matches!(self.faults, Backend::Embedded(_)) && self.rng.below(3) == 0;
        let (lease, renew_deadline, retry) = if slow {
            described.push_str(", lease 3 s, renew deadline 2 s, retry 400 ms");
            SLOW
        } else {
            (LEASE, RENEW_DEADLINE, RETRY)
        };
        let config = ElectorConfig::new(&self.lease)
            .namespace("default")
            .identity(&identity)
            .lease_duration(lease)
            .renew_deadline(renew_deadline)
            .retry_period(retry)
            .clock(clock);
        let mut registry = Registry::default();
        let config = config
            .metrics(ElectorMetrics::new(&mut registry))
            .recorder("kube-elector-chaos");
        self.registries.push((client.clone(), registry));
        let elector = match &hub {
            Some((_, hub)) => hub.elector(config),
            None => LeaderElector::new(self.faults.client_for(&client), config),
        };
        let handle = elector.unwrap().spawn();
        self.recorder.watch_as(&handle, &client);
        self.note(&format!(
            "spawn {client} as {identity}{} with {described}",
            if twin { " (a twin)" } else { "" }
        ));
        self.spawned_at = Some(Instant::now());
        self.electors.push((client, handle));
    }

    /// A wall clock: up to an hour off either way, frozen, or running at the
    /// wrong rate.
    fn clock(&mut self) -> (Arc<dyn WallClock>, String) {
        let skew = i64::try_from(self.rng.below(7201)).unwrap() - 3600;
        match self.rng.below(4) {
            0 => (
                Arc::new(FrozenClock(jiff::Timestamp::now())),
                "a frozen clock".into(),
            ),
            1 => {
                let rate = 0.5 + f64::from(u32::try_from(self.rng.below(150)).unwrap()) / 100.0;
                (
                    Arc::new(RateClock::new(rate)),
                    format!("a clock at {rate:.2}× the real rate"),
                )
            }
            _ => (
                Arc::new(SkewedClock::new(SignedDuration::from_secs(skew))),
                format!("its clock {skew:+}s off"),
            ),
        }
    }

    /// The metrics of an elector that has shut down are balanced.
    #[allow(clippy::float_cmp)] // counts of terms: whole numbers, exact in an f64
    fn check_metrics(&self, client: &str, identity: &str) {
        let (_, registry) = self
            .registries
            .iter()
            .find(|(id, _)| id == client)
            .expect("a registry per elector");
        let scrape = Scrape::of(registry);
        let series = |metric: &str, extra: &str| {
            scrape
                .value(&format!("{metric}{{name=\"{}\"{extra}}}", self.lease))
                .unwrap_or(0.0)
        };
        let transitions = "leader_election_transitions_total";
        let started = series(transitions, ",transition=\"started_leading\"");
        let stopped = series(transitions, ",transition=\"stopped_leading\"");
        let status = series("leader_election_master_status", "");
        let recorded = self
            .recorder
            .intervals()
            .iter()
            .filter(|i| i.who == client)
            .count();
        #[allow(clippy::cast_precision_loss)] // a handful of terms
        let recorded = recorded as f64;
        assert!(
            started == stopped && status == 0.0 && started >= recorded,
            "{identity} shut down with unbalanced metrics: {started} terms started, {stopped} \
             ended, status {status}, {recorded} terms recorded\n{}\n{}",
            self.log,
            scrape.text()
        );
    }

    /// The client of the elector that leads, if one does.
    fn leader(&self) -> Option<String> {
        self.electors
            .iter()
            .find(|(_, e)| e.is_leader())
            .map(|(client, _)| client.clone())
            .or_else(|| {
                self.client_go_label()
                    .filter(|label| self.recorder.is_leading(label))
            })
    }

    /// The label of the running client-go candidate, if any.
    fn client_go_label(&self) -> Option<String> {
        self.client_go
            .as_ref()
            .and_then(ClientGoPeer::label)
            .map(str::to_owned)
    }

    /// How many candidates there are to pick from: the electors, and
    /// client-go's (last) if it runs.
    fn candidates(&self) -> u64 {
        self.electors.len() as u64 + u64::from(self.client_go_label().is_some())
    }

    /// The client of an elector (or of the observer, if one runs) picked at
    /// random.
    fn pick(&mut self) -> String {
        let with_observer = u64::from(self.observer.is_some());
        let i = usize::try_from(self.rng.below(self.candidates() + with_observer)).unwrap();
        if with_observer == 1 && i == usize::try_from(self.candidates()).unwrap() {
            return OBSERVER.to_owned();
        }
        match self.electors.get(i) {
            Some((client, _)) => client.clone(),
            None => self
                .client_go_label()
                .expect("client-go is the last candidate"),
        }
    }

    /// The holder the Lease records now, through the admin client.
    async fn holder(&self, api: &Api<Lease>) -> Option<(String, Lease)> {
        let lease = api.get(&self.lease).await.ok()?;
        let holder = lease.spec.as_ref()?.holder_identity.clone()?;
        Some((holder, lease))
    }

    async fn step(&mut self, api: &Api<Lease>) {
        let target = |id: String| FaultTarget::Client(process_of(&id));
        let hold = self.rng.millis(300, 2500);
        let kind = self.rng.below(18);
        match kind {
            0 => {
                let ms = self.rng.millis(50, 600);
                self.note(&format!("latency {ms:?} for all, {hold:?}"));
                let how = self.faults.set_latency(FaultTarget::All, ms);
                self.explain(how);
                tokio::time::sleep(hold).await;
            }
            1 => {
                self.note(&format!("5xx burst (rate 0.6) for all, {hold:?}"));
                let how = self.faults.set_error_rate(FaultTarget::All, 0.6);
                self.explain(how);
                tokio::time::sleep(hold).await;
            }
            2 => {
                let who = self.leader().unwrap_or_else(|| self.pick());
                self.note(&format!("partition {who}, {hold:?}"));
                let how = self.faults.partition(target(who.clone()));
                self.explain(how);
                tokio::time::sleep(hold).await;
                let how = self.faults.heal(target(who));
                self.explain(how);
            }
            3 => {
                let who = self.pick();
                self.note(&format!("pause {who} (requests hang), {hold:?}"));
                let how = self.faults.hang(target(who.clone()));
                self.explain(how);
                tokio::time::sleep(hold).await;
                let how = self.faults.release(target(who));
                self.explain(how);
            }
            4 => {
                let who = self.pick();
                self.note(&format!("refuse connections of {who}, {hold:?}"));
                let how = self.faults.refuse_connections(target(who.clone()), true);
                self.explain(how);
                tokio::time::sleep(hold).await;
                let how = self.faults.refuse_connections(target(who), false);
                self.explain(how);
            }
            5 if self.deleted_at.is_some_and(|d| d.elapsed() < SLOW.0) => {
                self.note(&format!(
                    "calm (no restart right after a deletion), {hold:?}"
                ));
                tokio::time::sleep(hold).await;
            }
            5 => self.restart().await,
            6 if self.spawned_at.is_some_and(|s| s.elapsed() < SLOW.0) => {
                self.note(&format!("calm (no deletion right after a start), {hold:?}"));
                tokio::time::sleep(hold).await;
            }
            6 if self.client_go.is_some() => self.delete_client_gos_lease(api).await,
            6 => {
                self.note("delete the Lease");
                let _ = api.delete(&self.lease, &DeleteParams::default()).await;
                self.deleted_at = Some(Instant::now());
            }
            7 => {
                // The intruder's record states the holder's own duration
                // when client-go holds: client-go keeps its term whatever
                // the record says (as for the duration edit of step 14), so
                // a shorter one would let the others in before its term
                // ends; that is client-go's rule, not the property tested.
                let holder = self.holder(api).await.map(|(holder, _)| holder);
                let client_go_holds = holder.is_some() && holder == self.client_go_label();
                let duration = if client_go_holds {
                    CLIENT_GO_LEASE
                } else {
                    LEASE
                };
                self.note(&format!(
                    "forced takeover by an outside writer (its record: {duration:?})"
                ));
                if let Ok(mut lease) = api.get(&self.lease).await {
                    let spec = lease.spec.get_or_insert_with(Default::default);
                    spec.holder_identity = Some("intruder".into());
                    spec.lease_duration_seconds =
                        Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX));
                    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
                    let _ = api
                        .replace(&self.lease, &PostParams::default(), &lease)
                        .await;
                }
            }
            8..=14 => self.newer_fault(kind, hold, api).await,
            15 => self.handover_under_fault(hold).await,
            16 if matches!(self.faults, Backend::Embedded(_)) => self.restart_server(hold).await,
            _ => {
                self.note(&format!("calm, {hold:?}"));
                tokio::time::sleep(hold).await;
            }
        }
        self.faults.clear_faults();
    }

    /// As kube-apiserver on SIGTERM and a restart: no answers, open watches
    /// silent, then every version served before expired (410 on resume).
    async fn restart_server(&mut self, hold: Duration) {
        let linger = self.rng.millis(100, 1500);
        self.note(&format!(
            "the server stops gracefully (watches linger {linger:?}) for {hold:?}, then restarts"
        ));
        if let Backend::Embedded(server) = &self.faults {
            server.stop_gracefully(linger);
            tokio::time::sleep(hold).await;
            server.restart();
        }
    }

    /// The observer sent no write through all the faults, and names the
    /// leader the electors agree on once they are calm (by `deadline`,
    /// plus a lease: it may have seen the last leader's record just
    /// before a crash, and waits it out as followers do).
    async fn check_observer(&self, deadline: Instant) {
        let (Some(observer), Backend::Embedded(server)) = (&self.observer, &self.faults) else {
            return;
        };
        let counts = server.requests();
        let writes: u64 = [Verb::Create, Verb::Update, Verb::Patch, Verb::Delete]
            .into_iter()
            .map(|verb| counts.get(OBSERVER, verb))
            .sum();
        assert_eq!(writes, 0, "the observer wrote\n{}", self.log);
        let Some(leader) = self
            .electors
            .iter()
            .find(|(_, e)| e.is_leader())
            .map(|(_, e)| e.identity().to_owned())
        else {
            return; // client-go leads
        };
        let names_leader =
            |s: &kube_elector::LeaderState| s.leader.as_deref() == Some(leader.as_str());
        let mut state = observer.subscribe();
        let named = tokio::time::timeout_at(deadline + LEASE, state.wait_for(names_leader)).await;
        assert!(
            named.is_ok(),
            "the observer names {:?}, not the leader {leader}, after the faults stopped\n{}",
            observer.leader(),
            self.log
        );
    }

    /// A directed handover by the leader while one fault is in force: the
    /// named successor (or the next in line) partitioned, its watch late,
    /// silent or failing, its reads stale, or the leader's write answers
    /// lost or its requests slow. The handover runs to its end (or a lease
    /// and a half) inside the fault; the recorder checks the terms as ever.
    async fn handover_under_fault(&mut self, hold: Duration) {
        let target = |id: &str| FaultTarget::Client(process_of(id));
        let Some(leader) = self.electors.iter().position(|(_, e)| e.is_leader()) else {
            self.note(&format!(
                "calm (no kube-elector leads to hand over), {hold:?}"
            ));
            tokio::time::sleep(hold).await;
            return;
        };
        let leader_label = self.electors[leader].0.clone();
        let others: Vec<(String, String)> = self
            .electors
            .iter()
            .filter(|(label, e)| {
                *label != leader_label && e.identity() != self.electors[leader].1.identity()
            })
            .map(|(label, e)| (label.clone(), e.identity().to_owned()))
            .collect();
        let named = if others.is_empty() || self.rng.below(3) == 0 {
            None
        } else {
            let i = usize::try_from(self.rng.below(others.len() as u64)).unwrap();
            Some(others[i].clone())
        };
        let victim = named
            .as_ref()
            .map_or_else(|| self.pick(), |(label, _)| label.clone());
        let fault = self.rng.below(8);
        let (what, how) = match fault {
            0 => ("partitioned", self.faults.partition(target(&victim))),
            1 => (
                "watch 300ms late",
                self.faults
                    .delay_watch(target(&victim), Duration::from_millis(300)),
            ),
            2 => (
                "watch silent",
                self.faults.black_hole_watch(target(&victim), true),
            ),
            3 => (
                "watch failing",
                self.faults.fail_watch(target(&victim), true),
            ),
            4 => (
                "reads stale",
                self.faults.stale_reads(target(&victim), true),
            ),
            5 => ("requests hang", self.faults.hang(target(&victim))),
            6 => (
                "(the leader's) write answers lost",
                self.faults.lose_write_answers(target(&leader_label), true),
            ),
            _ => (
                "(all) 200ms latency",
                self.faults
                    .set_latency(FaultTarget::All, Duration::from_millis(200)),
            ),
        };
        let successor = match &named {
            Some((_, identity)) => Successor::Named(identity.clone()),
            None => Successor::Any,
        };
        self.note(&format!(
            "{leader_label} hands over to {} while {victim} is {what}",
            named.as_ref().map_or("anyone", |(_, id)| id.as_str()),
        ));
        self.explain(how);
        let outcome = tokio::time::timeout(
            LEASE + LEASE / 2,
            self.electors[leader].1.hand_over(successor),
        )
        .await;
        self.note(&format!("  handover: {outcome:?}"));
        tokio::time::sleep(hold.min(LEASE)).await;
        if fault == 5 {
            let how = self.faults.release(target(&victim));
            self.explain(how);
        }
    }

    /// A restart of a candidate: graceful, or a crash (no release).
    async fn restart(&mut self) {
        // A restart: graceful, or a crash (no release).
        let i = usize::try_from(self.rng.below(self.candidates())).unwrap();
        let graceful = self.rng.below(2) == 0;
        if i == self.electors.len() {
            let label = self
                .client_go_label()
                .expect("client-go is the last candidate");
            self.note(&format!(
                "restart {label} ({})",
                if graceful {
                    "graceful: SIGTERM"
                } else {
                    "crash: SIGKILL"
                }
            ));
            self.stop_client_go(graceful).await;
            self.spawn_client_go().await;
            return;
        }
        let (client, old) = self.electors.remove(i);
        self.note(&format!(
            "restart {client} ({})",
            if graceful { "graceful" } else { "crash" }
        ));
        if graceful {
            let identity = old.identity().to_owned();
            let _ = old.shutdown().await;
            self.check_metrics(&client, &identity);
        } else {
            // The task ends without releasing; the Lease expires on its own.
            old.cancellation_token().cancel();
            let _ = tokio::time::timeout(LEASE, old.join()).await;
        }
        self.spawn();
    }

    /// A deletion when client-go is among the candidates.
    async fn delete_client_gos_lease(&mut self, api: &Api<Lease>) {
        // client-go creates a missing Lease at once and leads, while
        // a deleted kube-elector holder leads to its renew deadline
        // (deleting a live Lease is outside the Lease contract): only
        // client-go's own Lease is deleted, conditionally.
        let label = self.client_go_label();
        match self.holder(api).await {
            Some((holder, lease)) if Some(&holder) == label.as_ref() => {
                self.note(&format!("delete the Lease (held by {holder})"));
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        resource_version: lease.metadata.resource_version,
                        uid: None,
                    }),
                    ..DeleteParams::default()
                };
                let _ = api.delete(&self.lease, &params).await;
                self.deleted_at = Some(Instant::now());
            }
            _ => self.note("no deletion: client-go would recreate a kube-elector's Lease at once"),
        }
    }

    /// The faults of the adversarial fault model: late, silent and failing
    /// watches, lost and late answers, stale reads, outside duration edits.
    async fn newer_fault(&mut self, kind: u64, hold: Duration, api: &Api<Lease>) {
        let target = |id: String| FaultTarget::Client(process_of(&id));
        match kind {
            8 => {
                let who = self.pick();
                let lag = self.rng.millis(100, 800);
                self.note(&format!("watch of {who} {lag:?} late, {hold:?}"));
                let how = self.faults.delay_watch(target(who), lag);
                self.explain(how);
                tokio::time::sleep(hold).await;
            }
            9 => {
                let who = self.pick();
                self.note(&format!("watch of {who} delivers nothing, {hold:?}"));
                let how = self.faults.black_hole_watch(target(who), true);
                self.explain(how);
                tokio::time::sleep(hold).await;
            }
            10 => {
                let who = self.pick();
                self.note(&format!(
                    "watch of {who} errors after every connect, {hold:?}"
                ));
                let how = self.faults.fail_watch(target(who), true);
                self.explain(how);
                tokio::time::sleep(hold).await;
            }
            11 => {
                let who = self.leader().unwrap_or_else(|| self.pick());
                self.note(&format!("answers to writes of {who} are lost, {hold:?}"));
                let how = self.faults.lose_write_answers(target(who), true);
                self.explain(how);
                tokio::time::sleep(hold).await;
            }
            12 => {
                let who = self.pick();
                let late = self.rng.millis(100, 900);
                self.note(&format!(
                    "answers to writes of {who} {late:?} late, {hold:?}"
                ));
                let how = self.faults.delay_write_answers(target(who), late);
                self.explain(how);
                tokio::time::sleep(hold).await;
            }
            13 => {
                let who = self.pick();
                self.note(&format!(
                    "reads of {who} served from a stale cache, {hold:?}"
                ));
                let how = self.faults.stale_reads(target(who), true);
                self.explain(how);
                tokio::time::sleep(hold).await;
            }
            14 => {
                // No watch lag is in force here (faults are cleared after
                // every step), so the edit is longer than any lag.
                let holder = self.holder(api).await.map(|(holder, _)| holder);
                if holder.is_some() && holder == self.client_go_label() {
                    // client-go keeps its term whatever the record says (a
                    // rule kube-elector adds, DESIGN.md 6).
                    self.note("no outside duration edit: client-go holds the Lease");
                    return;
                }
                self.note("outside edit: leaseDurationSeconds 1");
                if let Ok(mut lease) = api.get(&self.lease).await {
                    lease
                        .spec
                        .get_or_insert_with(Default::default)
                        .lease_duration_seconds = Some(1);
                    let _ = api
                        .replace(&self.lease, &PostParams::default(), &lease)
                        .await;
                }
            }
            _ => unreachable!("kinds 8 to 14"),
        }
    }
}

/// The client a label's faults are aimed at: in a crowd, its process's.
fn process_of(label: &str) -> String {
    label.split('#').next().unwrap_or(label).to_owned()
}

// === A run ===

/// What one run is made of.
pub struct Run {
    pub seed: u64,
    pub duration: Duration,
    pub faults: Backend,
    /// The outside writers' client (never faulty).
    pub admin: kube::Client,
    /// In a crowd: each process's hub.
    pub hubs: Vec<(String, LeaseHub)>,
    /// How many kube-electors to start.
    pub electors: usize,
    pub client_go: Option<ClientGoPeer>,
}

/// What a run saw.
#[derive(Debug)]
pub struct Report {
    /// Terms in all, and client-go's among them.
    pub terms: usize,
    pub client_go_terms: usize,
    /// Schedule steps taken.
    pub steps: usize,
    /// From the end of the faults to the first leader after them (zero if
    /// one led throughout).
    pub leader_after_faults: Duration,
    pub elapsed: Duration,
}

/// Runs the schedule from `run.seed` for `run.duration`, then stops the
/// faults: panics (printing the seed and the log) if two candidates ever
/// believed they led at once, or if no leader is back within the longest
/// lease duration plus a retry period (and slack) after the faults stopped.
pub async fn run(run: Run) -> Report {
    let seed = run.seed;
    let api: Api<Lease> = Api::namespaced(run.admin, "default");
    let mut chaos = Chaos {
        faults: run.faults,
        client_go: run.client_go,
        lease: crate::support::unique_name("chaos"),
        recorder: Recorder::default(),
        hubs: run.hubs,
        electors: Vec::new(),
        registries: Vec::new(),
        spawned: 0,
        log: String::new(),
        started: Instant::now(),
        rng: Rng(seed.max(1)),
        deleted_at: None,
        spawned_at: None,
        observer: None,
    };
    for _ in 0..run.electors {
        chaos.spawn();
    }
    if let Backend::Embedded(server) = &chaos.faults {
        let config = crate::support::observer_of(&chaos.lease, RENEW_DEADLINE, RETRY);
        let observer = LeaderObserver::new(server.client_for(OBSERVER), config).unwrap();
        chaos.observer = Some(observer.spawn());
    }
    chaos.spawn_client_go().await;
    // The longest lease and retry period any candidate may have.
    let longest = if chaos.client_go.is_some() {
        CLIENT_GO_LEASE.max(SLOW.0)
    } else {
        SLOW.0
    };
    let end = Instant::now() + run.duration;
    let mut steps = 0;
    while Instant::now() < end {
        chaos.step(&api).await;
        steps += 1;
        if let Some(overlap) = chaos.recorder.overlap() {
            panic!("seed {seed}: two leaders at once\n{}\n{overlap}", chaos.log);
        }
    }
    chaos.note("faults stop");
    let calm = Instant::now();
    let deadline = calm + longest + SLOW.2 + SLACK;
    assert!(
        chaos.recorder.wait_leading(deadline).await,
        "seed {seed}: no leader {:?} after the faults stopped\n{}\nterms: {:#?}",
        calm.elapsed(),
        chaos.log,
        chaos.recorder.intervals()
    );
    let leader_after_faults = calm.elapsed();
    chaos.check_observer(deadline).await;
    for (client, e) in std::mem::take(&mut chaos.electors) {
        let identity = e.identity().to_owned();
        let _ = e.shutdown().await;
        chaos.check_metrics(&client, &identity);
    }
    chaos.stop_client_go(true).await;
    if let Some(overlap) = chaos.recorder.overlap() {
        panic!("seed {seed}: two leaders at once\n{}\n{overlap}", chaos.log);
    }
    if std::env::var_os("KUBE_ELECTOR_CHAOS_LOG").is_some() {
        eprintln!("seed {seed}: the log\n{}", chaos.log);
    }
    let intervals = chaos.recorder.intervals();
    Report {
        terms: intervals.len(),
        client_go_terms: intervals
            .iter()
            .filter(|i| i.who.starts_with("client-go-"))
            .count(),
        steps,
        leader_after_faults,
        elapsed: chaos.started.elapsed(),
    }
}
