//! `LeaseLock`, the seed-compatible polled lock, over real HTTP.

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_elector::{
    Error,
    lock::{LeaseLock, LeaseLockParams},
};

use support::Target;

fn lock(target: &Target, lease: &str, holder: &str, ttl: Duration) -> LeaseLock {
    LeaseLock::new(
        target.client_for(holder),
        target.namespace(),
        LeaseLockParams {
            holder_id: holder.into(),
            lease_name: lease.into(),
            lease_ttl: ttl,
        },
    )
}

#[tokio::test]
async fn one_holder_acquires_another_is_refused_until_step_down() {
    let target = Target::new().await;
    let lease = support::unique_name("lock");
    let first = lock(&target, &lease, "holder-01", Duration::from_secs(15));
    let second = lock(&target, &lease, "holder-02", Duration::from_secs(15));

    let got = first.try_acquire_or_renew().await.unwrap();
    assert!(got.acquired_lease);
    let held = got.lease.expect("the created Lease");
    assert_eq!(
        held.spec.as_ref().unwrap().holder_identity.as_deref(),
        Some("holder-01")
    );

    let refused = second.try_acquire_or_renew().await.unwrap();
    assert!(!refused.acquired_lease, "a live Lease was taken over");

    // Renewing keeps the holder and the term.
    let renewed = first.try_acquire_or_renew().await.unwrap();
    assert!(renewed.acquired_lease);
    let spec = renewed.lease.unwrap().spec.unwrap();
    assert_eq!(spec.lease_transitions, Some(0));
    assert!(spec.renew_time >= held.spec.unwrap().renew_time);

    // After step_down the Lease is free: the other holder takes it at once.
    first.step_down().await.unwrap();
    let taken = second.try_acquire_or_renew().await.unwrap();
    assert!(taken.acquired_lease);
    let spec = taken.lease.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("holder-02"));
    assert_eq!(spec.lease_transitions, Some(1));

    // Stepping down without holding is refused and changes nothing.
    let err = first.step_down().await.unwrap_err();
    assert!(
        matches!(&err, Error::NotHolder { holder: Some(h) } if h == "holder-02"),
        "{err}"
    );
}

#[tokio::test]
async fn a_held_lease_is_taken_only_after_it_was_seen_unchanged_for_its_ttl() {
    let target = Target::new().await;
    let lease = support::unique_name("lock-expiry");
    let ttl = Duration::from_secs(1);
    let first = lock(&target, &lease, "a", ttl);
    let second = lock(&target, &lease, "b", ttl);
    assert!(first.try_acquire_or_renew().await.unwrap().acquired_lease);
    // `b` first sees the Lease now; until a TTL has passed on b's clock since
    // then, it must not take it, however old renewTime is.
    let seen = tokio::time::Instant::now();
    assert!(!second.try_acquire_or_renew().await.unwrap().acquired_lease);
    let deadline = seen + Duration::from_secs(10);
    loop {
        let attempt_started = tokio::time::Instant::now();
        if second.try_acquire_or_renew().await.unwrap().acquired_lease {
            assert!(
                attempt_started >= seen + ttl,
                "taken {:?} after first seen, before the TTL",
                attempt_started - seen
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never taken after expiry"
        );
        tokio::time::sleep(ttl / 4).await;
    }
}

#[tokio::test]
async fn concurrent_candidates_on_an_expired_lease_never_both_win() {
    let target = Target::new().await;
    let lease = support::unique_name("lock-race");
    let api: Api<Lease> = Api::namespaced(target.client_for("admin"), target.namespace());
    for round in 0..5 {
        let locks: Vec<_> = (0..4)
            .map(|i| {
                lock(
                    &target,
                    &lease,
                    &format!("racer-{i}"),
                    Duration::from_secs(60),
                )
            })
            .collect();
        let results =
            futures::future::join_all(locks.iter().map(LeaseLock::try_acquire_or_renew)).await;
        let winners: Vec<_> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.as_ref().is_ok_and(|r| r.acquired_lease))
            .map(|(i, _)| format!("racer-{i}"))
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let holder = api.get(&lease).await.unwrap().spec.unwrap().holder_identity;
        assert_eq!(holder.as_ref(), winners.first(), "round {round}");
        // Free the Lease for the next round.
        let winner = winners[0]
            .strip_prefix("racer-")
            .unwrap()
            .parse::<usize>()
            .unwrap();
        locks[winner].step_down().await.unwrap();
    }
}

