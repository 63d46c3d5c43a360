//! Kubernetes probes and Prometheus metrics for an elector, served with axum:
//! `/healthz` (liveness: client-go's healthz rule), `/readyz` (the elector
//! has reached the API server) and `/metrics` (the text exposition format).
//!
//! ```text
//! cargo run --example probes                # embedded Lease API server
//! KUBECONFIG=~/.kube/config cargo run --example probes
//! PROBES_ADDR=0.0.0.0:8080 cargo run --example probes -- --serve   # until Ctrl-C
//! ```
//!
//! Without `--serve` it scrapes itself once, prints what a kubelet and a
//! Prometheus would see, and shuts down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kube_elector::{ElectorConfig, LeaderElector, health::HealthCheck, metrics::ElectorMetrics};
use kube_elector_testing::LeaseApiServer;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// How long past the lease duration a leader may go without a renew before
/// `/healthz` fails (client-go's adaptor takes the same kind of tolerance).
const HEALTH_TOLERANCE: Duration = Duration::from_secs(20);

#[derive(Clone)]
struct Probes {
    health: HealthCheck,
    registry: Arc<Registry>,
}

async fn healthz(State(probes): State<Probes>) -> impl IntoResponse {
    match probes.health.check() {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(unhealthy) => (StatusCode::INTERNAL_SERVER_ERROR, unhealthy.to_string()),
    }
}

async fn readyz(State(probes): State<Probes>) -> impl IntoResponse {
    if probes.health.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the Lease has not been read yet",
        )
    }
}

async fn metrics_text(State(probes): State<Probes>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &probes.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            error.to_string(),
        ),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let serve_forever = std::env::args().any(|arg| arg == "--serve");
    // A real cluster if KUBECONFIG is set, else the embedded server.
    let (client, _server) = if std::env::var_os("KUBECONFIG").is_some() {
        (kube::Client::try_default().await?, None)
    } else {
        let server = LeaseApiServer::start().await?;
        (server.client(), Some(server))
    };

    let mut registry = Registry::default();
    let metrics = ElectorMetrics::new(&mut registry);
    let shutdown = CancellationToken::new();
    let elector = LeaderElector::new(
        client,
        ElectorConfig::new("probes-example")
            .namespace("default")
            .metrics(metrics),
    )?
    .spawn_with_token(&shutdown);
    let probes = Probes {
        health: elector.health_check(HEALTH_TOLERANCE),
        registry: Arc::new(registry),
    };

    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(probes);
    let addr: SocketAddr = std::env::var("PROBES_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:0".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("probes on http://{addr}/healthz, /readyz and /metrics");
    let stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });

    let leadership = elector.became_leader().await?;
    println!("{} leads", leadership.identity());
    if serve_forever {
        tokio::signal::ctrl_c().await?;
    } else {
        for path in ["/healthz", "/readyz", "/metrics"] {
            println!("--- GET {path}\n{}", get_once(addr, path).await?);
        }
    }
    drop(leadership);
    shutdown.cancel();
    println!("shutdown: {:?}", elector.join().await?);
    server.await??;
    Ok(())
}

/// A bare HTTP/1.0 GET, as a probe would send it.
async fn get_once(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}
