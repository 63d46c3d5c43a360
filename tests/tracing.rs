//! What an elector logs: quiet in the steady state, spans that say which
//! elector and which request, a warning when the Lease is lost, one warning
//! per outage. Alone in its
//! test binary: tracing caches per call site whether anyone listens, which a
//! thread-local subscriber shares badly with tests running beside it.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kube_elector::{ElectorConfig, ElectorHandle, LeaderElector};
use kube_elector_testing::{FaultTarget, LeaseApiServer};
use tokio::time::timeout;

use support::Target;

const LEASE: Duration = Duration::from_secs(1);
const RENEW_DEADLINE: Duration = Duration::from_millis(600);
const RETRY: Duration = Duration::from_millis(100);
/// The longest any single wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(20);

fn spawn(target: &Target, lease: &str, identity: &str) -> ElectorHandle {
    let config = ElectorConfig::new(lease)
        .namespace(target.namespace())
        .identity(identity)
        .lease_duration(LEASE)
        .renew_deadline(RENEW_DEADLINE)
        .retry_period(RETRY);
    LeaderElector::new(target.client_for(identity), config)
        .expect("valid config")
        .spawn()
}

/// Everything the subscriber wrote, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|line| line.contains(needle)).count()
}

/// A subscriber for this thread that writes everything the crate logs (but
/// the embedded server) into the returned buffer, span closes included.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "kube_elector=trace,kube_elector_testing=off",
        ))
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// Steady state (a leader renewing, a follower watching) logs nothing at
/// info or above; renews are debug, inside the elector's span and a span per
/// request; a lost Lease is a warning; an outage is one warning, not one per
/// failed request.
#[tokio::test(flavor = "current_thread")]
async fn steady_state_is_quiet_a_lost_lease_warns_and_an_outage_warns_once() {
    // A current-thread runtime: every task of this test logs on this thread.
    let (captured, _guard) = capture();

    let target = Target::new().await;
    let lease = support::unique_name("quiet");
    let leader = spawn(&target, &lease, "quiet-a");
    let leadership = timeout(PATIENCE, leader.became_leader())
        .await
        .expect("a leader within the patience")
        .expect("leading");
    let follower = spawn(&target, &lease, "quiet-b");
    let mut follower_state = follower.subscribe();
    support::wait_sees_leader(&mut follower_state, "quiet-a", PATIENCE).await;
    support::eventually("the follower's watch is up", PATIENCE, || {
        captured
            .text()
            .lines()
            .any(|l| l.contains("identity=quiet-b") && l.contains("watching the Lease"))
    })
    .await;

    assert_steady_state_is_quiet(&captured, &lease).await;

    let Some(server) = target.embedded() else {
        drop(leadership);
        leader.shutdown().await.expect("shutdown");
        follower.shutdown().await.expect("shutdown");
        return support::skip("losing the Lease needs a partition");
    };
    server.partition(FaultTarget::Client("quiet-a".into()));
    // The token, not `lost()` (which may complete at the deadline, before
    // the task has run): the log line comes from the task.
    timeout(PATIENCE, leadership.token().cancelled())
        .await
        .expect("the partitioned leader stops");
    let text = captured.text();
    let lost = text
        .lines()
        .find(|line| line.contains("lost the Lease"))
        .unwrap_or_else(|| panic!("no line about the lost Lease:\n{text}"));
    assert!(lost.contains(" WARN "), "a lost Lease is a warning: {lost}");
    assert!(lost.contains("identity=quiet-a"), "{lost}");
    server.heal(FaultTarget::Client("quiet-a".into()));
    drop(leadership);
    leader.shutdown().await.expect("shutdown");

    let b_leads = timeout(PATIENCE, follower.became_leader())
        .await
        .expect("the follower takes over")
        .expect("leading");
    drop(b_leads);
    assert_an_outage_warns_once(server, &captured).await;
    follower.shutdown().await.expect("shutdown");
    assert_no_debug_syntax_at_info_or_above(&captured.text());
}

/// No line an operator reads (info and above) carries Rust's debug
/// rendering of an `Option` or of a kube `Status`.
fn assert_no_debug_syntax_at_info_or_above(text: &str) {
    let found: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" INFO ") || l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| l.contains("Some(") || l.contains(" None") || l.contains("Status {"))
        .collect();
    assert!(
        found.is_empty(),
        "debug syntax at info or above:\n{}",
        found.join("\n")
    );
}

