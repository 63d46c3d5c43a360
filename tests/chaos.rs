//! Randomized fault schedules over five electors on the embedded server,
//! and over a crowd: six candidates in each of three processes (hubs).
//!
//! Invariants, checked throughout: no two electors believe they lead at one
//! instant; and once the faults stop, a leader exists within a lease
//! duration plus a retry period.
//!
//! One combination is left out: an elector that starts while the Lease is
//! deleted cannot know it was held, so it creates it at once, while the
//! deleted holder may lead until its renew deadline (client-go behaves the
//! same; deleting a live Lease is outside the Lease contract). Electors that
//! saw the Lease held wait the holder out (`record::judge_missing`). The
//! schedule therefore keeps a lease duration between starting an elector and
//! deleting the Lease, either way round.
//!
//! The faults: latency, 5xx bursts, partitions, hung and refused clients,
//! restarts and crashes, deleted Leases, forced takeovers and duration edits
//! by outside writers, late, silent and failing watches, lost and late
//! answers to writes, stale reads; wall clocks skewed, frozen or running at
//! the wrong rate; and now and then two electors sharing one identity.
//!
//! Every elector also keeps metrics and records Kubernetes Events through the
//! same faulty client: neither may disturb leadership, and an elector that
//! shut down has balanced its metrics (as many terms ended as started, the
//! status back to 0, no fewer terms than the recorder saw).
//!
//! The default suite runs one short schedule. `KUBE_ELECTOR_CHAOS=long` runs
//! many seeds for minutes each (CI does); `KUBE_ELECTOR_CHAOS_SEED=N` replays
//! one seed. A failure prints the seed and the log of what was done.

mod support;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube_elector::{
    ElectorConfig, ElectorHandle, ElectorMetrics, LeaderElector, LeaseHub, SkewedClock, WallClock,
};
use kube_elector_testing::{FaultTarget, LeaseApiServer};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use support::recorder::Recorder;
use support::scrape::Scrape;

const LEASE: Duration = Duration::from_secs(2);
const RENEW_DEADLINE: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_millis(250);
/// Room for scheduling on a loaded two-core CI machine in the liveness check.
const SLACK: Duration = Duration::from_secs(1);

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

struct Chaos {
    server: LeaseApiServer,
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
}

