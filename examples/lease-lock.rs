//! The polled `LeaseLock`, as `kube-leader-election` users know it: migrating
//! is a change of the `use` line.
//!
//! ```text
//! cargo run --example lease-lock             # embedded Lease API server
//! KUBECONFIG=~/.kube/config cargo run --example lease-lock
//! ```

use std::time::Duration;

use kube_elector::lock::{LeaseLock, LeaseLockParams};
use kube_elector_testing::LeaseApiServer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (client, _server) = if std::env::var_os("KUBECONFIG").is_some() {
        (kube::Client::try_default().await?, None)
    } else {
        let server = LeaseApiServer::start().await?;
        (server.client(), Some(server))
    };

    let leadership = LeaseLock::new(
        client,
        "default",
        LeaseLockParams {
            holder_id: "some-operator".into(),
            lease_name: "some-operator-lock".into(),
            lease_ttl: Duration::from_secs(15),
        },
    );

    // Poll at a quarter of the TTL, as the seed crate's README suggests.
    let mut ticks = tokio::time::interval(Duration::from_millis(3750));
    for _ in 0..3 {
        ticks.tick().await;
        let lease = leadership.try_acquire_or_renew().await?;
        println!("currently leading: {}", lease.is_leading());
    }
    leadership.step_down().await?;
    println!("stepped down");
    Ok(())
}
