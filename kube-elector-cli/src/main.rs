//! `kube-elector`: leader election on Kubernetes Leases for a workload in
//! any language, as a command (see docs/guide/command.md).

mod child;
mod label;
mod observe;
mod options;
mod run;
mod serve;

use std::process::ExitCode;

use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube_elector::LeaderElector;

use crate::options::{Cli, Command, Fence, LeaseArgs};

// Current-thread: the child's parent-death signal follows the thread that
// forked it, which must live as long as kube-elector (see child.rs).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Exec(args) = &cli.command {
        return ExitCode::from(child::exec(args));
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal, plain lines for a Pod's log.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match start(cli.command).await {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("kube-elector: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Checks everything that can be checked before campaigning, then runs.
async fn start(command: Command) -> Result<u8, String> {
    match command {
        Command::Run(args) => {
            let fence = Fence::new(
                args.grace_period,
                args.election.renew_deadline,
                args.election.retry_period,
            )?;
            if args.drain_timeout.is_zero() {
                return Err("--drain-timeout must be longer than 0s".into());
            }
            let config = args.election.config().drain_timeout(args.drain_timeout);
            // Settings first: they are wrong whatever the cluster says.
            config
                .validate()
                .map_err(|err| format!("invalid settings: {err}"))?;
            let client = client().await?;
            let elector = LeaderElector::new(client.clone(), config)
                .map_err(|err| format!("invalid settings: {err}"))?;
            preflight(&client, elector.namespace(), &args.election.lease).await?;
            let run = run::Run {
                command: args.command,
                fence,
                drain_timeout: args.drain_timeout,
                retry_period: args.election.retry_period,
            };
            Ok(run.run(elector, args.election.lease.lease).await)
        }
        Command::Serve(args) => {
            args.election
                .config()
                .validate()
                .map_err(|err| format!("invalid settings: {err}"))?;
            serve::serve(args, client().await?).await
        }
        Command::Observe(args) => observe::observe(args, client().await?).await,
        Command::Exec(_) => unreachable!("handled before logging starts"),
    }
}

/// The client from KUBECONFIG or the Pod's service account.
async fn client() -> Result<kube::Client, String> {
    kube::Client::try_default().await.map_err(|err| {
        format!(
            "no Kubernetes client: {}; set KUBECONFIG or run in a Pod with a service account",
            kube_elector::error::plain(&err)
        )
    })
}

/// Reads the Lease once: a namespace the service account may not read is
/// refused here (exit 1) rather than retried, since no retry fixes RBAC and
/// a Pod that exits shows the reason in its status (the kubelet restarts it
/// with a back-off, which is the retry). Any other failure of this read
/// (the API server unreachable) is refused too: the message names it.
///
/// A namespace that does not exist cannot be told apart from a missing
/// Lease by a read (both are 404); the elector then retries the creation,
/// logging why, so that a namespace created after the Pod still works.
pub(crate) async fn preflight(
    client: &kube::Client,
    namespace: &str,
    lease: &LeaseArgs,
) -> Result<(), String> {
    let api: kube::Api<Lease> = kube::Api::namespaced(client.clone(), namespace);
    match api.get_opt(&lease.lease).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 403 => Err(format!(
            "may not read Lease {namespace}/{}: {}; grant the service account get, list, \
             watch, create, update and patch on leases (coordination.k8s.io) in namespace \
             {namespace} (see deploy/rbac.yaml), or choose another --namespace",
            lease.lease, status.message
        )),
        Err(err) => Err(format!(
            "cannot read Lease {namespace}/{}: {}",
            lease.lease,
            kube_elector::error::plain(&err)
        )),
    }
}
