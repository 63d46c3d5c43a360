//! What operators watch an elector through: its health check and its
//! Prometheus metrics (scraped in the text exposition format); tracing output
//! is tests/tracing.rs.
//! Against the embedded server, or a real one when
//! `KUBE_ELECTOR_TEST_KUBECONFIG` is set (fault-driven parts then skip).

mod support;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use kube_elector::{
    ElectorConfig, ElectorHandle, LeaderElector, LeaderEvent, LeaderEvents, health::Unhealthy,
    metrics::ElectorMetrics,
};
use kube_elector_testing::FaultTarget;
use prometheus_client::registry::Registry;
use tokio::time::timeout;

use support::Target;
use support::scrape::Scrape;

const LEASE: Duration = Duration::from_secs(1);
const RENEW_DEADLINE: Duration = Duration::from_millis(600);
const RETRY: Duration = Duration::from_millis(100);
/// The longest any single wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(20);

fn config(lease: &str, target: &Target, identity: &str) -> ElectorConfig {
    ElectorConfig::new(lease)
        .namespace(target.namespace())
        .identity(identity)
        .lease_duration(LEASE)
        .renew_deadline(RENEW_DEADLINE)
        .retry_period(RETRY)
}

fn spawn(target: &Target, config: ElectorConfig, identity: &str) -> ElectorHandle {
    LeaderElector::new(target.client_for(identity), config)
        .expect("valid config")
        .spawn()
}

