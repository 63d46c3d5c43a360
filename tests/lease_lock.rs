//! `LeaseLock`, the seed-compatible polled lock, over real HTTP.

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_elector::{Error, LeaseLock, LeaseLockParams};

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
