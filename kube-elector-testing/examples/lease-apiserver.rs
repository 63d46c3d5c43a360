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

/// What `--help` prints.
const HELP: &str = "\
lease-apiserver: the embedded Kubernetes API server for Leases (kube-elector-testing),
as a standalone process on 127.0.0.1, for kubectl, other languages' clients and
benchmarks. It serves coordination.k8s.io/v1 Leases (get, list, watch, create,
update, patch, delete) over plain HTTP, with the discovery documents kubectl reads.

usage: lease-apiserver [OPTIONS]
  (from a checkout: cargo run -p kube-elector-testing --example lease-apiserver -- OPTIONS)

options:
  --port PORT          the port to listen on (default 0: any free port, printed)
  --kubeconfig FILE    where to write a kubeconfig for the server
                       (default: <temp dir>/lease-apiserver-<port>.kubeconfig)
  --identity NAME      the client identity the kubeconfig authenticates as, which
                       /_testing faults can target (default: admin)
  --coordinated-leader-election[=true|false]
                       serve as kube-apiserver with the CoordinatedLeaderElection
                       gate on (spec.strategy and spec.preferredHolder kept,
                       coordination.k8s.io/v1beta1 LeaseCandidates served);
                       off by default, as in Kubernetes 1.33 to 1.37
  -h, --help           this text

It prints `listening on URL`, `port: PORT` and `kubeconfig: FILE`, then serves
until Ctrl-C or SIGTERM.

fault injection and counters, under /_testing:
  GET  /_testing/requests[?resource=leasecandidates]   request counts per verb
  POST /_testing/reset                                 reset the counts
  POST /_testing/faults   a JSON object:
         {\"target\": \"all\" | \"<identity>\", \"latency_ms\": N, \"error_rate\": F,
          \"refuse\": B, \"hang\": B, \"partition\": B, \"forbid\": [verbs], \"allow\": [verbs],
          \"watch_delay_ms\": N, \"watch_black_hole\": B, \"watch_error\": B,
          \"lose_write_answers\": B, \"write_answer_delay_ms\": N, \"stale_reads\": B,
          \"names_only\": B, \"resource\": \"leases\" | \"leasecandidates\"}
         or {\"clear\": true}, {\"stop_gracefully_ms\": N}, {\"restart\": true}
  e.g. curl -X POST URL/_testing/faults -d '{\"target\": \"all\", \"partition\": true}'
";

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
                print!("{HELP}");
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