async fn wait_for(events: &mut LeaderEvents, wanted: &LeaderEvent) {
    let found = timeout(PATIENCE, async {
        while let Some(event) = events.next().await {
            if event == *wanted {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        found,
        Ok(true),
        "no {wanted:?} within {PATIENCE:?} (or the stream ended)"
    );
}

// === Health ===

/// The case client-go's healthz exists for: the elector's task cannot run
/// (here the whole runtime is blocked), so it neither renews nor notices its
/// renew deadline. The check, which reads shared state only, says so; once
/// the task runs again it stops leading and the check is happy again.
#[tokio::test(flavor = "current_thread")]
async fn a_leader_whose_task_cannot_run_past_the_lease_is_unhealthy_followers_stay_healthy() {
    let target = Target::new().await;
    let lease = support::unique_name("health");
    let leader = spawn(&target, config(&lease, &target, "healthy-a"), "healthy-a");
    let leadership = timeout(PATIENCE, leader.became_leader())
        .await
        .expect("a leader within the patience")
        .expect("leading");
    let follower = spawn(&target, config(&lease, &target, "healthy-b"), "healthy-b");
    let mut follower_state = follower.subscribe();
    support::wait_sees_leader(&mut follower_state, "healthy-a", PATIENCE).await;

    let tolerance = Duration::from_millis(200);
    let leader_health = leader.health_check(tolerance);
    let follower_health = follower.health_check(tolerance);
    assert_eq!(leader_health.check(), Ok(()));
    assert_eq!(follower_health.check(), Ok(()));
    assert!(leader_health.is_ready() && follower_health.is_ready());

    // Block the runtime (not a synchronisation: this *is* the fault) for
    // longer than the lease plus the tolerance.
    std::thread::sleep(LEASE + tolerance + Duration::from_millis(300));
    // Nothing ran, so the published state still holds the term; but the
    // term's own deadline has passed, and that is what `is_leader` says.
    assert!(
        leader.state().term.is_some(),
        "nothing ran, so the state still holds the term"
    );
    assert!(
        !leader.is_leader() && !leadership.is_leading(),
        "past its deadline the term must not say it leads, whether the task ran or not"
    );
    match leader_health.check() {
        Err(Unhealthy::RenewOverdue { since, allowed }) => {
            assert_eq!(allowed, LEASE + tolerance);
            assert!(since > allowed, "{since:?} is not past {allowed:?}");
        }
        other => panic!("a stuck leader must be unhealthy, got {other:?}"),
    }
    assert_eq!(follower_health.check(), Ok(()), "followers are healthy");

    // The task runs again: it notices its deadline and stops leading.
    // (`lost()` completed at the deadline already; the token is the task's.)
    timeout(PATIENCE, leadership.token().cancelled())
        .await
        .expect("the stuck leader stops once its task runs");
    assert_eq!(leader_health.check(), Ok(()), "not leading: healthy");
    drop(leadership);
    leader.shutdown().await.expect("shutdown");
    follower.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_elector_is_ready_once_it_has_read_the_lease() {
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        return support::skip("needs refused connections");
    };
    let lease = support::unique_name("ready");
    server.set_error_rate(FaultTarget::Client("ready-a".into()), 1.0);
    let elector = spawn(&target, config(&lease, &target, "ready-a"), "ready-a");
    let health = elector.health_check(Duration::ZERO);
    // Several failed attempts (each retried after the retry period).
    support::eventually(
        "the elector retries against the failing server",
        PATIENCE,
        || server.requests().client("ready-a") >= 3,
    )
    .await;
    assert!(!health.is_ready(), "not ready while the API server fails");
    assert_eq!(health.check(), Ok(()), "but alive");

    server.set_error_rate(FaultTarget::Client("ready-a".into()), 0.0);
    let leadership = timeout(PATIENCE, elector.became_leader())
        .await
        .expect("leads once the server answers")
        .expect("leading");
    assert!(health.is_ready(), "ready once it has read the Lease");
    drop(leadership);
    elector.shutdown().await.expect("shutdown");
}

// === Metrics ===

/// Each replica is a process of its own, with its own registry.
struct Replica {
    registry: Arc<Mutex<Registry>>,
    handle: ElectorHandle,
}

impl Replica {
    fn spawn(target: &Target, lease: &str, identity: &str) -> Self {
        let mut registry = Registry::default();
        let metrics = ElectorMetrics::new(&mut registry);
        let handle = spawn(
            target,
            config(lease, target, identity).metrics(metrics),
            identity,
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            handle,
        }
    }

    fn scrape(&self) -> Scrape {
        Scrape::of(&self.registry.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[tokio::test]
async fn metrics_follow_terms_renews_handovers_and_failures() {
    let target = Target::new().await;
    let lease = support::unique_name("metrics");
    let status = format!("leader_election_master_status{{name=\"{lease}\"}}");
    let started = format!(
        "leader_election_transitions_total{{name=\"{lease}\",transition=\"started_leading\"}}"
    );
    let stopped = format!(
        "leader_election_transitions_total{{name=\"{lease}\",transition=\"stopped_leading\"}}"
    );
    let renews = format!("leader_election_renew_duration_seconds_count{{name=\"{lease}\"}}");
    let handovers = format!("leader_election_handover_seconds_count{{name=\"{lease}\"}}");
    let failures =
        format!("leader_election_renew_failures_total{{name=\"{lease}\",reason=\"error\"}}");

    let a = Replica::spawn(&target, &lease, "metrics-a");
    let leadership = timeout(PATIENCE, a.handle.became_leader())
        .await
        .expect("a leads within the patience")
        .expect("leading");
    drop(leadership);
    let b = Replica::spawn(&target, &lease, "metrics-b");
    assert_eq!(
        b.scrape().value(&status),
        Some(0.0),
        "a follower reports 0 from the start"
    );

    support::eventually("the leader renews twice", PATIENCE, || {
        a.scrape().value(&renews).unwrap_or(0.0) >= 2.0
    })
    .await;
    let scrape = a.scrape();
    assert_eq!(scrape.value(&status), Some(1.0), "{}", scrape.text());
    assert_eq!(scrape.value(&started), Some(1.0), "{}", scrape.text());
    assert_eq!(scrape.value(&stopped), None, "{}", scrape.text());
    let scrape = b.scrape();
    assert_eq!(scrape.value(&status), Some(0.0), "{}", scrape.text());
    assert_eq!(scrape.value(&started), None, "{}", scrape.text());

    // A graceful handover: a stops (0, one stop), b starts (1, one handover).
    let mut b_events = b.handle.events();
    let Replica { registry, handle } = a;
    handle.shutdown().await.expect("a shuts down");
    let scrape = Scrape::of(&registry.lock().unwrap_or_else(PoisonError::into_inner));
    assert_eq!(scrape.value(&status), Some(0.0), "{}", scrape.text());
    assert_eq!(scrape.value(&stopped), Some(1.0), "{}", scrape.text());
    wait_for(&mut b_events, &LeaderEvent::StartedLeading).await;
    let scrape = b.scrape();
    assert_eq!(scrape.value(&status), Some(1.0), "{}", scrape.text());
    assert_eq!(scrape.value(&started), Some(1.0), "{}", scrape.text());
    assert_eq!(scrape.value(&handovers), Some(1.0), "{}", scrape.text());

    let Some(server) = target.embedded() else {
        b.handle.shutdown().await.expect("b shuts down");
        return support::skip("renew failures need a partition");
    };
    // Renews fail until the deadline: b counts them and stops leading.
    server.partition(FaultTarget::Client("metrics-b".into()));
    wait_for(&mut b_events, &LeaderEvent::StoppedLeading).await;
    let scrape = b.scrape();
    assert!(
        scrape.value(&failures).unwrap_or(0.0) >= 1.0,
        "{}",
        scrape.text()
    );
    assert_eq!(scrape.value(&status), Some(0.0), "{}", scrape.text());
    assert_eq!(scrape.value(&stopped), Some(1.0), "{}", scrape.text());
    server.heal(FaultTarget::Client("metrics-b".into()));
    b.handle.shutdown().await.expect("b shuts down");
}