impl Chaos {
    fn note(&mut self, what: &str) {
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
        let (clock, described) = self.clock();
        let config = ElectorConfig::new(&self.lease)
            .namespace("default")
            .identity(&identity)
            .lease_duration(LEASE)
            .renew_deadline(RENEW_DEADLINE)
            .retry_period(RETRY)
            .clock(clock);
        let mut registry = Registry::default();
        let config = config
            .metrics(ElectorMetrics::new(&mut registry))
            .record_events("kube-elector-chaos");
        self.registries.push((client.clone(), registry));
        let elector = match &hub {
            Some((_, hub)) => hub.elector(config),
            None => LeaderElector::new(self.server.client_for(&client), config),
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
    }

    /// The client of an elector picked at random.
    fn pick(&mut self) -> String {
        let i = usize::try_from(self.rng.below(self.electors.len() as u64)).unwrap();
        self.electors[i].0.clone()
    }

    async fn step(&mut self, api: &Api<Lease>) {
        let target = |id: String| FaultTarget::Client(process_of(&id));
        let hold = self.rng.millis(300, 2500);
        let kind = self.rng.below(16);
        match kind {
            0 => {
                let ms = self.rng.millis(50, 600);
                self.note(&format!("latency {ms:?} for all, {hold:?}"));
                self.server.set_latency(FaultTarget::All, ms);
                tokio::time::sleep(hold).await;
            }
            1 => {
                self.note(&format!("5xx burst (rate 0.6) for all, {hold:?}"));
                self.server.set_error_rate(FaultTarget::All, 0.6);
                tokio::time::sleep(hold).await;
            }
            2 => {
                let who = self.leader().unwrap_or_else(|| self.pick());
                self.note(&format!("partition {who}, {hold:?}"));
                self.server.partition(target(who.clone()));
                tokio::time::sleep(hold).await;
                self.server.heal(target(who));
            }
            3 => {
                let who = self.pick();
                self.note(&format!("pause {who} (requests hang), {hold:?}"));
                self.server.hang(target(who.clone()));
                tokio::time::sleep(hold).await;
                self.server.release(target(who));
            }
            4 => {
                let who = self.pick();
                self.note(&format!("refuse connections of {who}, {hold:?}"));
                self.server.refuse_connections(target(who.clone()), true);
                tokio::time::sleep(hold).await;
                self.server.refuse_connections(target(who), false);
            }
            5 if self.deleted_at.is_some_and(|d| d.elapsed() < LEASE) => {
                self.note(&format!(
                    "calm (no restart right after a deletion), {hold:?}"
                ));
                tokio::time::sleep(hold).await;
            }
            5 => {
                // A restart: graceful, or a crash (no release).
                let i = usize::try_from(self.rng.below(self.electors.len() as u64)).unwrap();
                let (client, old) = self.electors.remove(i);
                let graceful = self.rng.below(2) == 0;
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
            6 if self.spawned_at.is_some_and(|s| s.elapsed() < LEASE) => {
                self.note(&format!("calm (no deletion right after a start), {hold:?}"));
                tokio::time::sleep(hold).await;
            }
            6 => {
                self.note("delete the Lease");
                let _ = api.delete(&self.lease, &DeleteParams::default()).await;
                self.deleted_at = Some(Instant::now());
            }
            7 => {
                self.note("forced takeover by an outside writer");
                if let Ok(mut lease) = api.get(&self.lease).await {
                    let spec = lease.spec.get_or_insert_with(Default::default);
                    spec.holder_identity = Some("intruder".into());
                    spec.lease_duration_seconds = Some(2);
                    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
                    let _ = api
                        .replace(&self.lease, &PostParams::default(), &lease)
                        .await;
                }
            }
            8..=14 => self.newer_fault(kind, hold, api).await,
            _ => {
                self.note(&format!("calm, {hold:?}"));
                tokio::time::sleep(hold).await;
            }
        }
        self.server.clear_faults();
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
                self.server.delay_watch(target(who), lag);
                tokio::time::sleep(hold).await;
            }
            9 => {
                let who = self.pick();
                self.note(&format!("watch of {who} delivers nothing, {hold:?}"));
                self.server.black_hole_watch(target(who), true);
                tokio::time::sleep(hold).await;
            }
            10 => {
                let who = self.pick();
                self.note(&format!(
                    "watch of {who} errors after every connect, {hold:?}"
                ));
                self.server.fail_watch(target(who), true);
                tokio::time::sleep(hold).await;
            }
            11 => {
                let who = self.leader().unwrap_or_else(|| self.pick());
                self.note(&format!("answers to writes of {who} are lost, {hold:?}"));
                self.server.lose_write_answers(target(who), true);
                tokio::time::sleep(hold).await;
            }
            12 => {
                let who = self.pick();
                let late = self.rng.millis(100, 900);
                self.note(&format!(
                    "answers to writes of {who} {late:?} late, {hold:?}"
                ));
                self.server.delay_write_answers(target(who), late);
                tokio::time::sleep(hold).await;
            }
            13 => {
                let who = self.pick();
                self.note(&format!(
                    "reads of {who} served from a stale cache, {hold:?}"
                ));
                self.server.stale_reads(target(who), true);
                tokio::time::sleep(hold).await;
            }
            14 => {
                // No watch lag is in force here (faults are cleared after
                // every step), so the edit is longer than any lag.
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

/// How many electors a run starts: five alone, or a crowd of `per_process`
/// in each of three processes.
#[derive(Clone, Copy, Debug)]
enum Cast {
    Alone,
    Crowd { per_process: usize },
}

async fn run(seed: u64, duration: Duration, cast: Cast) {
    let server = LeaseApiServer::start().await.unwrap();
    let api: Api<Lease> = Api::namespaced(server.client_for("chaos-admin"), "default");
    let (hubs, electors) = match cast {
        Cast::Alone => (Vec::new(), 5),
        Cast::Crowd { per_process } => (
            (1..=3)
                .map(|p| {
                    let process = format!("chaos-p{p}");
                    let hub = LeaseHub::new(server.client_for(&process));
                    (process, hub)
                })
                .collect(),
            3 * per_process,
        ),
    };
    let mut chaos = Chaos {
        server,
        lease: support::unique_name("chaos"),
        recorder: Recorder::default(),
        hubs,
        electors: Vec::new(),
        registries: Vec::new(),
        spawned: 0,
        log: String::new(),
        started: Instant::now(),
        rng: Rng(seed.max(1)),
        deleted_at: None,
        spawned_at: None,
    };
    for _ in 0..electors {
        chaos.spawn();
    }
    let end = Instant::now() + duration;
    while Instant::now() < end {
        chaos.step(&api).await;
        if let Some(overlap) = chaos.recorder.overlap() {
            panic!("seed {seed}: two leaders at once\n{}\n{overlap}", chaos.log);
        }
    }
    chaos.note("faults stop");
    let calm = Instant::now();
    let deadline = calm + LEASE + RETRY + SLACK;
    let mut states: Vec<_> = chaos.electors.iter().map(|(_, e)| e.subscribe()).collect();
    while !states.iter().any(|s| s.borrow().is_leader()) {
        let changes = states.iter_mut().map(|s| Box::pin(s.changed()));
        if tokio::time::timeout_at(deadline, futures::future::select_all(changes))
            .await
            .is_err()
        {
            panic!(
                "seed {seed}: no leader {:?} after the faults stopped\n{}",
                calm.elapsed(),
                chaos.log
            );
        }
    }
    for (client, e) in std::mem::take(&mut chaos.electors) {
        let identity = e.identity().to_owned();
        let _ = e.shutdown().await;
        chaos.check_metrics(&client, &identity);
    }
    if let Some(overlap) = chaos.recorder.overlap() {
        panic!("seed {seed}: two leaders at once\n{}\n{overlap}", chaos.log);
    }
    eprintln!(
        "seed {seed} ({cast:?}): {} terms over {:?}, no overlap",
        chaos.recorder.intervals().len(),
        chaos.started.elapsed()
    );
}

fn seeds() -> (Vec<u64>, Duration) {
    if let Some(seed) = std::env::var("KUBE_ELECTOR_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return (vec![seed], Duration::from_secs(30));
    }
    match std::env::var("KUBE_ELECTOR_CHAOS").as_deref() {
        Ok("long") => ((1..=6).map(|i| i * 7919).collect(), Duration::from_secs(60)),
        _ => (vec![42], Duration::from_secs(20)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_faults_never_yield_two_leaders_and_a_leader_returns() {
    let (seeds, duration) = seeds();
    for seed in seeds {
        run(seed, duration, Cast::Alone).await;
    }
}

/// Many candidates per process, sharing a watch and a line through a hub:
/// the herd-free handover (a named successor, the others deferring) under
/// the same faults. Half the seeds and half the time of the plain run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_candidates_in_three_processes_never_yields_two_leaders() {
    let (seeds, duration) = seeds();
    for seed in seeds.into_iter().step_by(2) {
        run(seed, duration / 2, Cast::Crowd { per_process: 6 }).await;
    }
}
