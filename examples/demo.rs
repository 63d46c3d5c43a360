//! Three replicas elect a leader; the leader hands over gracefully, then the
//! next leader freezes (a crash), and the last one takes over after expiry.
//!
//! ```text
//! cargo run --example demo                          # embedded Lease API server
//! cargo run --example demo -- --kubeconfig FILE     # a real cluster (or set KUBECONFIG)
//! cargo run --example demo -- --replica             # one replica, as in a pod (deploy/)
//! ```
//!
//! Each event is printed with the time since the start; the handover times
//! are measured as DESIGN.md names them.
//!
//! `--replica` (what `deploy/deployment.yaml` runs) is one elector with the
//! pod's defaults: identity from `POD_NAME`, namespace from `POD_NAMESPACE`,
//! the Lease `LEASE_NAME` (default `kube-elector-demo`), the in-cluster (or
//! `KUBECONFIG`) client, client-go's timings. It prints its events and, on
//! SIGTERM or Ctrl-C, stops leading and releases the Lease before it exits.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_elector::{ElectorConfig, ElectorHandle, LeaderElector, LeaderEvent};
use kube_elector_testing::LeaseApiServer;
use tokio::time::Instant;

const LEASE: Duration = Duration::from_secs(2);
const RENEW_DEADLINE: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_millis(250);
const REPLICAS: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    if std::env::args().any(|arg| arg == "--replica") {
        return replica().await;
    }
    let kubeconfig = kubeconfig_path();
    let (config, _server) = if let Some(path) = &kubeconfig {
        let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {path}"))?;
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .context("loading the kubeconfig")?;
        println!("using the cluster at {}", config.cluster_url);
        (config, None)
    } else {
        let server = LeaseApiServer::start().await?;
        println!(
            "no cluster given: using the embedded Lease API server at {}",
            server.url()
        );
        (server.kube_config_for("demo"), Some(server))
    };
    let namespace = config.default_namespace.clone();
    let lease = format!("kube-elector-demo-{}", std::process::id());
    let t0 = Instant::now();

    // Each replica has its own client, which the demo can freeze.
    let timeline = Timeline::default();
    let mut replicas = Vec::new();
    for i in 1..=REPLICAS {
        let frozen = Arc::new(AtomicBool::new(false));
        let client = ClientBuilder::try_from(config.clone())?
            .with_layer(&FreezeLayer(Arc::clone(&frozen)))
            .build();
        let elector = LeaderElector::new(
            client,
            ElectorConfig::new(&lease)
                .namespace(&namespace)
                .identity(format!("replica-{i}"))
                .lease_duration(LEASE)
                .renew_deadline(RENEW_DEADLINE)
                .retry_period(RETRY),
        )?
        .spawn();
        print_events(&elector, t0, Some(&timeline));
        replicas.push((elector, frozen));
    }

    let first = wait_for_leader(&replicas, None).await?;
    let (leader, _) = replicas.remove(first);
    let name = leader.identity().to_owned();
    println!("{} -- graceful handover: cancelling {name}", stamp(t0));
    let cancelled = Instant::now();
    timeline.mark(cancelled, 'G');
    leader.shutdown().await?;
    let second = wait_for_leader(&replicas, None).await?;
    let graceful = replicas[second].0.state().term.map(|t| t.started_at());
    let graceful = graceful.map_or(Duration::ZERO, |s| s.saturating_duration_since(cancelled));

    let name = replicas[second].0.identity().to_owned();
    println!(
        "{} -- crash: {name} freezes (its requests never return)",
        stamp(t0)
    );
    replicas[second].1.store(true, Ordering::SeqCst);
    let frozen_at = Instant::now();
    timeline.mark(frozen_at, 'F');
    let third = wait_for_leader(&replicas, Some(second)).await?;
    let crash = replicas[third].0.state().term.map_or(Duration::ZERO, |t| {
        t.started_at().saturating_duration_since(frozen_at)
    });

    // A moment of the last term, so that its lane shows.
    tokio::time::sleep(LEASE / 4).await;
    println!();
    timeline.print(t0, Instant::now());
    println!();
    println!(
        "graceful handover (cancel -> next StartedLeading): {:>8.1} ms",
        ms(graceful)
    );
    println!(
        "crash takeover (freeze -> next StartedLeading):    {:>8.1} ms (lease duration {} ms)",
        ms(crash),
        LEASE.as_millis()
    );
    for (elector, frozen) in replicas {
        frozen.store(false, Ordering::SeqCst);
        elector.shutdown().await?;
    }
    if kubeconfig.is_some() {
        let api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
            kube::Api::namespaced(kube::Client::try_from(config)?, &namespace);
        api.delete(&lease, &kube::api::DeleteParams::default())
            .await
            .ok();
    }
    Ok(())
}

