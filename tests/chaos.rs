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
//! answers to writes, stale reads, a graceful stop and restart of the
//! server (watches silent, then 410 on resume), a directed handover while
//! one fault hits the leader or its successor; wall clocks skewed, frozen or running at
//! the wrong rate; now and then two electors sharing one identity; and one
//! elector in three with other settings (lease 3 s, renew deadline 2 s,
//! retry 400 ms, where the others have 2 s, 1 s and 250 ms).
//!
//! An observer rides along (a target of the faults like the electors): it
//! must send no write, and name the leader once the faults stop.
//!
//! Every elector also keeps metrics and records Kubernetes Events through the
//! same faulty client: neither may disturb leadership, and an elector that
//! shut down has balanced its metrics (as many terms ended as started, the
//! status back to 0, no fewer terms than the recorder saw).
//!
//! The schedule itself is `tests/support/chaos_schedule.rs`, shared with
//! `tests/real_faults.rs`, which runs it against a real kube-apiserver
//! through a TCP fault proxy.
//!
//! The default suite runs one short schedule. `KUBE_ELECTOR_CHAOS=long` runs
//! many seeds for minutes each (CI does); `KUBE_ELECTOR_CHAOS_SEED=N` replays
//! one seed. A failure prints the seed and the log of what was done.

#[path = "support/chaos_schedule.rs"]
mod chaos_schedule;
mod support;

use std::time::Duration;

use kube_elector::hub::LeaseHub;
use kube_elector_testing::LeaseApiServer;

use chaos_schedule::{Backend, Run};

/// How many electors a run starts: five alone, or a crowd of `per_process`
/// in each of three processes.
#[derive(Clone, Copy, Debug)]
enum Cast {
    Alone,
    Crowd { per_process: usize },
}

