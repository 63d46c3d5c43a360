//! An observer follows who leads without ever writing. Embedded server only
//! (request counters).

mod support;

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kube_elector::{ElectorConfig, LeaderElector, LeaderEvent, observer::LeaderObserver};
use kube_elector_testing::{FaultTarget, LeaseApiServer, Verb};
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(20);

fn config(lease: &str, identity: &str) -> ElectorConfig {
    support::short_config(lease, identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_sees_every_change_of_leader_in_order_and_writes_nothing() {
    let server = LeaseApiServer::start().await.unwrap();
    let lease = support::unique_name("observed");
    let observer = LeaderObserver::new(
        server.client_for("observer"),
        support::short_observer(&lease),
    )
    .unwrap()
    .spawn();
    let mut events = observer.events();
    let mut reported = Vec::new();
    // Three electors lead in turn: each hands over by shutting down.
    let mut electors: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|who| {
            LeaderElector::new(server.client_for(who), config(&lease, who))
                .unwrap()
                .spawn()
        })
        .collect();
    for _ in 0..3 {
        let (leadership, index) = {
            let (leadership, index, _rest) = timeout(
                PATIENCE,
                futures::future::select_all(electors.iter().map(|e| Box::pin(e.became_leader()))),
            )
            .await
            .expect("a leader within the patience");
            (leadership.unwrap(), index)
        };
        reported.push(leadership.identity().to_owned());
        drop(leadership);
        // The observer names this leader before it hands over.
        loop {
            let event = timeout(PATIENCE, events.next())
                .await
                .expect("an event")
                .expect("open");
            if event
                == (LeaderEvent::NewLeader {
                    identity: Some(reported.last().unwrap().clone()),
                })
            {
                break;
            }
        }
        electors.remove(index).shutdown().await.unwrap();
    }
    assert_eq!(reported.len(), 3);
    let counts = server.requests();
    for verb in [Verb::Create, Verb::Update, Verb::Patch, Verb::Delete] {
        assert_eq!(
            counts.get("observer", verb),
            0,
            "the observer sent a {verb}"
        );
    }
    assert!(
        counts.get("observer", Verb::Watch) >= 1,
        "the observer watches"
    );
    observer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_reports_no_leader_once_a_crashed_holder_expired() {
    let server = LeaseApiServer::start().await.unwrap();
    let lease = support::unique_name("observed-crash");
    let observer = LeaderObserver::new(
        server.client_for("observer"),
        support::short_observer(&lease),
    )
    .unwrap()
    .spawn();
    let leader = LeaderElector::new(
        server.client_for("a"),
        config(&lease, "a").release_on_cancel(false),
    )
    .unwrap()
    .spawn();
    drop(
        timeout(PATIENCE, leader.became_leader())
            .await
            .unwrap()
            .unwrap(),
    );
    let mut state = observer.subscribe();
    support::wait_sees_leader(&mut state, "a", PATIENCE).await;
    // A crash: the task ends without releasing.
    leader.shutdown().await.unwrap();
    timeout(PATIENCE, state.wait_for(|s| s.leader.is_none()))
        .await
        .expect("the observer saw the holder expire")
        .unwrap();
    assert_eq!(observer.leader(), None);
    assert_eq!(server.requests().get("observer", Verb::Update), 0);
    observer.shutdown().await.unwrap();
}

/// Right after `spawn` an observer has not read the Lease, and says so
/// (`has_read`, `ready` pending) rather than reporting "no leader"; once
/// its first read is answered, `ready` completes and it names the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_waits_for_its_first_read_then_names_the_leader() {
    let server = LeaseApiServer::start().await.unwrap();
    let lease = support::unique_name("first-read");
    let leader = LeaderElector::new(server.client_for("a"), config(&lease, "a"))
        .unwrap()
        .spawn();
    drop(
        timeout(PATIENCE, leader.became_leader())
            .await
            .expect("a leads within the patience")
            .expect("a's term"),
    );
    // The observer's requests go unanswered until released: it cannot have
    // read the Lease, whatever the scheduling.
    let observer_client = FaultTarget::Client("observer".into());
    server.hang(observer_client.clone());
    let observer = LeaderObserver::new(
        server.client_for("observer"),
        support::short_observer(&lease),
    )
    .unwrap()
    .spawn();
    assert!(!observer.has_read(), "has_read before any answer");
    assert!(
        observer.ready().now_or_never().is_none(),
        "ready before any answer"
    );
    assert_eq!(observer.leader(), None, "a leader before any answer");
    server.release(observer_client);
    timeout(PATIENCE, observer.ready())
        .await
        .expect("the observer's first read within the patience");
    assert!(observer.has_read(), "has_read after ready");
    // The runner marks the read a moment before it publishes the state it
    // read (src/elector/runner/mod.rs, `observe`): the leader is named by
    // that publication, which the receiver sees whether or not it already
    // came.
    let mut state = observer.subscribe();
    timeout(
        PATIENCE,
        state.wait_for(|s| s.leader.as_deref() == Some("a")),
    )
    .await
    .expect("the observer names a after its first read")
    .unwrap();
}
