use kube_elector::{ElectorConfig, LeaderElector};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The elector logs at info when it leads, stops and releases, and warns
    // when it cannot reach the API server; RUST_LOG overrides the level.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let client = kube::Client::try_default().await?;
    let elector = LeaderElector::new(client, ElectorConfig::new("my-operator"))?.spawn();
    // Lead while we can; on SIGTERM (or Ctrl-C) end the term, let the work
    // finish, release the Lease so another replica leads at once, and return.
    let outcome = elector
        .run_until_signal(|leadership| async move {
            // Leader-only work, until the term ends: e.g. a kube-runtime
            // Controller with `.graceful_shutdown_on(leadership.cancelled_owned())`.
            leadership.lost().await;
            anyhow::Ok(())
        })
        .await?;
    println!("shut down: {outcome:?}");
    Ok(())
}
