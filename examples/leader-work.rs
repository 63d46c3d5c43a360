//! Leader-only work scoped to a term: `became_leader()` returns a guard whose
//! token is cancelled the moment leadership ends.
//!
//! ```text
//! cargo run --example leader-work            # embedded Lease API server
//! KUBECONFIG=~/.kube/config cargo run --example leader-work
//! ```

use std::time::Duration;

use kube_elector::{ElectorConfig, LeaderElector};
use kube_elector_testing::LeaseApiServer;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A real cluster if KUBECONFIG is set, else the embedded server.
    let (client, _server) = if std::env::var_os("KUBECONFIG").is_some() {
        (kube::Client::try_default().await?, None)
    } else {
        let server = LeaseApiServer::start().await?;
        (server.client(), Some(server))
    };

    let shutdown = CancellationToken::new();
    let elector = LeaderElector::new(
        client,
        ElectorConfig::new("leader-work-example").namespace("default"),
    )?
    .spawn_with_token(&shutdown);

    // Stop after a few seconds, as a SIGTERM handler would.
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.cancel();
    });

    while let Ok(leadership) = elector.became_leader().await {
        println!(
            "{} leads with fencing token {}",
            leadership.identity(),
            leadership.fencing_token()
        );
        // The work stops when leadership ends, whatever the reason.
        let work = async {
            let mut ticks = tokio::time::interval(Duration::from_millis(500));
            loop {
                ticks.tick().await;
                println!("  reconciling as leader");
            }
        };
        leadership.token().run_until_cancelled(work).await;
        println!("leadership ended; work stopped");
        // Dropping the guard tells shutdown that leader work has drained.
        drop(leadership);
        if shutdown.is_cancelled() {
            break;
        }
    }
    println!("shutdown: {:?}", elector.join().await?);
    Ok(())
}