#[tokio::test]
async fn a_ttl_that_is_not_whole_seconds_is_a_config_error() {
    let target = Target::new().await;
    let l = lock(&target, "fraction", "a", Duration::from_millis(1500));
    let err = l.try_acquire_or_renew().await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

/// Three polled locks on one Lease, two of them twins (one `holder_id`, as a
/// pod and its replacement), with TTLs of 2 s and 3 s, under a seeded
/// schedule of the fault model a polled lock can meet: partitions, hung
/// requests, latency, lost and late answers to writes, stale reads, an
/// outside writer's takeover, a graceful stop and restart of the server,
/// wall clocks an hour apart. A lock acts as leader while its last result
/// `is_leading()`; no two locks may ever believe so at one instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one schedule, read top to bottom
async fn polled_locks_never_act_as_leader_at_once_under_random_faults() {
    use std::sync::{Arc, Mutex};

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use kube::api::PostParams;
    use kube_elector::clock::SkewedClock;
    use kube_elector_testing::{FaultTarget, LeaseApiServer};
    use tokio::time::Instant;

    let server = LeaseApiServer::start().await.unwrap();
    let name = support::unique_name("polled-chaos");
    let beliefs = Arc::new(Mutex::new(Vec::<(String, Instant, Instant)>::new()));
    let end = Instant::now() + Duration::from_secs(16);
    let mut pollers = Vec::new();
    // (label: the client its faults hit, holder_id, TTL, wall-clock offset)
    for (label, holder, ttl, hours) in [("a", "a", 2, 0), ("b", "twin", 3, 1), ("c", "twin", 2, -1)]
    {
        let ttl = Duration::from_secs(ttl);
        let lock = LeaseLock::new(
            server.client_for(label),
            "default",
            LeaseLockParams {
                holder_id: holder.into(),
                lease_name: name.clone(),
                lease_ttl: ttl,
            },
        )
        .with_clock(SkewedClock::new(jiff::SignedDuration::from_hours(hours)));
        let beliefs = Arc::clone(&beliefs);
        pollers.push(tokio::spawn(async move {
            let mut last: Option<(Instant, Instant)> = None;
            while Instant::now() < end {
                let result = lock.try_acquire_or_renew().await;
                let now = Instant::now();
                if let Some((from, until)) = last.take() {
                    beliefs
                        .lock()
                        .unwrap()
                        .push((label.into(), from, until.min(now)));
                }
                if let Ok(result) = result
                    && result.is_leading()
                {
                    last = Some((now, result.valid_until.unwrap()));
                }
                tokio::time::sleep(ttl / 4).await;
            }
            if let Some((from, until)) = last {
                let until = until.min(Instant::now());
                beliefs.lock().unwrap().push((label.into(), from, until));
            }
        }));
    }
    let api: Api<Lease> = Api::namespaced(server.client_for("outside"), "default");
    // Seed 1 draws every kind of fault below within the run.
    let mut below = support::seeded(1);
    let mut log = Vec::new();
    while Instant::now() + Duration::from_secs(2) < end {
        let who = FaultTarget::Client(["a", "b", "c"][usize::try_from(below(3)).unwrap()].into());
        let hold = Duration::from_millis(300 + below(1500));
        let kind = below(9);
        log.push(format!("{kind} on {who:?} for {hold:?}"));
        match kind {
            0 => server.partition(who.clone()),
            1 => server.hang(who.clone()),
            2 => server.set_latency(who.clone(), Duration::from_millis(100 + below(600))),
            3 => server.lose_write_answers(who.clone(), true),
            4 => server.delay_write_answers(who.clone(), Duration::from_millis(100 + below(800))),
            5 => server.stale_reads(who.clone(), true),
            6 => {
                // An outside writer takes the Lease with a record of the
                // locks' own duration (a shorter one is a documented limit).
                if let Ok(mut lease) = api.get(&name).await {
                    let spec = lease.spec.get_or_insert_with(Default::default);
                    spec.holder_identity = Some("intruder".into());
                    spec.lease_duration_seconds = Some(2);
                    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
                    let _ = api.replace(&name, &PostParams::default(), &lease).await;
                }
            }
            7 => server.stop_gracefully(Duration::from_millis(200)),
            _ => {}
        }
        tokio::time::sleep(hold).await;
        if kind == 7 {
            server.restart();
        }
        server.heal(who.clone());
        server.release(who);
        server.clear_faults();
    }
    for poller in pollers {
        poller.await.unwrap();
    }
    let beliefs = beliefs.lock().unwrap().clone();
    for (who, from, until) in &beliefs {
        for (other, f2, u2) in &beliefs {
            assert!(
                !(who != other && from < u2 && f2 < until),
                "{who} and {other} both acted as leader: {:?} of overlap\nschedule: {log:#?}",
                (*until).min(*u2) - (*from).max(*f2)
            );
        }
    }
    assert!(!beliefs.is_empty(), "nobody ever led\nschedule: {log:#?}");
}
