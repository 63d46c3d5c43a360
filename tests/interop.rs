//! kube-elector and client-go's own elector on one Lease. Needs the
//! client-go elector binary (`interop/cmd/client-go-elector`, built by
//! `scripts/e2e-real.sh`), named by `KUBE_ELECTOR_CLIENT_GO_ELECTOR` or found
//! at `target/interop/client-go-elector`. Runs against the embedded server,
//! or a real one named by `KUBE_ELECTOR_TEST_KUBECONFIG`.
//!
//! Every test here is `#[ignore]`d, so a plain `cargo test` lists them as
//! ignored rather than passing them without the binary;
//! `scripts/e2e-real.sh` runs them with `--include-ignored` (by hand:
//! `cargo test --test interop -- --include-ignored`). Run so without the
//! binary, each says `SKIPPED` (see `support::skipped`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube_elector::{ElectorConfig, ElectorHandle, LeaderElector, LeaderEvent, LeaderEvents};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, timeout};

use futures::StreamExt;
use support::Target;

const LEASE: Duration = Duration::from_secs(2);
const RENEW_DEADLINE: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_millis(250);
const PATIENCE: Duration = Duration::from_secs(30);

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

fn now_nanos() -> i128 {
    i128::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

/// One term of one elector, on the wall clock of this machine (nanoseconds).
#[derive(Clone, Debug)]
struct Term {
    who: String,
    start: i128,
    end: Option<i128>,
}

#[derive(Clone, Default)]
struct Terms(Arc<tokio::sync::watch::Sender<Vec<Term>>>);

impl Terms {
    fn start(&self, who: &str, at: i128) {
        self.0.send_modify(|terms| {
            terms.push(Term {
                who: who.to_owned(),
                start: at,
                end: None,
            });
        });
    }

    fn end(&self, who: &str, at: i128) {
        self.0.send_modify(|terms| {
            if let Some(t) = terms
                .iter_mut()
                .rev()
                .find(|t| t.who == who && t.end.is_none())
            {
                t.end = Some(at);
            }
        });
    }

    /// Waits until a term of `who` is on record (the recorders run beside
    /// the electors, a moment behind them).
    async fn wait_started(&self, who: &str) {
        let mut rx = self.0.subscribe();
        timeout(
            PATIENCE,
            rx.wait_for(|terms| terms.iter().any(|t| t.who == who)),
        )
        .await
        .unwrap_or_else(|_| panic!("no recorded term of {who}"))
        .unwrap();
    }

    /// Waits until someone other than `not` leads, and returns who.
    async fn wait_leader(&self, not: Option<&str>) -> String {
        let mut rx = self.0.subscribe();
        let current = |terms: &Vec<Term>| {
            terms
                .iter()
                .rev()
                .find(|t| t.end.is_none())
                .map(|t| t.who.clone())
                .filter(|w| Some(w.as_str()) != not)
        };
        let terms = timeout(PATIENCE, rx.wait_for(|t| current(t).is_some()))
            .await
            .unwrap_or_else(|_| panic!("nobody but {not:?} led within {PATIENCE:?}"))
            .unwrap();
        current(&terms).unwrap()
    }

    fn assert_no_overlap(&self) {
        let mut all = self.0.borrow().clone();
        all.sort_by_key(|t| t.start);
        for pair in all.windows(2) {
            let end = pair[0].end.unwrap_or(i128::MAX);
            assert!(
                end <= pair[1].start,
                "{} led until {end} but {} started at {}: overlap of {} µs\n{all:#?}",
                pair[0].who,
                pair[1].who,
                pair[1].start,
                (end - pair[1].start) / 1000
            );
        }
    }
}

/// A client-go elector process.
struct ClientGo {
    identity: String,
    child: Child,
    events: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl ClientGo {
    fn spawn(binary: &Path, kubeconfig: &Path, lease: &str, identity: &str, terms: &Terms) -> Self {
        let mut child = Command::new(binary)
            .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
            .args([
                "--namespace",
                "default",
                "--lease-name",
                lease,
                "--identity",
                identity,
            ])
            .args(["--lease-duration-ms", &LEASE.as_millis().to_string()])
            .args([
                "--renew-deadline-ms",
                &RENEW_DEADLINE.as_millis().to_string(),
            ])
            .args(["--retry-period-ms", &RETRY.as_millis().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the client-go elector");
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let terms = terms.clone();
        let who = identity.to_owned();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let ts = i128::from(event["ts_unix_nanos"].as_i64().unwrap_or(0));
                match event["event"].as_str() {
                    Some("started_leading") => terms.start(&who, ts),
                    Some("stopped_leading") => terms.end(&who, ts),
                    _ => {}
                }
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        Self {
            identity: identity.to_owned(),
            child,
            events,
        }
    }

    async fn wait_for(&mut self, event: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let next = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("{}: no {event} within {PATIENCE:?}", self.identity))
                .unwrap_or_else(|| panic!("{}: exited before {event}", self.identity));
            if next["event"] == event {
                return next;
            }
        }
    }

    /// SIGTERM: client-go cancels its context, releases, and exits. Its
    /// leader work is cancelled at this instant, so its term ends here (it
    /// prints `stopped_leading` only after releasing).
    async fn terminate(&mut self, terms: &Terms) {
        terms.end(&self.identity, now_nanos());
        let pid = self.child.id().expect("running").to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        self.wait_for("exited").await;
    }

    /// SIGKILL: gone without a release, like a crash.
    async fn kill(&mut self, terms: &Terms) {
        self.child.kill().await.unwrap();
        terms.end(&self.identity, now_nanos());
    }
}

/// Records a kube-elector's terms on the wall clock.
fn record(handle: &ElectorHandle, terms: &Terms) {
    let mut rx = handle.subscribe();
    let who = handle.identity().to_owned();
    let terms = terms.clone();
    let (base_instant, base_wall) = (Instant::now(), now_nanos());
    let wall = move |at: Instant| {
        let delta = if at >= base_instant {
            i128::try_from((at - base_instant).as_nanos()).unwrap()
        } else {
            -i128::try_from((base_instant - at).as_nanos()).unwrap()
        };
        base_wall + delta
    };
    tokio::spawn(async move {
        let mut current: Option<u64> = None;
        loop {
            {
                let state = rx.borrow_and_update();
                let term = state.term.as_ref().map(|t| (t.id(), t.started_at()));
                if current.is_some() && term.map(|t| t.0) != current {
                    terms.end(&who, wall(term.map_or(state.since, |t| t.1)));
                    current = None;
                }
                if let Some((id, started)) = term
                    && current.is_none()
                {
                    terms.start(&who, wall(started));
                    current = Some(id);
                }
            }
            if rx.changed().await.is_err() {
                if current.is_some() {
                    terms.end(&who, now_nanos());
                }
                return;
            }
        }
    });
}

struct Setup {
    target: Target,
    binary: PathBuf,
    kubeconfig: PathBuf,
    lease: String,
    terms: Terms,
}

async fn setup(prefix: &str) -> Option<Setup> {
    let Some(binary) = client_go_binary() else {
        support::skipped(
            "no client-go elector binary (run scripts/e2e-real.sh, or set KUBE_ELECTOR_CLIENT_GO_ELECTOR)",
        );
        return None;
    };
    let target = Target::new().await;
    let kubeconfig = match (target.embedded(), std::env::var_os(support::KUBECONFIG_ENV)) {
        (Some(server), _) => {
            let path =
                std::env::temp_dir().join(format!("{}.kubeconfig", support::unique_name(prefix)));
            server.write_kubeconfig(&path, "client-go").unwrap();
            path
        }
        (None, Some(path)) => PathBuf::from(path),
        (None, None) => unreachable!(),
    };
    Some(Setup {
        target,
        binary,
        kubeconfig,
        lease: support::unique_name(prefix),
        terms: Terms::default(),
    })
}

impl Setup {
    fn kube_elector(&self, identity: &str, release: bool) -> ElectorHandle {
        let config = ElectorConfig::new(&self.lease)
            .namespace(self.target.namespace())
            .identity(identity)
            .lease_duration(LEASE)
            .renew_deadline(RENEW_DEADLINE)
            .retry_period(RETRY)
            .release_on_cancel(release);
        let handle = LeaderElector::new(self.target.client_for(identity), config)
            .unwrap()
            .spawn();
        record(&handle, &self.terms);
        handle
    }

    fn client_go(&self, identity: &str) -> ClientGo {
        ClientGo::spawn(
            &self.binary,
            &self.kubeconfig,
            &self.lease,
            identity,
            &self.terms,
        )
    }
}

async fn wait_event(events: &mut LeaderEvents, wanted: &LeaderEvent) {
    timeout(PATIENCE, async {
        while let Some(e) = events.next().await {
            if e == *wanted {
                return;
            }
        }
        panic!("events ended before {wanted:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {wanted:?} within {PATIENCE:?}"));
}

/// A client-go leader, and a kube-elector that has seen it lead.
async fn client_go_leads_kube_elector_follows(
    s: &Setup,
) -> (ClientGo, ElectorHandle, LeaderEvents) {
    let mut go = s.client_go("client-go-0");
    go.wait_for("started_leading").await;
    let ours = s.kube_elector("kube-elector-0", true);
    let mut events = ours.events();
    let leader = LeaderEvent::NewLeader {
        identity: Some("client-go-0".into()),
    };
    wait_event(&mut events, &leader).await;
    (go, ours, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the client-go elector binary: scripts/e2e-real.sh runs it"]
async fn client_go_leader_released_by_sigterm_is_followed_by_kube_elector() {
    let Some(s) = setup("cg-to-ke").await else {
        return;
    };
    let (mut go, ours, mut events) = client_go_leads_kube_elector_follows(&s).await;
    go.terminate(&s.terms).await;
    wait_event(&mut events, &LeaderEvent::StartedLeading).await;
    s.terms.wait_started("kube-elector-0").await;
    s.terms.assert_no_overlap();
    assert!(ours.is_leader());
    if let Some(server) = s.target.embedded() {
        // client-go's requests are attributed to its kubeconfig's identity.
        assert!(server.requests().client("client-go") > 0);
    }
    ours.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the client-go elector binary: scripts/e2e-real.sh runs it"]
async fn kube_elector_leader_shut_down_is_followed_by_client_go() {
    let Some(s) = setup("ke-to-cg").await else {
        return;
    };
    let ours = s.kube_elector("kube-elector-0", true);
    drop(ours.became_leader().await.unwrap());
    let mut go = s.client_go("client-go-0");
    let seen = go.wait_for("new_leader").await;
    assert_eq!(seen["leader"], "kube-elector-0");
    ours.shutdown().await.unwrap();
    go.wait_for("started_leading").await;
    s.terms.assert_no_overlap();
    go.terminate(&s.terms).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the client-go elector binary: scripts/e2e-real.sh runs it"]
async fn killed_client_go_leader_is_replaced_after_expiry() {
    let Some(s) = setup("cg-killed").await else {
        return;
    };
    let (mut go, ours, mut events) = client_go_leads_kube_elector_follows(&s).await;
    go.kill(&s.terms).await;
    let killed_at = Instant::now();
    wait_event(&mut events, &LeaderEvent::StartedLeading).await;
    s.terms.wait_started("kube-elector-0").await;
    let waited = ours.state().term.unwrap().started_at() - killed_at;
    // Its last renew was at most a retry period before the kill.
    assert!(
        waited + RETRY >= LEASE,
        "took over {waited:?} after the kill: before the lease could expire"
    );
    s.terms.assert_no_overlap();
    ours.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the client-go elector binary: scripts/e2e-real.sh runs it"]
async fn crashed_kube_elector_leader_is_replaced_by_client_go_after_expiry() {
    let Some(s) = setup("ke-crashed").await else {
        return;
    };
    // Without release, shutting down is a crash as far as the Lease knows.
    let ours = s.kube_elector("kube-elector-0", false);
    drop(ours.became_leader().await.unwrap());
    let mut go = s.client_go("client-go-0");
    let seen = go.wait_for("new_leader").await;
    assert_eq!(seen["leader"], "kube-elector-0");
    let stopped_at = now_nanos();
    ours.shutdown().await.unwrap();
    let started = go.wait_for("started_leading").await;
    let waited = i128::from(started["ts_unix_nanos"].as_i64().unwrap()) - stopped_at;
    assert!(
        waited + i128::try_from(RETRY.as_nanos()).unwrap()
            >= i128::try_from(LEASE.as_nanos()).unwrap(),
        "client-go took over {waited} ns after the crash: before expiry"
    );
    s.terms.assert_no_overlap();
    go.terminate(&s.terms).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the client-go elector binary: scripts/e2e-real.sh runs it"]
async fn mixed_group_never_has_two_leaders_through_handovers() {
    let Some(s) = setup("mixed").await else {
        return;
    };
    let mut gos: Vec<ClientGo> = (0..2)
        .map(|i| s.client_go(&format!("client-go-{i}")))
        .collect();
    let ours: Vec<ElectorHandle> = (0..2)
        .map(|i| s.kube_elector(&format!("kube-elector-{i}"), true))
        .collect();
    // Hand over four times: whoever leads steps down (SIGTERM or shutdown).
    let mut ours: Vec<Option<ElectorHandle>> = ours.into_iter().map(Some).collect();
    for _round in 0..3 {
        let leader = s.terms.wait_leader(None).await;
        if let Some(go) = gos.iter_mut().find(|g| g.identity == leader) {
            go.terminate(&s.terms).await;
        } else if let Some(slot) = ours
            .iter_mut()
            .find(|h| h.as_ref().is_some_and(|h| h.identity() == leader))
        {
            slot.take().unwrap().shutdown().await.unwrap();
        }
        // The next leader, before the next round.
        s.terms.wait_leader(Some(&leader)).await;
    }
    s.terms.assert_no_overlap();
    for handle in ours.into_iter().flatten() {
        handle.shutdown().await.unwrap();
    }
    for go in &mut gos {
        if go.child.try_wait().unwrap().is_none() {
            go.terminate(&s.terms).await;
        }
    }
}
