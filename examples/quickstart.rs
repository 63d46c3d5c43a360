//! The README's quick start: a replicated operator's `main`. It leads while
//! it can, and on SIGTERM (what Kubernetes sends a pod it stops) or Ctrl-C
//! it ends its term, lets the leader work drain, releases the Lease so that
//! another replica leads at once, and exits 0.
//!
//! ```sh
//! KUBECONFIG=... cargo run --example quickstart   # run it twice, then Ctrl-C one
//! ```

use kube_elector::{ElectorConfig, LeaderElector};

#[tokio::main]
pub(crate) async fn main() -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let lease = std::env::var("LEASE_NAME").unwrap_or_else(|_| "my-operator".into());
    let elector = LeaderElector::new(client, ElectorConfig::new(lease))?.spawn();
    println!("{} is a candidate", elector.identity());
    let outcome = elector
        .run_until_signal(|leadership| async move {
            println!(
                "{} leads (fencing token {})",
                leadership.identity(),
                leadership.fencing_token()
            );
            // Leader-only work goes here, until the term ends: say a
            // kube-runtime Controller with
            // `.graceful_shutdown_on(leadership.cancelled_owned())`.
            leadership.lost().await;
            println!("{} stopped leading", leadership.identity());
            anyhow::Ok(())
        })
        .await?;
    println!("shut down: {outcome:?}");
    Ok(())
}
