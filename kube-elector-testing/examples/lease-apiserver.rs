//! The embedded Lease API server as a standalone process, for kubectl, other
//! languages' clients and benchmark harnesses.
//!
//! ```text
//! cargo run -p kube-elector-testing --example lease-apiserver -- --port 0 [--kubeconfig FILE]
//!     [--identity NAME] [--coordinated-leader-election[=true|false]]
//! ```
//!
//! `--coordinated-leader-election` serves Leases as a kube-apiserver with
//! the `CoordinatedLeaderElection` feature gate on (`spec.strategy` and
//! `spec.preferredHolder` kept and validated), and `coordination.k8s.io/v1beta1`
//! `LeaseCandidate`s; without it the gate is off, as by default in
//! Kubernetes 1.33 to 1.37: both fields are dropped and v1beta1 is not
//! served.
//!
//! Prints `listening on http://127.0.0.1:PORT` and `kubeconfig: FILE`, then
//! serves until interrupted (Ctrl-C or SIGTERM). Faults and request counts are
//! at `/_testing/*` (see the crate docs).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use kube_elector_testing::LeaseApiServer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut port: u16 = 0;
    let mut kubeconfig: Option<PathBuf> = None;
    let mut identity = "admin".to_owned();
    let mut coordinated_leader_election = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = args
                    .next()
                    .context("--port needs a value")?
                    .parse()
                    .context("--port takes a number")?;
            }
            "--kubeconfig" => {
                kubeconfig = Some(args.next().context("--kubeconfig needs a path")?.into());
            }
            "--identity" => identity = args.next().context("--identity needs a value")?,
            // As Go's flag package spells a boolean, the way the real
            // apiserver of interop/ takes it.
            "--coordinated-leader-election" | "--coordinated-leader-election=true" => {
                coordinated_leader_election = true;
            }
            "--coordinated-leader-election=false" => coordinated_leader_election = false,
            "-h" | "--help" => {
                println!(
                    "usage: lease-apiserver [--port PORT] [--kubeconfig FILE] [--identity NAME] [--coordinated-leader-election[=true|false]]"
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let server = LeaseApiServer::builder()
        .addr(SocketAddr::from(([127, 0, 0, 1], port)))
        .coordinated_leader_election(coordinated_leader_election)
        .start()
        .await
        .with_context(|| format!("binding 127.0.0.1:{port}"))?;
    let kubeconfig = kubeconfig.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "lease-apiserver-{}.kubeconfig",
            server.addr().port()
        ))
    });
    server
        .write_kubeconfig(&kubeconfig, &identity)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    println!("listening on {}", server.url());
    println!("port: {}", server.addr().port());
    println!("kubeconfig: {}", kubeconfig.display());
    println!(
        "CoordinatedLeaderElection: {}",
        if coordinated_leader_election {
            "on (coordination.k8s.io/v1beta1 LeaseCandidates served)"
        } else {
            "off"
        }
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("stopping");
    Ok(())
}
