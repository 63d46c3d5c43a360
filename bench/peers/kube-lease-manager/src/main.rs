//! kube-lease-manager 0.13 driven as its docs say ("fully automated way"):
//! `LeaseManagerBuilder` with duration and grace, `watch()` for a channel of
//! "am I leading" and the watching task, `changed()` then
//! `borrow_and_update()` on the channel. On SIGTERM the channel is dropped:
//! the watching task then releases the Lease (`release()`, which the docs
//! name for a graceful exit) and ends, and it is joined, as the docs ask
//! ("preferably you should"), before the process exits. Duration and grace come from
//! the lease duration and the renew deadline, in whole seconds; it has no
//! retry period of its own (the harness's retry period only paces the
//! retries of a `build()` that failed). Speaks bench/protocol.rs.

#[path = "../../../protocol.rs"]
mod protocol;

use k8s_openapi::api::coordination::v1::Lease;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::signal::unix::{signal, SignalKind};

const IMPL: &str = "kube-lease-manager";

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
    let leases: kube::Api<Lease> = kube::Api::namespaced(client.clone(), &args.namespace);
    let duration = args.lease_duration.as_secs().max(2);
    // Its grace is how long before expiry it renews: lease - renew deadline.
    let grace = duration
        .saturating_sub(args.renew_deadline.as_secs())
        .clamp(1, duration - 1);
    // `build()` reads (and if missing creates) the Lease, so it fails when
    // the server does (the chaos scenario's injected errors): tried again
    // every retry period, as a restarted process would, until it works or
    // a signal comes.
    let manager = loop {
        let built = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
            .with_namespace(&args.namespace)
            .with_identity(&args.identity)
            .with_duration(duration)
            .with_grace(grace)
            .build()
            .await;
        match built {
            Ok(manager) => break manager,
            Err(e) => eprintln!("{IMPL}: building the lease manager failed: {e}"),
        }
        tokio::select! {
            _ = term.recv() => {
                protocol::emit(IMPL, &args.identity, "exited", "");
                return;
            }
            () = tokio::time::sleep(args.retry_period) => {}
        }
    };
    let (mut channel, task) = manager.watch().await;
    let mut leading = false;
    let mut leader = String::new();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            changed = channel.changed() => if changed.is_err() { break },
        }
        let now_leading = *channel.borrow_and_update();
        if now_leading != leading {
            leading = now_leading;
            let event = if leading {
                "started_leading"
            } else {
                "stopped_leading"
            };
            let me = if leading { args.identity.as_str() } else { "" };
            protocol::emit(IMPL, &args.identity, event, me);
        }
        // The crate reports only "am I leading"; the holder is read back
        // (after the event: the read is the bench's, not the crate's).
        if let Ok(Some(lease)) = leases.get_opt(&args.lease_name).await {
            let holder = lease
                .spec
                .and_then(|s| s.holder_identity)
                .unwrap_or_default();
            if holder != leader {
                leader = holder;
                protocol::emit(IMPL, &args.identity, "new_leader", &leader);
            }
        }
    }
    if leading {
        protocol::emit(IMPL, &args.identity, "stopped_leading", "");
    }
    // Closing the channel makes the watching task release the Lease and end.
    drop(channel);
    match task.await {
        Ok(Ok(_manager)) => {}
        Ok(Err(e)) => eprintln!("{IMPL}: the watching task's release failed: {e}"),
        Err(e) => eprintln!("{IMPL}: the watching task failed: {e}"),
    }
    protocol::emit(IMPL, &args.identity, "exited", "");
}