async fn run(seed: u64, duration: Duration, cast: Cast) {
    let server = LeaseApiServer::start().await.unwrap();
    let admin = server.client_for("chaos-admin");
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
    let report = chaos_schedule::run(Run {
        seed,
        duration,
        faults: Backend::Embedded(server),
        admin,
        hubs,
        electors,
        client_go: None,
    })
    .await;
    eprintln!(
        "seed {seed} ({cast:?}): {} terms over {:?}, no overlap",
        report.terms, report.elapsed
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

// === Sharding ===

/// The sharded elector's timings in the sharding schedule.
const SHARD_LEASE: Duration = Duration::from_secs(4);

/// One sharding schedule: replicas (their wall clocks skewed by up to a
/// minute) join, leave gracefully, crash, are partitioned, have their
/// namespace watch broken (connected but silent, or erroring after every
/// connect) or late, their requests slow, hung or failing, their write
/// answers lost or late, their reads stale; the server stops gracefully and
/// restarts (410 on resume); halfway through, the replicas that join use
/// another shard count (a rolling change of count). Checked
/// per key, from every replica's owned shards and its own count: no key is
/// owned by two replicas at any instant; once the faults stop, every key
/// is owned again.
#[allow(clippy::too_many_lines)] // one schedule, read top to bottom
async fn sharding_run(seed: u64, duration: Duration) {
    use std::fmt::Write as _;

    use kube_elector::shard::{ShardConfig, ShardedElector, ShardedHandle};
    use kube_elector_testing::FaultTarget;
    use support::shard_keys::{self, KeyRecorder};
    use tokio::time::Instant;

    let server = LeaseApiServer::start().await.unwrap();
    let prefix = support::unique_name("chaos-shard");
    let keys = shard_keys::keys(256);
    let recorder = KeyRecorder::default();
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    };
    let mut log = String::new();
    let started = Instant::now();
    let mut replicas: Vec<(String, ShardedHandle)> = Vec::new();
    let mut crashed: Vec<ShardedHandle> = Vec::new();
    let mut faulty: Vec<String> = Vec::new();
    let mut spawned = 0;
    let mut count = 8;
    // Wall clocks skewed by up to a minute either way: they write the
    // member terms' `acquireTime`, which decides who keeps serving in a
    // disagreement of counts.
    let join = |id: &str, count: u32, skew: i64, replicas: &mut Vec<(String, ShardedHandle)>| {
        let hub = LeaseHub::new(server.client_for(id));
        let clock = std::sync::Arc::new(kube_elector::clock::SkewedClock::new(
            jiff::SignedDuration::from_secs(skew),
        ));
        let config = ShardConfig::new(
            kube_elector::ElectorConfig::new(&prefix)
                .clock(clock)
                .namespace("default")
                .identity(id)
                .lease_duration(SHARD_LEASE)
                .renew_deadline(Duration::from_secs(3))
                .retry_period(Duration::from_millis(500))
                .drain_timeout(Duration::from_millis(500)),
            count,
        );
        let handle = ShardedElector::in_hub(&hub, config).unwrap().spawn();
        recorder.watch(handle.subscribe(), id, count);
        replicas.push((id.to_owned(), handle));
    };
    for _ in 0..3 {
        spawned += 1;
        let skew = i64::try_from(next(121)).unwrap() - 60;
        join(&format!("r{spawned}"), count, skew, &mut replicas);
    }
    // Lifts every fault aimed at `id`.
    let lift = |id: &str| {
        let target = || FaultTarget::Client(id.to_owned());
        server.heal(target());
        server.release(target());
        server.black_hole_watch(target(), false);
        server.fail_watch(target(), false);
        server.set_latency(target(), Duration::ZERO);
        server.delay_watch(target(), Duration::ZERO);
        server.lose_write_answers(target(), false);
        server.delay_write_answers(target(), Duration::ZERO);
        server.stale_reads(target(), false);
        server.set_error_rate(target(), 0.0);
    };
    while started.elapsed() < duration {
        let at = started.elapsed().as_secs_f64();
        if count == 8 && started.elapsed() >= duration / 2 {
            count = 12;
            let _ = writeln!(
                log,
                "{at:7.3}s replicas that join from now on have 12 shards"
            );
        }
        let n = replicas.len() as u64;
        let pick = |k: u64| replicas[usize::try_from(k).unwrap()].0.clone();
        match next(15) {
            0 if n < 5 => {
                spawned += 1;
                let id = format!("r{spawned}");
                let skew = i64::try_from(next(121)).unwrap() - 60;
                let _ = writeln!(
                    log,
                    "{at:7.3}s join {id} ({count} shards, clock {skew:+} s)"
                );
                join(&id, count, skew, &mut replicas);
            }
            1 if n > 1 => {
                let id = pick(next(n));
                let _ = writeln!(log, "{at:7.3}s graceful leave of {id}");
                lift(&id);
                faulty.retain(|f| f != &id);
                let i = replicas.iter().position(|(r, _)| *r == id).unwrap();
                tokio::spawn(replicas.remove(i).1.shutdown());
            }
            2 if n > 1 => {
                let id = pick(next(n));
                let _ = writeln!(log, "{at:7.3}s crash of {id}");
                server.partition(FaultTarget::Client(id.clone()));
                faulty.retain(|f| f != &id);
                let i = replicas.iter().position(|(r, _)| *r == id).unwrap();
                crashed.push(replicas.remove(i).1);
            }
            3 => {
                let id = pick(next(n));
                let _ = writeln!(log, "{at:7.3}s partition {id}");
                server.partition(FaultTarget::Client(id.clone()));
                faulty.push(id);
            }
            4 => {
                let id = pick(next(n));
                let _ = writeln!(log, "{at:7.3}s silent watch for {id}");
                server.black_hole_watch(FaultTarget::Client(id.clone()), true);
                faulty.push(id);
            }
            5 => {
                let id = pick(next(n));
                let _ = writeln!(log, "{at:7.3}s erroring watch for {id}");
                server.fail_watch(FaultTarget::Client(id.clone()), true);
                faulty.push(id);
            }
            6 => {
                let id = pick(next(n));
                let ms = 100 + next(800);
                let _ = writeln!(log, "{at:7.3}s latency {ms} ms for {id}");
                server.set_latency(FaultTarget::Client(id.clone()), Duration::from_millis(ms));
                faulty.push(id);
            }
            7 => {
                let id = pick(next(n));
                let ms = 100 + next(1500);
                let _ = writeln!(log, "{at:7.3}s watch {ms} ms late for {id}");
                server.delay_watch(FaultTarget::Client(id.clone()), Duration::from_millis(ms));
                faulty.push(id);
            }
            8 => {
                let id = pick(next(n));
                let _ = writeln!(log, "{at:7.3}s write answers lost for {id}");
                server.lose_write_answers(FaultTarget::Client(id.clone()), true);
                faulty.push(id);
            }
            9 => {
                let id = pick(next(n));
                let ms = 100 + next(800);
                let _ = writeln!(log, "{at:7.3}s write answers {ms} ms late for {id}");
                server.delay_write_answers(
                    FaultTarget::Client(id.clone()),
                    Duration::from_millis(ms),
                );
                faulty.push(id);
            }
            10 => {
                let id = pick(next(n));
                let _ = writeln!(log, "{at:7.3}s stale reads and 30% 500s for {id}");
                server.stale_reads(FaultTarget::Client(id.clone()), true);
                server.set_error_rate(FaultTarget::Client(id.clone()), 0.3);
                faulty.push(id);
            }
            11 => {
                let id = pick(next(n));
                let _ = writeln!(log, "{at:7.3}s requests of {id} hang");
                server.hang(FaultTarget::Client(id.clone()));
                faulty.push(id);
            }
            12 => {
                // As kube-apiserver on SIGTERM and a restart: no answers,
                // open watches silent, then 410 on every resume.
                let linger = next(1000);
                let _ = writeln!(
                    log,
                    "{at:7.3}s the server stops gracefully (watches linger {linger} ms), then restarts"
                );
                server.stop_gracefully(Duration::from_millis(linger));
                tokio::time::sleep(Duration::from_millis(200 + next(1300))).await;
                server.restart();
            }
            _ if !faulty.is_empty() => {
                let id = faulty.remove(usize::try_from(next(faulty.len() as u64)).unwrap());
                let _ = writeln!(log, "{at:7.3}s lift the faults of {id}");
                lift(&id);
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(200 + next(1300))).await;
    }
    let _ = writeln!(log, "{:7.3}s faults stop", started.elapsed().as_secs_f64());
    for id in faulty {
        lift(&id);
    }
    let twice = recorder.keys_owned_twice(&keys);
    assert!(
        twice.is_empty(),
        "seed {seed}: keys owned by two replicas at once: {twice:#?}\n{log}"
    );
    // Liveness: every key owned again once the faults stop.
    let unowned = |replicas: &[(String, ShardedHandle)]| {
        keys.iter()
            .filter(|key| !replicas.iter().any(|(_, h)| h.owns_key(key)))
            .count()
    };
    let patience = Duration::from_secs(40);
    let settled = tokio::time::timeout(patience, async {
        while unowned(&replicas) > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "seed {seed}: {} of {} keys unowned {patience:?} after the faults stopped\n{log}",
        unowned(&replicas),
        keys.len()
    );
    let twice = recorder.keys_owned_twice(&keys);
    assert!(
        twice.is_empty(),
        "seed {seed}: keys owned by two replicas at once: {twice:#?}\n{log}"
    );
    eprintln!("seed {seed}: no key owned twice\n{log}");
    drop(crashed);
    for (_, handle) in replicas {
        let _ = handle.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_replicas_never_own_a_key_twice_through_joins_leaves_broken_watches_and_a_change_of_count()
 {
    let (seeds, duration) = match (
        std::env::var("KUBE_ELECTOR_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok()),
        std::env::var("KUBE_ELECTOR_CHAOS").as_deref(),
    ) {
        (Some(seed), _) => (vec![seed], Duration::from_secs(30)),
        (None, Ok("long")) => (
            (1..=8).map(|i| i * 104_729).collect(),
            Duration::from_secs(40),
        ),
        _ => (vec![5, 17], Duration::from_secs(6)),
    };
    for seed in seeds {
        sharding_run(seed, duration).await;
    }
}
