//! The chaos schedule of `tests/chaos.rs` against a real kube-apiserver,
//! through the TCP fault proxy (`interop/cmd/faultproxy`): every candidate
//! connects through its own port of the proxy, where the schedule's faults
//! become what a network can do (latency one way or both, black holes,
//! partitions healed with or without a reset, resets, refused
//! connections); outside writers (forced takeovers, duration edits,
//! deletions) go straight to the server. Among the candidates runs
//! client-go's own elector (`interop/cmd/client-go-elector`), restarted and
//! crashed like the others, its terms laid on the same time line.
//!
//! Invariants: no two candidates believe they lead at one instant, and a
//! leader is back within the longest lease duration plus a retry period
//! (and slack) once the faults stop.
//!
//! Needs `KUBE_ELECTOR_TEST_KUBECONFIG` (a real server), the proxy binary
//! (`KUBE_ELECTOR_FAULTPROXY`) and the client-go elector
//! (`KUBE_ELECTOR_CLIENT_GO_ELECTOR`), as `scripts/e2e-real.sh` sets them;
//! says SKIPPED and why without them. Three seeds of 25 s by default;
//! `KUBE_ELECTOR_REAL_CHAOS=long` runs eight of 60 s,
//! `KUBE_ELECTOR_CHAOS_SEED=N` replays one, and `KUBE_ELECTOR_CHAOS_LOG=1`
//! prints each run's log.

#[path = "support/chaos_schedule.rs"]
mod chaos_schedule;
mod support;

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use chaos_schedule::{Backend, ClientGoPeer, Run};
use support::fault_proxy::{self, FaultProxy};

fn client_go_binary() -> Option<PathBuf> {
    std::env::var_os("KUBE_ELECTOR_CLIENT_GO_ELECTOR")
        .map(PathBuf::from)
        .or_else(|| {
            let local =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/interop/client-go-elector");
            local.exists().then_some(local)
        })
        .filter(|p| p.exists())
}

fn seeds() -> (Vec<u64>, Duration) {
    if let Some(seed) = std::env::var("KUBE_ELECTOR_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return (vec![seed], Duration::from_secs(30));
    }
    match std::env::var("KUBE_ELECTOR_REAL_CHAOS").as_deref() {
        Ok("long") => (
            (1..=8).map(|i| i * 104_729).collect(),
            Duration::from_secs(60),
        ),
        _ => (vec![42, 7919, 31_337], Duration::from_secs(25)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver and the fault proxy: scripts/e2e-real.sh runs it"]
async fn faults_of_the_network_never_yield_two_leaders_on_a_real_server_with_client_go_among_them()
{
    let kubeconfig = std::env::var(support::KUBECONFIG_ENV)
        .ok()
        .filter(|p| !p.is_empty());
    let (Some(kubeconfig), Some(proxy), Some(client_go)) =
        (kubeconfig, fault_proxy::binary(), client_go_binary())
    else {
        eprintln!(
            "SKIPPED real_faults: needs a real server ({}), the fault proxy ({}) and the \
             client-go elector (KUBE_ELECTOR_CLIENT_GO_ELECTOR); scripts/e2e-real.sh sets all three",
            support::KUBECONFIG_ENV,
            fault_proxy::PROXY_ENV
        );
        return;
    };
    let base = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig).expect("read the kubeconfig"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("load the kubeconfig");
    let (seeds, duration) = seeds();
    for seed in seeds {
        let admin = kube::Client::try_from(base.clone()).expect("the admin client");
        let faults = Backend::Proxy(Box::new(FaultProxy::start(&proxy, base.clone()).await));
        let report = chaos_schedule::run(Run {
            seed,
            duration,
            faults,
            admin,
            hubs: Vec::new(),
            electors: 4,
            client_go: Some(ClientGoPeer::new(
                client_go.clone(),
                PathBuf::from(&kubeconfig),
            )),
        })
        .await;
        eprintln!(
            "real-server chaos, seed {seed}: {} steps over {:.1?}, {} terms ({} of client-go), \
             overlap 0, a leader {:.2?} after the faults stopped",
            report.steps,
            report.elapsed,
            report.terms,
            report.client_go_terms,
            report.leader_after_faults
        );
    }
}
