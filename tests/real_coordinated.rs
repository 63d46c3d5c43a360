//! Coordinated leader election against kube-apiserver's coordinating
//! controller, which only a real kube-apiserver with the
//! `CoordinatedLeaderElection` gate on runs: every test here is
//! `#[ignore]`d, and `scripts/e2e-real.sh` runs them with
//! `--include-ignored` (elsewhere each says `SKIPPED`).

mod support;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::TryStreamExt;
use jiff::SignedDuration;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube_elector::{ElectorHandle, clock::SkewedClock};

use support::coordinated::{PATIENCE, all_see, candidates_api, config, shut_down, spawn};
use support::recorder::Recorder;
use support::{Target, unique_name, wait_sees_leader};

/// The real server with the gate on, where the controller runs; `None`
/// (after saying why) elsewhere.
async fn with_controller() -> Option<Target> {
    let target = Target::with_coordinated_leader_election(true).await?;
    if !target.is_real() {
        support::skipped(
            "needs kube-apiserver's coordinating controller (a real server with the CoordinatedLeaderElection gate on)",
        );
        return None;
    }
    Some(target)
}

/// Every (holder, preferredHolder) the Lease went through, as a watch saw
/// it from the start of the test.
#[derive(Clone, Default)]
struct History(Arc<Mutex<Vec<(String, String)>>>);

impl History {
    fn follow(target: &Target, lease: &str) -> Self {
        let history = Self::default();
        let api: Api<Lease> = Api::namespaced(target.client_for("history"), target.namespace());
        let (lease, seen) = (lease.to_owned(), history.clone());
        tokio::spawn(async move {
            let params = WatchParams::default().fields(&format!("metadata.name={lease}"));
            let mut version = "0".to_owned();
            loop {
                let Ok(stream) = api.watch(&params, &version).await else {
                    continue;
                };
                futures::pin_mut!(stream);
                while let Ok(Some(event)) = stream.try_next().await {
                    if let WatchEvent::Added(lease) | WatchEvent::Modified(lease) = event {
                        version = lease.metadata.resource_version.clone().unwrap_or_default();
                        let spec = lease.spec.unwrap_or_default();
                        let entry = (
                            spec.holder_identity.unwrap_or_default(),
                            spec.preferred_holder.unwrap_or_default(),
                        );
                        let mut all = seen.0.lock().unwrap_or_else(PoisonError::into_inner);
                        if all.last() != Some(&entry) {
                            all.push(entry);
                        }
                    }
                }
            }
        });
        history
    }