/// Five renews of `quiet-a` log nothing at info or above.
async fn assert_steady_state_is_quiet(captured: &Captured, lease: &str) {
    let from = captured.len();
    let renewed_before = count(&captured.text(), "renewed the Lease");
    support::eventually("five renews", PATIENCE, || {
        count(&captured.text(), "renewed the Lease") >= renewed_before + 5
    })
    .await;
    let text = captured.text();
    let steady = &text[from..];
    let loud: Vec<&str> = steady
        .lines()
        .filter(|line| {
            [" INFO ", " WARN ", " ERROR "]
                .iter()
                .any(|l| line.contains(l))
        })
        .collect();
    assert!(
        loud.is_empty(),
        "logged at info or above in the steady state:\n{}",
        loud.join("\n")
    );
    let renew_line = steady
        .lines()
        .find(|line| line.contains("renewed the Lease"))
        .expect("a renew line");
    assert!(
        renew_line.contains("DEBUG"),
        "a renew is debug: {renew_line}"
    );
    assert!(
        renew_line.contains(&format!("leader_election{{lease={lease}"))
            && renew_line.contains("identity=quiet-a"),
        "a renew carries the elector's span: {renew_line}"
    );
    assert!(
        steady
            .lines()
            .any(|line| line.contains("lease_request{action=renew") && line.contains("close")),
        "each request has a span:\n{steady}"
    );
}

/// The leader `quiet-b` meets an outage: the first failure is a warning,
/// the next ones are debug, and the recovery is said once.
async fn assert_an_outage_warns_once(server: &LeaseApiServer, captured: &Captured) {
    let from = captured.len();
    let before = server.requests().client("quiet-b");
    server.set_error_rate(FaultTarget::Client("quiet-b".into()), 1.0);
    support::eventually("eight failed requests", PATIENCE, || {
        server.requests().client("quiet-b") >= before + 8
    })
    .await;
    let text = captured.text();
    let outage = &text[from..];
    let failed = |level: &str| {
        outage
            .lines()
            .filter(|l| {
                l.contains("identity=quiet-b") && l.contains(level) && l.contains("request failed")
            })
            .count()
    };
    assert_eq!(failed(" WARN "), 1, "one warning per outage:\n{outage}");
    assert!(failed(" DEBUG ") >= 6, "the rest at debug:\n{outage}");
    server.set_error_rate(FaultTarget::Client("quiet-b".into()), 0.0);
    support::eventually("the recovery is logged", PATIENCE, || {
        captured.text()[from..].lines().any(|l| {
            l.contains(" INFO ") && l.contains("identity=quiet-b") && l.contains("answers again")
        })
    })
    .await;
}

/// A follower that waits out a crashed holder's Lease does not blame its
/// watch (no event is due from a holder that stopped renewing): nothing
/// about the watch at warn. A watch that really misses a change is a
/// warning, once.
#[tokio::test(flavor = "current_thread")]
async fn a_crashed_holder_is_no_warning_about_the_watch_and_a_watch_that_misses_a_change_is() {
    let (captured, _guard) = capture();
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        return support::skip("a partition that stands for a crash, a silent watch");
    };
    let lease = support::unique_name("crashed");
    let leader = spawn(&target, &lease, "crashed-a");
    drop(
        timeout(PATIENCE, leader.became_leader())
            .await
            .expect("a leader within the patience")
            .expect("leading"),
    );
    let follower = spawn(&target, &lease, "crashed-b");
    support::wait_sees_leader(&mut follower.subscribe(), "crashed-a", PATIENCE).await;
    let from = captured.len();
    // From the server's side a crash: nothing of a's arrives any more.
    server.partition(FaultTarget::Client("crashed-a".into()));
    let b_leads = timeout(PATIENCE, follower.became_leader())
        .await
        .expect("the follower takes over at expiry")
        .expect("leading");
    let text = captured.text();
    let blamed: Vec<&str> = text[from..]
        .lines()
        .filter(|l| l.contains("identity=crashed-b") && l.contains(" WARN ") && l.contains("watch"))
        .collect();
    assert!(
        blamed.is_empty(),
        "the follower blamed its watch for a crashed holder:\n{}",
        blamed.join("\n")
    );
    drop(b_leads);
    drop(leader);

    // A follower whose watch goes silent while b renews: warned once.
    let c = spawn(&target, &lease, "crashed-c");
    support::wait_sees_leader(&mut c.subscribe(), "crashed-b", PATIENCE).await;
    server.black_hole_watch(FaultTarget::Client("crashed-c".into()), true);
    let missed = |text: &str| {
        count_where(text, |l| {
            l.contains("identity=crashed-c")
                && l.contains(" WARN ")
                && l.contains("missed a change")
        })
    };
    support::eventually("the silent watch is a warning", PATIENCE, || {
        missed(&captured.text()) >= 1
    })
    .await;
    // Ten more retry periods of polling: still one warning.
    tokio::time::sleep(RETRY * 10).await;
    assert_eq!(missed(&captured.text()), 1, "one warning per silence");
    server.clear_faults();
    c.shutdown().await.expect("shutdown");
    follower.shutdown().await.expect("shutdown");
    assert_no_debug_syntax_at_info_or_above(&captured.text());
}

