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

use kube_elector::LeaseHub;
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
