//! kube-leader-election 0.44 driven as its README says: `try_acquire_or_renew`
//! every quarter of the TTL, `step_down` on SIGTERM. Speaks bench/protocol.rs.

#[path = "../../../protocol.rs"]
mod protocol;

use kube_leader_election::{LeaseLock, LeaseLockParams, LeaseLockResult};
use tokio::signal::unix::{signal, SignalKind};

const IMPL: &str = "kube-leader-election";

#[tokio::main]
async fn main() {
    let args = protocol::parse();
    protocol::emit(IMPL, &args.identity, "ready", "");
    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kube config");
    let client = kube::Client::try_from(config).expect("client");
    let lock = LeaseLock::new(
        client,
        &args.namespace,
        LeaseLockParams {
            holder_id: args.identity.clone(),
            lease_name: args.lease_name.clone(),
            lease_ttl: args.lease_duration,
        },
    );
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut ticks = tokio::time::interval(args.lease_duration / 4);
    let (mut leading, mut leader) = (false, String::new());
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = ticks.tick() => {}
        }
        let (now_leading, holder) = match lock.try_acquire_or_renew().await {
            Ok(LeaseLockResult::Acquired(lease)) => (true, holder_of(&lease)),
            Ok(LeaseLockResult::NotAcquired(lease)) => (false, holder_of(&lease)),
            Err(e) => {
                eprintln!("{IMPL}: {e}");
                continue;
            }
        };
        if holder != leader {
            leader = holder;
            protocol::emit(IMPL, &args.identity, "new_leader", &leader);
        }
        if now_leading != leading {
            leading = now_leading;
            let event = if leading {
                "started_leading"
            } else {
                "stopped_leading"
            };
            protocol::emit(IMPL, &args.identity, event, &leader);
        }
    }
    if leading {
        protocol::emit(IMPL, &args.identity, "stopped_leading", "");
        if let Err(e) = lock.step_down().await {
            eprintln!("{IMPL}: step_down: {e}");
        }
    }
    protocol::emit(IMPL, &args.identity, "exited", "");
}

fn holder_of(lease: &k8s_openapi::api::coordination::v1::Lease) -> String {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default()
}