/// One replica of a Deployment: runs until SIGTERM, then hands over.
async fn replica() -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("no in-cluster config or KUBECONFIG")?;
    let lease = std::env::var("LEASE_NAME").unwrap_or_else(|_| "kube-elector-demo".to_owned());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let elector =
        LeaderElector::new(client, ElectorConfig::new(lease))?.spawn_with_token(&shutdown);
    println!("{} campaigning", elector.identity());
    let t0 = Instant::now();
    print_events(&elector, t0, None);

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => println!("{} SIGTERM: handing over", stamp(t0)),
        _ = tokio::signal::ctrl_c() => println!("{} Ctrl-C: handing over", stamp(t0)),
    }
    shutdown.cancel();
    let outcome = elector.join().await?;
    println!("{} {outcome:?}", stamp(t0));
    Ok(())
}

fn kubeconfig_path() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--kubeconfig" {
            return args.next();
        }
        if let Some(path) = arg.strip_prefix("--kubeconfig=") {
            return Some(path.to_owned());
        }
    }
    std::env::var("KUBECONFIG").ok().filter(|p| !p.is_empty())
}

/// Waits until a replica other than `except` leads.
async fn wait_for_leader(
    replicas: &[(ElectorHandle, Arc<AtomicBool>)],
    except: Option<usize>,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + LEASE * 5;
    loop {
        let found = replicas
            .iter()
            .enumerate()
            .position(|(i, (e, _))| Some(i) != except && e.is_leader());
        if let Some(i) = found {
            return Ok(i);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no leader within {:?}",
            LEASE * 5
        );
        let changes = replicas
            .iter()
            .map(|(e, _)| Box::pin(async move { e.subscribe().changed().await }));
        let _ = tokio::time::timeout_at(deadline, futures::future::select_all(changes)).await;
    }
}

fn print_events(elector: &ElectorHandle, t0: Instant, timeline: Option<&Timeline>) {
    let name = elector.identity().to_owned();
    let mut events = elector.events();
    let timeline = timeline.cloned();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let Some(timeline) = &timeline {
                timeline.record(&name, &event, Instant::now());
            }
            let text = match event {
                LeaderEvent::StartedLeading => "started leading".to_owned(),
                LeaderEvent::StoppedLeading => "stopped leading".to_owned(),
                LeaderEvent::NewLeader { identity } => {
                    format!("sees leader {}", identity.as_deref().unwrap_or("(none)"))
                }
                other => format!("{other:?}"),
            };
            println!("{} [{name}] {text}", stamp(t0));
        }
    });
}

// === Who led when, drawn in the terminal ===

/// The replicas' terms as their events reported them, and the demo's marks.
#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<TimelineInner>>);

#[derive(Default)]
struct TimelineInner {
    /// (replica, start, end): `end` is `None` while the term runs.
    terms: Vec<(String, Instant, Option<Instant>)>,
    lanes: Vec<String>,
    marks: Vec<(Instant, char)>,
}

/// Columns of the drawing.
const COLUMNS: u32 = 72;