    fn states(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Waits until the Lease satisfies `condition`.
async fn until_lease(target: &Target, lease: &str, what: &str, condition: impl Fn(&Lease) -> bool) {
    let api: Api<Lease> = Api::namespaced(target.client_for("test"), target.namespace());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(Some(found)) = api.get_opt(lease).await
            && condition(&found)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {PATIENCE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `holder` holds the Lease. (The controller sets `strategy` only
/// once it has to elect someone other than the holder: a Lease created by
/// the candidate it would pick anyway never gets one.)
fn holder_is(lease: &Lease, holder: &str) -> bool {
    lease
        .spec
        .as_ref()
        .is_some_and(|s| s.holder_identity.as_deref() == Some(holder))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver's coordinating controller: scripts/e2e-real.sh runs it"]
async fn the_controller_picks_the_leader_a_newer_candidate_waits_an_older_one_takes_over() {
    let Some(target) = with_controller().await else {
        return;
    };
    let lease = unique_name("coordinated");
    let history = History::follow(&target, &lease);
    let recorder = Recorder::default();
    let name = |n: &str| format!("{lease}-{n}");
    let (a, b, c, d) = (name("a"), name("b"), name("c"), name("d"));
    // a and b emulate 1.34; a's binary is older: the controller picks a.
    let mut handles = vec![
        spawn(&target, config(&lease, &b, "1.35.0", "1.34.0"), &recorder),
        spawn(&target, config(&lease, &a, "1.34.0", "1.34.0"), &recorder),
    ];
    until_lease(&target, &lease, "the controller names a", |l| {
        holder_is(l, &a)
    })
    .await;
    all_see(&handles, &a).await;

    // A newer candidate joins: once the controller has seen it (its
    // LeaseCandidate exists, and the controller's requeue interval of 5 s
    // has passed), nothing changes.
    handles.push(spawn(
        &target,
        config(&lease, &c, "1.36.0", "1.35.0"),
        &recorder,
    ));
    let candidates = candidates_api(&target);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while candidates.get_opt(&c).await.ok().flatten().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "c declares itself in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(handles[1].is_leader(), "a still leads");
    assert!(
        history
            .states()
            .iter()
            .all(|(holder, preferred)| *holder != c && *preferred != c),
        "the newer candidate was never preferred nor held the Lease: {:?}",
        history.states()
    );

    // An older one joins: the controller prefers it, a hands over.
    handles.push(spawn(
        &target,
        config(&lease, &d, "1.34.0", "1.33.0"),
        &recorder,
    ));
    all_see(&handles, &d).await;
    until_lease(
        &target,
        &lease,
        "d holds the Lease under the strategy",
        |l| {
            holder_is(l, &d)
                && l.spec.as_ref().unwrap().strategy.as_deref() == Some("OldestEmulationVersion")
        },
    )
    .await;
    let states = history.states();
    assert!(
        states.contains(&(a.clone(), d.clone())),
        "the controller set preferredHolder to d while a held the Lease: {states:?}"
    );
    recorder.assert_no_overlap();
    shut_down(handles).await;
    let left = candidates
        .list(&ListParams::default())
        .await
        .expect("list candidates");
    assert!(
        left.items.iter().all(|o| !o
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .starts_with(&lease)),
        "every candidate deleted its LeaseCandidate when it stopped"
    );
}

/// The controller judges expiry by `renewTime` (the leader's wall clock) +
/// `leaseDurationSeconds` against its own clock. A leader whose clock lags
/// by less than lease − renew deadline is preferred away (it hands over);
/// one that lags by more than the lease looks expired at every renew, and
/// the controller gives its Lease to the next candidate outright: the
/// leader learns it only from the watch. This measures the limit the
/// guide states; it is not a property kube-elector can keep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver's coordinating controller: scripts/e2e-real.sh runs it"]
async fn a_leader_whose_clock_lags_past_the_margin_is_deposed_by_the_controller() {
    let Some(target) = with_controller().await else {
        return;
    };
    for (lag_secs, deposed) in [(1, false), (30, true)] {
        let lease = unique_name("skewed");
        let history = History::follow(&target, &lease);
        let recorder = Recorder::default();
        let (laggard, better) = (format!("{lease}-lags"), format!("{lease}-better"));
        let lagging = config(&lease, &laggard, "1.35.0", "1.35.0").clock(Arc::new(
            SkewedClock::new(SignedDuration::from_secs(-lag_secs)),
        ));
        let mut handles = vec![spawn(&target, lagging, &recorder)];
        until_lease(&target, &lease, "the laggard leads", |l| {
            holder_is(l, &laggard)
        })
        .await;
        wait_sees_leader(&mut handles[0].subscribe(), &laggard, PATIENCE).await;
        drop(handles[0].became_leader().await.expect("the laggard leads"));

        handles.push(spawn(
            &target,
            config(&lease, &better, "1.34.0", "1.34.0"),
            &recorder,
        ));
        tokio::time::timeout(PATIENCE, all_see(&handles, &better))
            .await
            .unwrap_or_else(|_| {
                panic!("lag {lag_secs} s: better never led: {:?}", history.states())
            });
        let states = history.states();
        let preferred_away = states.contains(&(laggard.clone(), better.clone()));
        assert_eq!(
            !preferred_away,
            deposed,
            "lag {lag_secs} s: the laggard was {} ({states:?})",
            if deposed {
                "deposed outright"
            } else {
                "asked to hand over"
            }
        );
        if !deposed {
            recorder.assert_no_overlap();
        }
        shut_down(handles).await;
    }
}

/// The wall-clock time (ns) of `at`, through one pair of readings.
fn wall_of(at: tokio::time::Instant, base: (tokio::time::Instant, i128)) -> i128 {
    let (instant, wall) = base;
    if at >= instant {
        wall + i128::try_from((at - instant).as_nanos()).unwrap()
    } else {
        wall - i128::try_from((instant - at).as_nanos()).unwrap()
    }
}

fn now_nanos() -> i128 {
    i128::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

/// Terms on the wall clock (ns): (who, start, end).
type WallTerms = Arc<Mutex<Vec<(String, i128, Option<i128>)>>>;

/// Records `handle`'s terms: the start as the term says, the end when its
/// end is published (no earlier than it ended, so an overlap is never hidden).
fn record_wall(handle: &ElectorHandle, terms: &WallTerms) {
    let mut state = handle.subscribe();
    let (who, terms) = (handle.identity().to_owned(), Arc::clone(terms));
    let base = (tokio::time::Instant::now(), now_nanos());
    tokio::spawn(async move {
        let mut open = false;
        loop {
            let term = state.borrow_and_update().term.clone();
            {
                let mut all = terms.lock().unwrap_or_else(PoisonError::into_inner);
                match (term, open) {
                    (Some(term), false) => {
                        all.push((who.clone(), wall_of(term.started_at(), base), None));
                        open = true;
                    }
                    (None, true) => {
                        if let Some(last) = all.iter_mut().rev().find(|t| t.0 == who) {
                            last.2 = Some(now_nanos());
                        }
                        open = false;
                    }
                    _ => {}
                }
            }
            if state.changed().await.is_err() {
                return;
            }
        }
    });
}

fn assert_no_wall_overlap(terms: &WallTerms) {
    let mut all = terms.lock().unwrap_or_else(PoisonError::into_inner).clone();
    all.sort_by_key(|t| t.1);
    for pair in all.windows(2) {
        let end = pair[0].2.unwrap_or(i128::MAX);
        assert!(
            end <= pair[1].1,
            "{} led until {end}, {} from {}: overlap ({all:?})",
            pair[0].0,
            pair[1].0,
            pair[1].1
        );
    }
}

/// client-go's elector, with `Coordinated: true` and its own `LeaseCandidate`
/// (`leaderelection.NewCandidate`), among kube-elector candidates: the
/// controller hands the Lease from kube-elector to client-go and back, each
/// through `preferredHolder`, without overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver's coordinating controller: scripts/e2e-real.sh runs it"]
async fn a_client_go_candidate_takes_part_in_the_same_coordinated_election() {
    let Some(target) = with_controller().await else {
        return;
    };
    let (Some(binary), Ok(kubeconfig)) = (
        std::env::var_os("KUBE_ELECTOR_CLIENT_GO_ELECTOR"),
        std::env::var(support::KUBECONFIG_ENV),
    ) else {
        return support::skipped("needs client-go's elector (KUBE_ELECTOR_CLIENT_GO_ELECTOR)");
    };
    let lease = unique_name("mixed");
    let history = History::follow(&target, &lease);
    let terms = WallTerms::default();
    let recorder = Recorder::default();
    let (newest, go, oldest) = (
        format!("{lease}-newest"),
        format!("{lease}-go"),
        format!("{lease}-oldest"),
    );
    let first = spawn(
        &target,
        config(&lease, &newest, "1.35.0", "1.35.0"),
        &recorder,
    );
    record_wall(&first, &terms);
    until_lease(&target, &lease, "the first candidate leads", |l| {
        holder_is(l, &newest)
    })
    .await;

    let mut child = tokio::process::Command::new(binary)
        .args(["--kubeconfig", &kubeconfig, "--namespace", "default"])
        .args(["--lease-name", &lease, "--identity", &go])
        .args(["--lease-duration-ms", "6000", "--renew-deadline-ms", "4000"])
        .args(["--retry-period-ms", "1000"])
        .args(["--coordinated-binary-version", "1.34.0"])
        .args(["--coordinated-emulation-version", "1.34.0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start client-go's elector");
    let stdout = child.stdout.take().expect("its stdout");
    {
        let (terms, go) = (Arc::clone(&terms), go.clone());
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let at = i128::from(event["ts_unix_nanos"].as_i64().unwrap_or_default());
                let mut all = terms.lock().unwrap_or_else(PoisonError::into_inner);
                match event["event"].as_str() {
                    Some("started_leading") => all.push((go.clone(), at, None)),
                    Some("stopped_leading") => {
                        if let Some(last) = all.iter_mut().rev().find(|t| t.0 == go) {
                            last.2 = Some(at);
                        }
                    }
                    _ => {}
                }
            }
        });
    }
    until_lease(
        &target,
        &lease,
        "the controller hands the Lease to client-go",
        |l| holder_is(l, &go),
    )
    .await;
    let last = spawn(
        &target,
        config(&lease, &oldest, "1.33.0", "1.33.0"),
        &recorder,
    );
    record_wall(&last, &terms);
    until_lease(&target, &lease, "and from client-go to the oldest", |l| {
        holder_is(l, &oldest)
    })
    .await;
    wait_sees_leader(&mut last.subscribe(), &oldest, PATIENCE).await;
    let states = history.states();
    assert!(
        states.contains(&(newest.clone(), go.clone()))
            && states.contains(&(go.clone(), oldest.clone())),
        "each handover went through preferredHolder: {states:?}"
    );
    assert_no_wall_overlap(&terms);
    recorder.assert_no_overlap();
    child.kill().await.expect("stop client-go's elector");
    shut_down(vec![first, last]).await;
}

/// A directed handover in coordinated election: the release goes to
/// another candidate, and the former leader does not take it back by
/// itself. It withdraws its `LeaseCandidate` until another candidate holds
/// the Lease; declared again, and still the best by version, the controller
/// may prefer it once more (its strategy, not the handover, has the last
/// word), and then the Lease comes back through `preferredHolder`, again
/// without overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver's coordinating controller: scripts/e2e-real.sh runs it"]
async fn a_handover_in_coordinated_election_goes_to_another_candidate_first() {
    let Some(target) = with_controller().await else {
        return;
    };
    let lease = unique_name("coordinated-handover");
    let history = History::follow(&target, &lease);
    let recorder = Recorder::default();
    let name = |n: &str| format!("{lease}-{n}");
    let (best, next, last) = (name("best"), name("next"), name("last"));
    let mut handles = vec![spawn(
        &target,
        config(&lease, &best, "1.33.0", "1.33.0"),
        &recorder,
    )];
    until_lease(&target, &lease, "the best candidate leads", |l| {
        holder_is(l, &best)
    })
    .await;
    handles.push(spawn(
        &target,
        config(&lease, &next, "1.34.0", "1.34.0"),
        &recorder,
    ));
    handles.push(spawn(
        &target,
        config(&lease, &last, "1.35.0", "1.35.0"),
        &recorder,
    ));
    all_see(&handles, &best).await;

    let outcome = handles[0]
        .hand_over(kube_elector::handover::Successor::Any)
        .await
        .expect("the handover");
    assert!(
        matches!(
            outcome,
            kube_elector::handover::HandoverOutcome::Released { .. }
        ),
        "{outcome:?}"
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let states = history.states();
        let after = states
            .iter()
            .position(|(holder, _)| holder.is_empty())
            .map_or(&[][..], |i| &states[i + 1..]);
        if let Some((holder, _)) = after.iter().find(|(holder, _)| !holder.is_empty()) {
            assert_ne!(
                *holder, best,
                "the first holder after the release is another candidate: {states:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody took the released Lease in time: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Whatever the controller decides next, never two leaders.
    tokio::time::sleep(Duration::from_secs(7)).await;
    recorder.assert_no_overlap();
    shut_down(handles).await;
}

// === Twins under the controller, with network faults ===

/// A small deterministic generator (xorshift64*): a seed replays the same
/// schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

/// Two instances of one identity (a `StatefulSet` pod recreated while the
/// old one is cut off), both declared candidates and the controller's pick
/// by version, and one other candidate, all through the TCP fault proxy:
/// each step cuts one of them off (a partition, healed with a reset), holds
/// its requests and lets them through late (a hung request), or slows it,
/// for up to 8 s (past the 6 s lease, so terms move: to the other twin once
/// the record expired, or to the other candidate when the controller finds
/// the twins' candidate stale), or restarts a twin as a new instance. No
/// two of them ever believe they lead at one instant, every seed; a leader
/// is back once the faults stop.
///
/// Needs the real server with the gate on and the fault proxy
/// (`KUBE_ELECTOR_FAULTPROXY`), as `scripts/e2e-real.sh` provides. Three
/// seeds of 25 s; `KUBE_ELECTOR_CHAOS_SEED=N` replays one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kube-apiserver's coordinating controller and the fault proxy: scripts/e2e-real.sh runs it"]
async fn twins_and_another_candidate_never_lead_at_once_under_network_faults() {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    use support::fault_proxy::{self, FaultProxy};

    let Some(_target) = with_controller().await else {
        return;
    };
    let (Ok(kubeconfig), Some(proxy_binary)) = (
        std::env::var(support::KUBECONFIG_ENV),
        fault_proxy::binary(),
    ) else {
        return support::skipped(&format!(
            "needs the fault proxy ({})",
            fault_proxy::PROXY_ENV
        ));
    };
    let base = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig).expect("read the kubeconfig"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("load the kubeconfig");
    let seeds = std::env::var("KUBE_ELECTOR_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or_else(|| vec![42, 7919, 31_337], |seed| vec![seed]);
    for seed in seeds {
        let proxy = FaultProxy::start(&proxy_binary, base.clone()).await;
        twins_under_faults(seed, &proxy).await;
    }
}

/// One seed of `twins_and_another_candidate_never_lead_at_once_under_network_faults`.
async fn twins_under_faults(seed: u64, proxy: &support::fault_proxy::FaultProxy) {
    let lease = unique_name("coordinated-chaos");
    let (pod, other) = (format!("{lease}-pod"), format!("{lease}-other"));
    let recorder = Recorder::default();
    let mut log = String::new();
    let started = tokio::time::Instant::now();
    let note = |log: &mut String, what: &str| {
        use std::fmt::Write as _;
        let _ = writeln!(log, "{:>7.2?} {what}", started.elapsed());
    };
    // Each candidate by its label (the proxy's client): the twins
    // `twin-<n>` share the identity `pod`, the best by version.
    let spawn = |label: &str, identity: &str, version: &str| {
        let handle = kube_elector::LeaderElector::new(
            proxy.client_for(label),
            config(&lease, identity, version, version),
        )
        .expect("valid config")
        .spawn();
        recorder.watch_as(&handle, label);
        (label.to_owned(), handle)
    };
    let mut electors = vec![
        spawn("twin-1", &pod, "1.33.0"),
        spawn("twin-2", &pod, "1.33.0"),
        spawn("other", &other, "1.34.0"),
    ];
    let mut instances = 2;
    assert!(
        recorder
            .wait_leading(tokio::time::Instant::now() + PATIENCE)
            .await,
        "seed {seed}: nobody leads"
    );
    let mut rng = Rng(seed);
    let end = tokio::time::Instant::now() + Duration::from_secs(25);
    while tokio::time::Instant::now() < end {
        if rng.below(5) == 0 {
            // The replacement of a twin: a new instance, the old one
            // stopped (its candidate and Lease released).
            let twin = usize::from(rng.below(2) != 0);
            let (old, handle) = electors.remove(twin);
            instances += 1;
            let label = format!("twin-{instances}");
            note(&mut log, &format!("{old} replaced by {label}"));
            let _ = handle.shutdown().await;
            electors.insert(twin, spawn(&label, &pod, "1.33.0"));
        } else {
            let i = usize::try_from(rng.below(electors.len() as u64)).unwrap();
            network_fault(proxy, &mut rng, &electors[i].0, |what| note(&mut log, what)).await;
        }
        if let Some(overlap) = recorder.overlap() {
            panic!("seed {seed}: two leaders at once\n{log}\n{overlap}");
        }
    }
    note(&mut log, "faults stop");
    let calm = tokio::time::Instant::now();
    assert!(
        recorder.wait_leading(calm + PATIENCE).await,
        "seed {seed}: no leader within {PATIENCE:?} after the faults stopped\n{log}\nterms: {:#?}",
        recorder.intervals()
    );
    let back = calm.elapsed();
    for (_, handle) in electors {
        let _ = handle.shutdown().await;
    }
    if let Some(overlap) = recorder.overlap() {
        panic!("seed {seed}: two leaders at once\n{log}\n{overlap}");
    }
    let terms = recorder.intervals();
    eprintln!(
        "coordinated chaos with twins, seed {seed}: {} terms ({} of the twins), overlap 0, a \
         leader {back:.2?} after the faults stopped",
        terms.len(),
        terms.iter().filter(|t| t.who.starts_with("twin-")).count(),
    );
    if std::env::var_os("KUBE_ELECTOR_CHAOS_LOG").is_some() {
        eprintln!("seed {seed}: the log\n{log}");
    }
}

/// One network fault of the client `label` through the proxy, for 0.5 s
/// to 8 s (past the 6 s lease: terms move), then cleared: a partition
/// (healed with a reset), requests that hang and then go through late, or
/// latency. `note` is told what it was.
async fn network_fault(
    proxy: &support::fault_proxy::FaultProxy,
    rng: &mut Rng,
    label: &str,
    note: impl FnOnce(&str),
) {
    use kube_elector_testing::FaultTarget;
    use serde_json::json;
    let target = FaultTarget::Client(label.to_owned());
    let hold = rng.millis(500, 8_000);
    match rng.below(4) {
        0 | 1 => {
            note(&format!("partition {label}, {hold:?}"));
            proxy.set(&target, json!({ "partition": true }));
            tokio::time::sleep(hold).await;
            proxy.set(&target, json!({ "partition": false, "reset": true }));
        }
        2 => {
            note(&format!(
                "requests of {label} hang, {hold:?}, then go through late"
            ));
            proxy.set(&target, json!({ "partition": true }));
            tokio::time::sleep(hold).await;
            proxy.set(&target, json!({ "partition": false }));
        }
        _ => {
            let latency = rng.millis(100, 900);
            note(&format!("{label} {latency:?} slow, {hold:?}"));
            let half = u64::try_from(latency.as_millis() / 2).unwrap();
            proxy.set(&target, json!({ "latency_ms": half }));
            tokio::time::sleep(hold).await;
        }
    }
    proxy.clear();
}
