//! kube-leader-election 0.44 driven as its README and examples say: one
//! `LeaseLock` with the TTL as `lease_ttl`, `try_acquire_or_renew()` in a
//! loop with a sleep between calls (examples/shared-lease.rs; the README
//! asks for a renew well inside the TTL, every TTL/3 in its example), its
//! result read as leading or not, errors logged and the state kept, and
//! `step_down()` to give up leadership on SIGTERM (examples/simple-lease.rs).
//! The sleep is the retry period every implementation of the bench gets
//! (500 ms at the 2 s lease: TTL/4, more often than the example's TTL/3).
//! Speaks bench/protocol.rs.

#[path = "../../../protocol.rs"]
mod protocol;

use kube_leader_election::{LeaseLock, LeaseLockParams, LeaseLockResult};
use tokio::signal::unix::{signal, SignalKind};

const IMPL: &str = "kube-leader-election";

#[tokio::main]
async fn main() {
    let args = protocol::parse();
    // The handler before `ready`: the harness may signal from then on.
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
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
    let (mut leading, mut leader) = (false, String::new());
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = term.recv() => break,
                () = tokio::time::sleep(args.retry_period) => {}
            }
        }
        first = false;
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
