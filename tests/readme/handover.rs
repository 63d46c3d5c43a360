// A replica whose preStop hook hands over, as the README's "Handing over
// to a chosen successor" block does: its identity is the default one (the
// pod's name, `POD_NAME`, and a random suffix), and the hook (here a line
// `hand over to <pod>` on standard input, where a pod would use an exec or
// HTTP hook into the process) names the new pod by its name alone. It then
// waits for the next leader and says whether the pod it named took over.
// `run_until_signal` ends it on SIGTERM, as the kubelet's would after the hook.

use std::time::Duration;

use kube_elector::handover::Successor;
use kube_elector::{ElectorConfig, ElectorView, LeaderElector};
use tokio::io::AsyncBufReadExt;
use tracing_subscriber::EnvFilter;

/// Longer than the test's patience: a takeover that waited the lease out
/// would fail the test, so the one it sees came with a watch event.
const LEASE: Duration = Duration::from_secs(60);

async fn pre_stop_hook(handle: ElectorView) -> anyhow::Result<()> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let Some(pod) = line.strip_prefix("hand over to ") else {
            continue;
        };
        let successor = Successor::Named(pod.to_owned());
        let mut state = handle.subscribe();
        let outcome = handle.hand_over(successor.clone()).await?;
        println!("hook: hand_over({pod}) returned {outcome:?}");
        let next = tokio::time::timeout(
            Duration::from_secs(20),
            state.wait_for(|s| s.leader.as_deref().is_some_and(|l| l != handle.identity())),
        )
        .await??
        .leader
        .clone()
        .unwrap_or_default();
        if successor.matches(&next) {
            println!("hook: {pod} took over ({next})");
        } else {
            println!("hook: {pod} did not take over: {next} did");
        }
    }
    Ok(())
}

pub(super) fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        tracing_subscriber::fmt().with_env_filter(filter).init();
        let client = kube::Client::try_default().await?;
        let config = ElectorConfig::new("readme-handover")
            .lease_duration(LEASE)
            .renew_deadline(LEASE * 2 / 3);
        let elector = LeaderElector::new(client, config)?.spawn();
        println!("identity {}", elector.identity());
        tokio::spawn(pre_stop_hook(elector.view()));
        let outcome = elector
            .run_until_signal(|leadership| async move {
                leadership.lost().await;
                anyhow::Ok(())
            })
            .await?;
        println!("shut down: {outcome:?}");
        Ok(())
    });
    // The hook's read of standard input cannot be cancelled: do not wait for it.
    runtime.shutdown_background();
    result
}
