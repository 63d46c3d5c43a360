//! kube-elector as a benchmark process, speaking bench/protocol.rs. With
//! `--scale N` it runs N electors on N Leases instead and reports its resident
//! memory and CPU use in steady state as `scale` lines; `--herd N` hands one
//! Lease over among N candidates of one `LeaseHub`, `--many N` leads N Leases
//! through one, `--rtt N` times N GETs of one Lease, `--sharding N` runs one
//! `ShardedElector` of N shards and `--sharding-baseline N` one plain
//! elector per shard Lease, `--controller cold|warm` a leader-gated
//! controller over ConfigMaps (controller.rs; see bench/README.md).

mod controller;
#[path = "../../protocol.rs"]
mod protocol;
mod rtt;

use std::time::Duration;

use futures::StreamExt;
use kube_elector::{
    ElectorConfig, ElectorHandle, LeaderElector, LeaderEvent,
    handover::Successor,
    hub::LeaseHub,
    shard::{ShardConfig, ShardedElector},
};
use tokio::signal::unix::{SignalKind, signal};

pub(crate) const IMPL: &str = "kube-elector";

#[tokio::main]
async fn main() {
    let args = protocol::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kube config");
    let client = kube::Client::try_from(config).expect("client");
    let elector_config = |lease: &str, identity: &str| {
        ElectorConfig::new(lease)
            .namespace(&args.namespace)
            .identity(identity)
            .lease_duration(args.lease_duration)
            .renew_deadline(args.renew_deadline)
            .retry_period(args.retry_period)
    };
    if args.scale > 0 {
        return scale(&args, client, elector_config).await;
    }
    if args.herd > 0 {
        return herd(&args, client, elector_config).await;
    }
    if args.many > 0 {
        return many(&args, client, elector_config).await;
    }
    if args.rtt > 0 {
        return rtt::rtt(&args, client).await;
    }
    if args.sharding > 0 {
        return sharding(&args, client).await;
    }
    if args.sharding_baseline > 0 {
        return sharding_baseline(&args, client, elector_config).await;
    }
    if let Some(mode) = args.controller.as_deref() {
        let warm = match mode {
            "warm" => true,
            "cold" => false,
            other => {
                eprintln!("--controller: cold or warm, not {other}");
                std::process::exit(2);
            }
        };
        let config = elector_config(&args.lease_name, &args.identity);
        return controller::run(&args, client, config, warm).await;
    }
    // The handlers before `ready`: the harness may signal from then on.
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut usr1 = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler");
    protocol::emit(IMPL, &args.identity, "ready", "");
    let handle = LeaderElector::new(client, elector_config(&args.lease_name, &args.identity))
        .expect("valid config")
        .spawn();
    let mut events = handle.events();
    let mut leading = false; // a started_leading line is not closed yet
    // A directed handover asked by SIGUSR1, running beside the events.
    let mut handover: Option<std::pin::Pin<Box<dyn Future<Output = _> + '_>>> = None;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = usr1.recv(), if handover.is_none() => {
                let to = args
                    .handover_file
                    .as_deref()
                    .and_then(|path| std::fs::read_to_string(path).ok())
                    .map(|name| name.trim().to_owned())
                    .filter(|name| !name.is_empty())
                    .map_or(Successor::Any, Successor::Named);
                handover = Some(Box::pin(handle.hand_over(to)));
            }
            outcome = async { handover.as_mut().expect("a handover").await }, if handover.is_some() => {
                handover = None;
                if let Err(error) = outcome {
                    eprintln!("handover failed: {error}");
                }
            }
            event = events.next() => match event {
                Some(LeaderEvent::StartedLeading) => {
                    leading = true;
                    protocol::emit(IMPL, &args.identity, "started_leading", &args.identity);
                }
                Some(LeaderEvent::StoppedLeading) if leading => {
                    leading = false;
                    protocol::emit(IMPL, &args.identity, "stopped_leading", "");
                }
                Some(LeaderEvent::NewLeader { identity }) => {
                    protocol::emit(IMPL, &args.identity, "new_leader", identity.as_deref().unwrap_or(""));
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    drop(handover);
    // The term ends here, before the shutdown starts (the line protocol:
    // stopped_leading before the release). The shutdown's StoppedLeading
    // event can reach this task after the elector's task has released the
    // Lease, so a line printed on it can follow the next leader's start.
    if leading {
        protocol::emit(IMPL, &args.identity, "stopped_leading", "");
    }
    // Cancelling stops leading, then releases; the stream ends with the task.
    let shutdown = tokio::spawn(handle.shutdown());
    while events.next().await.is_some() {}
    let _ = shutdown.await;
    protocol::emit(IMPL, &args.identity, "exited", "");
}

/// N electors on N Leases (each alone on its Lease, so each leads and
/// renews): memory and CPU in steady state.
async fn scale(
    args: &protocol::Args,
    client: kube::Client,
    config: impl Fn(&str, &str) -> ElectorConfig,
) {
    let handles: Vec<_> = (0..args.scale)
        .map(|i| {
            let lease = format!("{}-{i}", args.lease_name);
            LeaderElector::new(
                client.clone(),
                config(&lease, &format!("{}-{i}", args.identity)),
            )
            .expect("valid config")
            .spawn()
        })
        .collect();
    for h in &handles {
        let _ = tokio::time::timeout(Duration::from_secs(60), h.became_leader()).await;
    }
    // Settle, then measure over a window of two lease durations.
    tokio::time::sleep(args.lease_duration / 2).await;
    let window = args.lease_duration * 2;
    let (cpu0, t0) = (cpu_seconds(), std::time::Instant::now());
    tokio::time::sleep(window).await;
    let cpu = (cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
    let leading = handles.iter().filter(|h| h.is_leader()).count();
    println!(
        "{{\"event\":\"scale\",\"electors\":{},\"leading\":{leading},\"rss_kib\":{},\"cpu_share\":{cpu:.4}}}",
        args.scale,
        rss_kib()
    );
    for h in handles {
        let _ = h.shutdown().await;
    }
}

/// How long any one wait of a benchmark mode may take.
const PATIENCE: Duration = Duration::from_secs(120);

/// Waits until `handle` sees `leader` lead.
async fn sees(handle: &ElectorHandle, leader: &str) {
    let mut state = handle.subscribe();
    tokio::time::timeout(
        PATIENCE,
        state.wait_for(|s| s.leader.as_deref() == Some(leader)),
    )
    .await
    .expect("every candidate sees the leader in time")
    .expect("the elector runs");
}

/// N candidates of one hub on one Lease; each round, the leader shuts down
/// gracefully and the time until the next one leads is reported, while the
/// harness counts the requests in between.
async fn herd(
    args: &protocol::Args,
    client: kube::Client,
    config: impl Fn(&str, &str) -> ElectorConfig,
) {
    let hub = LeaseHub::new(client);
    let spawn = |i: usize| {
        hub.elector(config(&args.lease_name, &format!("{}-{i}", args.identity)))
            .expect("valid config")
            .spawn()
    };
    let mut candidates: Vec<ElectorHandle> = (0..args.herd).map(spawn).collect();
    for round in 0..args.rounds {
        let leader = {
            let leads = candidates.iter().map(|c| Box::pin(c.became_leader()));
            let (leadership, _, _) =
                tokio::time::timeout(PATIENCE, futures::future::select_all(leads))
                    .await
                    .expect("a candidate leads in time");
            leadership.expect("it leads").identity().to_owned()
        };
        for c in &candidates {
            sees(c, &leader).await;
        }
        protocol::step(&format!(
            "{{\"event\":\"herd_ready\",\"round\":{round},\"leader\":{}}}",
            protocol::quote(&leader)
        ));
        let i = candidates
            .iter()
            .position(|c| c.identity() == leader)
            .expect("the leader is a candidate");
        let old = candidates.remove(i);
        // One task per candidate, each woken by its own state only (a
        // select over a thousand futures would poll them all at every change).
        let (first_tx, mut first) = tokio::sync::mpsc::unbounded_channel();
        let watchers: Vec<_> = candidates
            .iter()
            .map(|c| {
                let (view, first_tx) = (c.view(), first_tx.clone());
                tokio::spawn(async move {
                    if let Ok(leadership) = view.became_leader().await {
                        let _ = first_tx.send((
                            tokio::time::Instant::now(),
                            leadership.identity().to_owned(),
                        ));
                    }
                })
            })
            .collect();
        let started = tokio::time::Instant::now();
        let shutdown = tokio::spawn(old.shutdown());
        let (at, new) = tokio::time::timeout(PATIENCE, first.recv())
            .await
            .expect("a new leader in time")
            .expect("a candidate leads");
        let took = at - started;
        for watcher in watchers {
            watcher.abort();
        }
        for c in &candidates {
            sees(c, &new).await;
        }
        let _ = shutdown.await;
        protocol::step(&format!(
            "{{\"event\":\"herd_handover\",\"round\":{round},\"ms\":{:.3},\"leader\":{}}}",
            took.as_secs_f64() * 1000.0,
            protocol::quote(&new)
        ));
        candidates.push(spawn(args.herd + round));
    }
    println!("{{\"event\":\"herd_done\"}}");
    futures::future::join_all(candidates.into_iter().map(ElectorHandle::shutdown)).await;
}

/// N Leases, each with one elector, all through one hub (one watch of the
/// namespace): memory, CPU and, counted by the harness, requests and
/// watches in steady state.
async fn many(
    args: &protocol::Args,
    client: kube::Client,
    config: impl Fn(&str, &str) -> ElectorConfig,
) {
    let hub = LeaseHub::new(client);
    let handles: Vec<_> = (0..args.many)
        .map(|i| {
            hub.elector(config(
                &format!("{}-{i}", args.lease_name),
                &format!("{}-{i}", args.identity),
            ))
            .expect("valid config")
            .spawn()
        })
        .collect();
    for h in &handles {
        let _ = tokio::time::timeout(Duration::from_secs(600), h.became_leader()).await;
    }
    // Settle: the first renews of every term (spread over a retry period).
    tokio::time::sleep(args.retry_period).await;
    protocol::step(&format!(
        "{{\"event\":\"many_ready\",\"electors\":{}}}",
        args.many
    ));
    let (cpu0, t0) = (cpu_seconds(), std::time::Instant::now());
    tokio::time::sleep(args.window).await;
    let cpu = (cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
    let leading = handles.iter().filter(|h| h.is_leader()).count();
    protocol::step(&format!(
        "{{\"event\":\"many\",\"electors\":{},\"leading\":{leading},\"rss_kib\":{},\"cpu_share\":{cpu:.4}}}",
        args.many,
        rss_kib()
    ));
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        futures::future::join_all(handles.into_iter().map(ElectorHandle::shutdown)),
    )
    .await;
}

/// One replica of a `ShardedElector` of `--sharding` shards, prefix
/// `--lease-name`: a `shard_acquired` / `shard_released` line per term of
/// each shard it owns, printed by the shard's work (`run_per_shard`) while
/// it holds the term's guard, so a shard's `shard_released` line is out
/// before its handover releases the Lease. SIGTERM makes it leave
/// gracefully (member Lease released, every shard handed to its next
/// owner once its work returned).
async fn sharding(args: &protocol::Args, client: kube::Client) {
    let config = ShardConfig::new(
        ElectorConfig::new(&args.lease_name)
            .namespace(&args.namespace)
            .identity(&args.identity)
            .lease_duration(args.lease_duration)
            .renew_deadline(args.renew_deadline)
            .retry_period(args.retry_period),
        args.sharding,
    );
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    protocol::emit(IMPL, &args.identity, "ready", "");
    let leave = tokio_util::sync::CancellationToken::new();
    let handle = ShardedElector::new(client, config)
        .expect("valid config")
        .spawn_with_token(&leave);
    let identity = args.identity.as_str();
    {
        let work = handle.run_per_shard(|shard, leadership| async move {
            protocol::emit_shard(IMPL, identity, "shard_acquired", shard);
            leadership.lost().await;
            protocol::emit_shard(IMPL, identity, "shard_released", shard);
            drop(leadership); // now the handover may release the Lease
        });
        tokio::pin!(work);
        tokio::select! {
            _ = term.recv() => {
                leave.cancel();
                // Every shard's work returns as its term ends; then it ends.
                work.await;
            }
            () = &mut work => {}
        }
    }
    let _ = handle.shutdown().await;
    protocol::emit(IMPL, &args.identity, "exited", "");
}

/// The knative-style baseline: one plain elector per shard Lease
/// `<lease-name>-<shard>`, all through one `LeaseHub` (one watch of the
/// namespace), each campaigning for its shard whatever the others own (no
/// membership, no balancing). Prints the lines of `sharding`. On SIGTERM
/// the terms end (lines printed) before the electors shut down and release.
async fn sharding_baseline(
    args: &protocol::Args,
    client: kube::Client,
    config: impl Fn(&str, &str) -> ElectorConfig,
) {
    let hub = LeaseHub::new(client);
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    protocol::emit(IMPL, &args.identity, "ready", "");
    let handles: Vec<ElectorHandle> = (0..args.sharding_baseline)
        .map(|shard| {
            hub.elector(config(
                &format!("{}-{shard}", args.lease_name),
                &args.identity,
            ))
            .expect("valid config")
            .spawn()
        })
        .collect();
    let mut events = futures::stream::select_all(
        handles
            .iter()
            .zip(0u32..)
            .map(|(h, shard)| h.events().map(move |event| (shard, event)).boxed()),
    );
    let mut leading = std::collections::BTreeSet::new();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            event = events.next() => match event {
                Some((shard, LeaderEvent::StartedLeading)) => {
                    leading.insert(shard);
                    protocol::emit_shard(IMPL, &args.identity, "shard_acquired", shard);
                }
                Some((shard, LeaderEvent::StoppedLeading)) if leading.remove(&shard) => {
                    protocol::emit_shard(IMPL, &args.identity, "shard_released", shard);
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    for shard in std::mem::take(&mut leading) {
        protocol::emit_shard(IMPL, &args.identity, "shard_released", shard);
    }
    drop(events);
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        futures::future::join_all(handles.into_iter().map(ElectorHandle::shutdown)),
    )
    .await;
    protocol::emit(IMPL, &args.identity, "exited", "");
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of this process, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0 // USER_HZ is 100 on Linux
}