impl Timeline {
    fn record(&self, who: &str, event: &LeaderEvent, at: Instant) {
        let mut inner = self.0.lock().unwrap();
        if !inner.lanes.iter().any(|lane| lane == who) {
            inner.lanes.push(who.to_owned());
            inner.lanes.sort();
        }
        match event {
            LeaderEvent::StartedLeading => inner.terms.push((who.to_owned(), at, None)),
            LeaderEvent::StoppedLeading => {
                if let Some(term) = inner
                    .terms
                    .iter_mut()
                    .rev()
                    .find(|(w, _, end)| w == who && end.is_none())
                {
                    term.2 = Some(at);
                }
            }
            _ => {}
        }
    }

    fn mark(&self, at: Instant, mark: char) {
        self.0.lock().unwrap().marks.push((at, mark));
    }

    /// One lane per replica from `t0` to `end`: `#` while it led, `.` while
    /// it did not; `!` under a column where two replicas led at once.
    fn print(&self, t0: Instant, end: Instant) {
        let inner = self.0.lock().unwrap();
        let column = (end - t0) / COLUMNS;
        let cell = |c: u32| (t0 + column * c, t0 + column * (c + 1));
        let leads = |who: &str, (from, to): (Instant, Instant)| {
            inner
                .terms
                .iter()
                .any(|(w, s, e)| w == who && *s < to && e.unwrap_or(end) > from)
        };
        println!(
            "who led when ({:.0} ms a column; G: the graceful handover began, F: the leader froze)",
            ms(column)
        );
        let width = inner.lanes.iter().map(String::len).max().unwrap_or(0);
        for who in &inner.lanes {
            let lane: String = (0..COLUMNS)
                .map(|c| if leads(who, cell(c)) { '#' } else { '.' })
                .collect();
            println!("  {who:>width$} {lane}");
        }
        // Each mark under its column, or the next free one when two fall
        // in one column (the freeze follows the handover within ms).
        let mut marks = vec![' '; COLUMNS as usize];
        for (at, mark) in &inner.marks {
            let column = (0..COLUMNS)
                .find(|&c| cell(c).1 > *at)
                .unwrap_or(COLUMNS - 1);
            if let Some(free) = marks[column as usize..].iter_mut().find(|m| **m == ' ') {
                *free = *mark;
            }
        }
        let marks: String = marks.into_iter().collect();
        println!("  {:>width$} {marks}", "");
        // Two replicas' terms that truly intersect (not merely in one column).
        let overlap: String = (0..COLUMNS)
            .map(|c| {
                let (from, to) = cell(c);
                let both = inner.terms.iter().any(|(a, s1, e1)| {
                    inner.terms.iter().any(|(b, s2, e2)| {
                        let (start, stop) =
                            ((*s1).max(*s2), e1.unwrap_or(end).min(e2.unwrap_or(end)));
                        a != b && start < stop && start < to && stop > from
                    })
                });
                if both { '!' } else { ' ' }
            })
            .collect();
        if overlap.contains('!') {
            println!("  {:>width$} {overlap} <- two leaders", "");
        } else {
            println!("  never two leaders at once");
        }
    }
}

fn stamp(t0: Instant) -> String {
    format!("{:>8.3}s", t0.elapsed().as_secs_f64())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// === A client that can be frozen: a crashed or paused replica ===

struct FreezeLayer(Arc<AtomicBool>);

impl<S> tower::Layer<S> for FreezeLayer {
    type Service = Freeze<S>;
    fn layer(&self, inner: S) -> Freeze<S> {
        Freeze {
            inner,
            frozen: Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
struct Freeze<S> {
    inner: S,
    frozen: Arc<AtomicBool>,
}

impl<S, Req> tower::Service<Req> for Freeze<S>
where
    S: tower::Service<Req>,
    S::Future: Send + 'static,
    S::Response: 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if self.frozen.load(Ordering::SeqCst) {
            Box::pin(std::future::pending())
        } else {
            Box::pin(self.inner.call(req))
        }
    }
}
