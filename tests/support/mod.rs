//! What every integration test stands on: a target API server (the embedded
//! one, or a real one named by `KUBE_ELECTOR_TEST_KUBECONFIG`), unique names,
//! and skipping, visibly, what a target cannot do.

#![allow(dead_code, unreachable_pub)] // each test file uses a part of this

pub mod broken_watch;
pub mod client_faults;
pub mod coordinated;
pub mod fault_proxy;
pub mod process;
pub mod recorder;
pub mod restart;
pub mod scrape;
pub mod shard_keys;

use std::sync::atomic::{AtomicU64, Ordering};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_elector_testing::LeaseApiServer;

/// The environment variable that points the suite at a real API server.
pub const KUBECONFIG_ENV: &str = "KUBE_ELECTOR_TEST_KUBECONFIG";

/// The environment variable that says whether that real server has the
/// `CoordinatedLeaderElection` feature gate on (`true`) or off (`false`);
/// tests that need one or the other skip when it is unset.
/// `scripts/e2e-real.sh` sets it for the server it starts.
pub const GATE_ENV: &str = "KUBE_ELECTOR_TEST_COORDINATED_LEADER_ELECTION";

/// The server a test talks to.
pub struct Target {
    embedded: Option<LeaseApiServer>,
    external: Option<kube::Config>,
}

impl Target {
    /// The embedded server, or the cluster of `KUBE_ELECTOR_TEST_KUBECONFIG`.
    pub async fn new() -> Self {
        match std::env::var(KUBECONFIG_ENV).ok().filter(|p| !p.is_empty()) {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(&path)
                    .unwrap_or_else(|e| panic!("reading {KUBECONFIG_ENV}={path}: {e}"));
                let config =
                    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                        .await
                        .unwrap_or_else(|e| panic!("loading {path}: {e}"));
                Self {
                    embedded: None,
                    external: Some(config),
                }
            }
            None => Self {
                embedded: Some(
                    LeaseApiServer::start()
                        .await
                        .expect("start the embedded server"),
                ),
                external: None,
            },
        }
    }

    /// A target whose server has the `CoordinatedLeaderElection` feature
    /// gate `on` (or off): the embedded server set up so, or the real one if
    /// `KUBE_ELECTOR_TEST_COORDINATED_LEADER_ELECTION` says its gate is so.
    /// `None`, after saying why, when the real server's gate is the other
    /// one or not known: the test has nothing to run against.
    pub async fn with_coordinated_leader_election(on: bool) -> Option<Self> {
        let wanted = if on { "on" } else { "off" };
        if std::env::var(KUBECONFIG_ENV).is_ok_and(|p| !p.is_empty()) {
            let real = match std::env::var(GATE_ENV).as_deref() {
                Ok("true") => Some(true),
                Ok("false") => Some(false),
                _ => None,
            };
            return match real {
                Some(real) if real == on => Some(Self::new().await),
                Some(_) => {
                    skipped(&format!(
                        "needs the CoordinatedLeaderElection gate {wanted}, and {GATE_ENV} says the real server's is not"
                    ));
                    None
                }
                None => {
                    skipped(&format!(
                        "needs the CoordinatedLeaderElection gate {wanted}; set {GATE_ENV}=true or false as the real server has it"
                    ));
                    None
                }
            };
        }
        let server = LeaseApiServer::builder()
            .coordinated_leader_election(on)
            .start()
            .await
            .expect("start the embedded server");
        Some(Self {
            embedded: Some(server),
            external: None,
        })
    }

    /// A client with its own identity (on the embedded server, the target of
    /// faults and counters; on a real one, just another connection).
    pub fn client_for(&self, identity: &str) -> kube::Client {
        match (&self.embedded, &self.external) {
            (Some(server), _) => server.client_for(identity),
            (None, Some(config)) => {
                kube::Client::try_from(config.clone()).expect("client for the real server")
            }
            (None, None) => unreachable!("a target is embedded or external"),
        }
    }

    /// The namespace tests use (it exists on every real cluster). A method,
    /// so that a target may choose another one.
    #[allow(clippy::unused_self, clippy::unnecessary_literal_bound)]
    pub fn namespace(&self) -> &str {
        "default"
    }

    /// The embedded server, for faults and counters; `None` on a real server.
    pub fn embedded(&self) -> Option<&LeaseApiServer> {
        self.embedded.as_ref()
    }

    /// Whether the tests run against a real API server.
    pub fn is_real(&self) -> bool {
        self.external.is_some()
    }
}

