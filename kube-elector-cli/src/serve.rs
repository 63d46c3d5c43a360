//! `kube-elector serve`: who leads, over HTTP, for a program beside it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures::Stream;
use kube_elector::health::HealthCheck;
use kube_elector::metrics::ElectorMetrics;
use kube_elector::{ElectorView, LeaderElector, LeaderState};
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::label::PodLabels;
use crate::options::ServeArgs;

/// How much longer than the lease duration a leader's last renew may be
/// before `/healthz` fails (client-go's `HealthzAdaptor` takes 20 s too).
const HEALTH_TOLERANCE: Duration = Duration::from_secs(20);

#[derive(Clone)]
struct App {
    view: ElectorView,
    identity: Arc<str>,
    health: HealthCheck,
    registry: Arc<Registry>,
}

/// The answer of `GET /` and of each event.
fn describe(state: &LeaderState, identity: &str) -> serde_json::Value {
    let now = Instant::now();
    let term = state.term.as_ref().filter(|term| term.is_leading());
    serde_json::json!({
        "leader": state.leader,
        "is_leader": term.is_some(),
        "identity": identity,
        "term": term.map(|term| serde_json::json!({
            "fencing_token": term.fencing_token(),
            "deadline_in_ms": u64::try_from(term.deadline().saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX),
        })),
    })
}

async fn root(State(app): State<App>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        describe(&app.view.state(), &app.identity).to_string(),
    )
}

async fn events(State(app): State<App>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = app.view.subscribe();
    let identity = app.identity.clone();
    // The current state first, then one event per change.
    let stream = futures::stream::unfold((receiver, true), move |(mut receiver, first)| {
        let identity = identity.clone();
        async move {
            if !first && receiver.changed().await.is_err() {
                return None;
            }
            let state = receiver.borrow_and_update().clone();
            let data = describe(&state, &identity).to_string();
            Some((Ok(Event::default().data(data)), (receiver, false)))
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    match app.health.check() {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(unhealthy) => (StatusCode::INTERNAL_SERVER_ERROR, unhealthy.to_string()),
    }
}

async fn readyz(State(app): State<App>) -> impl IntoResponse {
    if app.health.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the Lease has not been read yet",
        )
    }
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &app.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            err.to_string(),
        ),
    }
}

/// Runs the elector and the HTTP server until SIGTERM or SIGINT.
pub(crate) async fn serve(args: ServeArgs, client: kube::Client) -> Result<u8, String> {
    // First: a SIGTERM while the rest starts must wait for the shutdown
    // below, not kill the process (exit 143, no release, no unlabelling).
    let signals = wait_for_signal();
    let mut registry = Registry::default();
    let config = args
        .election
        .config()
        .metrics(ElectorMetrics::new(&mut registry));
    let elector = LeaderElector::new(client.clone(), config)
        .map_err(|err| format!("invalid settings: {err}"))?;
    let labels = if args.label_pod {
        Some(pod_labels(&client, &elector, &args)?)
    } else {
        None
    };
    crate::preflight(&client, elector.namespace(), &args.election.lease).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|err| format!("cannot listen on {} (--listen): {err}", args.listen))?;
    let local = listener.local_addr().ok();
    let identity: Arc<str> = elector.identity().into();
    let handle = elector.spawn();
    let app = App {
        view: handle.view(),
        identity,
        health: handle.health_check(HEALTH_TOLERANCE),
        registry: Arc::new(registry),
    };
    let router = Router::new()
        .route("/", get(root))
        .route("/events", get(events))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app);
    let stop = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future(),
    );
    let retry_period = args.election.retry_period;
    let labelling = labels.clone().map(|labels| {
        let view = handle.view();
        let stop = stop.clone();
        tokio::spawn(async move {
            stop.run_until_cancelled(label_terms(view, labels, retry_period))
                .await
        })
    });
    let listen = local.map_or_else(|| args.listen.to_string(), |addr| addr.to_string());
    tracing::info!(%listen, "serving");
    signals.await;
    tracing::info!("signal: stopping");
    stop.cancel();
    if let Some(labelling) = labelling {
        let _ = labelling.await;
    }
    if let Some(labels) = labels
        && let Err(err) = labels.step_down().await
    {
        tracing::warn!(%err, "could not remove this Pod's leader label");
    }
    match handle.shutdown().await {
        Ok(outcome) => tracing::info!(?outcome, "stopped"),
        Err(err) => tracing::warn!(%err, "the shutdown did not complete"),
    }
    // Open event streams end with the process.
    drop(server);
    Ok(0)
}

/// SIGTERM or SIGINT. Both are caught from the call on (not from the
/// first poll): a signal that comes before the future is awaited ends it
/// at once.
pub(crate) fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

fn pod_labels(
    client: &kube::Client,
    elector: &LeaderElector,
    args: &ServeArgs,
) -> Result<PodLabels, String> {
    let pod_name = std::env::var("POD_NAME").map_err(|_| {
        "--label-pod needs POD_NAME (the downward API's metadata.name) to know its own Pod"
            .to_owned()
    })?;
    let lease = &args.election.lease.lease;
    if lease.len() > 63 {
        return Err(format!(
            "--label-pod puts the Lease's name in the label {}, whose values have at most 63 \
             characters; `{lease}` has {}: choose a shorter --lease",
            crate::label::ELECTION,
            lease.len()
        ));
    }
    Ok(PodLabels {
        pods: kube::Api::namespaced(client.clone(), elector.namespace()),
        pod_name,
        election: lease.clone(),
    })
}

/// Per term: label this Pod (after the others lose the label), and remove
/// the label when the term ends.
async fn label_terms(view: ElectorView, labels: PodLabels, retry_period: Duration) {
    loop {
        let Ok(leadership) = view.became_leader().await else {
            return;
        };
        // Until the labels are right or the term ends, retrying each
        // retry period.
        let label = async {
            while let Err(err) = labels.lead().await {
                tracing::warn!(%err, "could not label the Pods; retrying (a Service that selects the label may route elsewhere meanwhile)");
                tokio::time::sleep(retry_period).await;
            }
        };
        tokio::select! {
            () = label => {}
            () = leadership.lost() => {}
        }
        leadership.lost().await;
        drop(leadership);
        if let Err(err) = labels.step_down().await {
            tracing::warn!(%err, "could not remove this Pod's leader label");
        }
    }
}
