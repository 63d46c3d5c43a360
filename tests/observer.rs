//! An observer follows who leads without ever writing. Embedded server only
//! (request counters).

mod support;

use std::time::Duration;

use futures::StreamExt;
use kube_elector::{ElectorConfig, LeaderElector, LeaderEvent, observer::LeaderObserver};
use kube_elector_testing::{LeaseApiServer, Verb};
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