/// A persistent 403 on one verb is one warning that names the verb and the
/// resource (the reads that still succeed in between do not end it), then
/// quiet, then one line when the verb is allowed again; and no message at
/// info or above carries Rust's debug syntax for an `Option`.
#[tokio::test(flavor = "current_thread")]
async fn a_forbidden_verb_warns_once_naming_it_and_its_end_is_one_line() {
    let (captured, _guard) = capture();
    let target = Target::new().await;
    let Some(server) = target.embedded() else {
        return support::skip("a 403 on one verb for one client");
    };
    let lease = support::unique_name("forbidden");
    let leader = spawn(&target, &lease, "forbidden-a");
    drop(
        timeout(PATIENCE, leader.became_leader())
            .await
            .expect("a leader within the patience")
            .expect("leading"),
    );
    let from = captured.len();
    let client = FaultTarget::Client("forbidden-a".into());
    let before = server.requests().client("forbidden-a");
    server.forbid(client.clone(), kube_elector_testing::Verb::Update);
    // Twenty retry periods of refused updates and successful reads.
    support::eventually("twenty more requests", PATIENCE, || {
        server.requests().client("forbidden-a") >= before + 20
    })
    .await;
    let during = captured.text()[from..].to_owned();
    let mine = |l: &&str| l.contains("identity=forbidden-a");
    let warnings: Vec<&str> = during
        .lines()
        .filter(mine)
        .filter(|l| l.contains(" WARN ") && !l.contains("lost the Lease"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning:\n{during}");
    assert!(
        warnings[0].contains("update") && warnings[0].contains("leases"),
        "the warning names the verb and the resource: {}",
        warnings[0]
    );
    let recovered = |text: &str| {
        count_where(text, |l| {
            l.contains("identity=forbidden-a") && l.contains(" INFO ") && l.contains("again")
        })
    };
    assert_eq!(
        recovered(&during),
        0,
        "no line says the server answers again while update is refused:\n{during}"
    );

    server.allow(client, kube_elector_testing::Verb::Update);
    support::eventually("the end of the refusal is logged", PATIENCE, || {
        recovered(&captured.text()[from..]) == 1
    })
    .await;
    assert_no_debug_syntax_at_info_or_above(&captured.text());
    leader.shutdown().await.expect("shutdown");
}

/// A handover that names a successor no candidate answers to is said at
/// warn once another candidate takes the Lease, naming both.
#[tokio::test(flavor = "current_thread")]
async fn a_handover_naming_nobody_who_exists_is_a_warning() {
    let (captured, _guard) = capture();
    let target = Target::new().await;
    let lease = support::unique_name("nobody");
    let leader = spawn(&target, &lease, "nobody-a");
    drop(
        timeout(PATIENCE, leader.became_leader())
            .await
            .expect("a leader within the patience")
            .expect("leading"),
    );
    let follower = spawn(&target, &lease, "nobody-b");
    support::wait_sees_leader(&mut follower.subscribe(), "nobody-a", PATIENCE).await;
    leader
        .hand_over(kube_elector::handover::Successor::Named("nobody-z".into()))
        .await
        .expect("the handover");
    drop(
        timeout(PATIENCE, follower.became_leader())
            .await
            .expect("the other candidate takes the Lease after the bound")
            .expect("leading"),
    );
    support::eventually("the leader says whom it named", PATIENCE, || {
        captured.text().lines().any(|l| {
            l.contains("identity=nobody-a")
                && l.contains(" WARN ")
                && l.contains("nobody-z")
                && l.contains("nobody-b took the Lease")
        })
    })
    .await;
    leader.shutdown().await.expect("shutdown");
    follower.shutdown().await.expect("shutdown");
    assert_no_debug_syntax_at_info_or_above(&captured.text());
}

fn count_where(text: &str, f: impl Fn(&str) -> bool) -> usize {
    text.lines().filter(|l| f(l)).count()
}

/// A candidate of coordinated election that the API server does not serve
/// `LeaseCandidate` for says so once (at info) and leads by the plain
/// election; one whose wall clock lags the server's (by the `Date` of its
/// answers) past half the safety margin says that too, at warn.
#[tokio::test(flavor = "current_thread")]
async fn coordinated_election_says_once_that_it_is_not_served_and_that_the_clock_lags() {
    let (captured, _guard) = capture();
    let Some(target) = Target::with_coordinated_leader_election(false).await else {
        return;
    };
    let lease = support::unique_name("cle-logs");
    let config = ElectorConfig::new(&lease)
        .namespace(target.namespace())
        .identity("cle-lags")
        .lease_duration(LEASE)
        .renew_deadline(RENEW_DEADLINE)
        .retry_period(RETRY)
        .coordinated("1.34.0", "1.34.0")
        .clock(Arc::new(kube_elector::clock::SkewedClock::new(
            jiff::SignedDuration::from_secs(-10),
        )));
    let handle = LeaderElector::new(target.client_for("cle-lags"), config)
        .expect("valid config")
        .spawn();
    drop(
        timeout(PATIENCE, handle.became_leader())
            .await
            .expect("leads in time")
            .expect("leads"),
    );
    support::eventually(
        "the elector says LeaseCandidate is not served",
        PATIENCE,
        || {
            count(
                &captured.text(),
                "does not serve coordination.k8s.io/v1beta1",
            ) == 1
        },
    )
    .await;
    let text = captured.text();
    let lag = text
        .lines()
        .find(|line| line.contains("behind the API server's"))
        .unwrap_or_else(|| panic!("no line about the lagging clock:\n{text}"));
    assert!(lag.contains(" WARN "), "{lag}");
    assert!(lag.contains("identity=cle-lags"), "{lag}");
    handle.shutdown().await.expect("shutdown");
    assert_eq!(
        count(
            &captured.text(),
            "does not serve coordination.k8s.io/v1beta1"
        ),
        1,
        "said once"
    );
}

/// A candidate whose `LeaseCandidate` is found naming another Lease (an
/// elector of another process with the same identity declared it) says so
/// at error, once, naming both Leases, and leaves it alone.
#[tokio::test(flavor = "current_thread")]
async fn a_lease_candidate_naming_another_lease_is_said_once_at_error() {
    let (captured, _guard) = capture();
    let Some(target) = Target::with_coordinated_leader_election(true).await else {
        return;
    };
    if target.is_real() {
        return support::skip("waits on the embedded server's request counts");
    }
    let server = target.embedded().expect("embedded");
    let identity = support::unique_name("cle-taken");
    let lease = support::unique_name("cle-mine");
    let candidates = support::coordinated::candidates_api(&target);
    let mut other = kube::api::DynamicObject::new(
        &identity,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("coordination.k8s.io", "v1beta1", "LeaseCandidate"),
            "leasecandidates",
        ),
    );
    other.data = serde_json::json!({
        "spec": {
            "leaseName": "another-lease",
            "binaryVersion": "1.34.0",
            "emulationVersion": "1.34.0",
            "strategy": "OldestEmulationVersion",
            "renewTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        }
    });
    candidates
        .create(&kube::api::PostParams::default(), &other)
        .await
        .expect("the other candidate is created");
    let config = ElectorConfig::new(&lease)
        .namespace(target.namespace())
        .identity(&identity)
        .lease_duration(LEASE)
        .renew_deadline(RENEW_DEADLINE)
        .retry_period(RETRY)
        .coordinated("1.34.0", "1.34.0");
    let handle = LeaderElector::new(target.client_for("cle-taken"), config)
        .expect("valid config")
        .spawn();
    // Two reads of the candidate (the second after a back-off of 1 s).
    support::eventually("the elector reads its candidate twice", PATIENCE, || {
        server
            .requests_for(kube_elector_testing::Resource::LeaseCandidates)
            .get("cle-taken", kube_elector_testing::Verb::Get)
            >= 2
    })
    .await;
    let text = captured.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("names the Lease \"another-lease\""))
        .collect();
    assert_eq!(lines.len(), 1, "said once:\n{text}");
    assert!(lines[0].contains(" ERROR "), "{}", lines[0]);
    handle.shutdown().await.expect("shutdown");
}