/// A name no other test (or earlier run against a shared server) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// Says why a test does nothing on a real API server (it needs what only the
/// embedded one has): see [`skipped`].
pub fn skip(why: &str) {
    skipped(&format!("{why} (not available on a real API server)"));
}

/// Says that the running test returns without testing anything, and why: a
/// line `SKIPPED <test>: <why>` on the process's standard error, written
/// past libtest's output capture so that it shows in every run, and counted
/// by `.ci/run` and `scripts/e2e-real.sh` (libtest itself can only report
/// such a test as passed). The test's name is its thread's, as libtest
/// names it; call this from the test's own thread.
pub fn skipped(why: &str) {
    use std::io::Write as _;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed test>");
    // One write of one line: lines of tests running in parallel stay whole.
    let line = format!("SKIPPED {test}: {why}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// A seeded source of numbers below `n` (xorshift): the same seed draws
/// the same fault schedule on every run.
pub fn seeded(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed.max(1);
    move |n| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    }
}

/// Waits until `condition` holds, checking every 20 ms, for at most
/// `patience`: for figures that change without an event to await (request
/// counts, renews, log lines).
pub async fn eventually(
    what: &str,
    patience: std::time::Duration,
    mut condition: impl FnMut() -> bool,
) {
    let deadline = tokio::time::Instant::now() + patience;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {patience:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits until `state` (an elector's, from `subscribe()`) names `leader` as
/// the holder, for at most `patience`.
pub async fn wait_sees_leader(
    state: &mut tokio::sync::watch::Receiver<kube_elector::LeaderState>,
    leader: &str,
    patience: std::time::Duration,
) {
    tokio::time::timeout(
        patience,
        state.wait_for(|s| s.leader.as_deref() == Some(leader)),
    )
    .await
    .unwrap_or_else(|_| panic!("not within {patience:?}: an elector sees {leader} lead"))
    .expect("the elector runs");
}

/// Waits until every one of `handles` sees a leader other than `old`, for
/// at most `patience` each, and returns whom the last one sees.
pub async fn wait_new_leader(
    handles: &[kube_elector::ElectorHandle],
    old: &str,
    patience: std::time::Duration,
) -> String {
    let mut seen = String::new();
    for handle in handles {
        let mut state = handle.subscribe();
        let now = tokio::time::timeout(
            patience,
            state.wait_for(|s| s.leader.as_deref().is_some_and(|l| l != old)),
        )
        .await
        .unwrap_or_else(|_| panic!("not within {patience:?}: a leader other than {old}"))
        .expect("the elector runs");
        seen.clone_from(now.leader.as_ref().expect("a leader"));
    }
    seen
}

/// The short timings most tests use, so that elections happen within a
/// test's patience: lease 2 s, renew deadline 1 s, retry 250 ms, in the
/// `default` namespace.
/// An observer of `lease` in the namespace `default` that reads as
/// often as electors of `retry_period` and `renew_deadline` do, with the
/// request timeout they run with (half of what is left of the renew
/// deadline after a retry period).
#[allow(dead_code)] // not every test binary observes
pub fn observer_of(
    lease: &str,
    renew_deadline: std::time::Duration,
    retry_period: std::time::Duration,
) -> kube_elector::observer::ObserverConfig {
    kube_elector::observer::ObserverConfig::new(lease)
        .namespace("default")
        .retry_period(retry_period)
        .request_timeout(renew_deadline.saturating_sub(retry_period) / 2)
}

/// An observer that matches [`short_config`]'s electors.
#[allow(dead_code)] // not every test binary observes
pub fn short_observer(lease: &str) -> kube_elector::observer::ObserverConfig {
    observer_of(
        lease,
        std::time::Duration::from_secs(1),
        std::time::Duration::from_millis(250),
    )
}

pub fn short_config(lease: &str, identity: &str) -> kube_elector::ElectorConfig {
    kube_elector::ElectorConfig::new(lease)
        .namespace("default")
        .identity(identity)
        .lease_duration(std::time::Duration::from_secs(2))
        .renew_deadline(std::time::Duration::from_secs(1))
        .retry_period(std::time::Duration::from_millis(250))
}
