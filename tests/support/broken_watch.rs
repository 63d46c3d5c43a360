//! A follower whose watch breaks while the Lease is held, measured on the
//! leader's own cadence: how many times the leader renewed between the
//! break and the follower's first read, and how soon a release was taken.
//!
//! The leader renews every retry period, so its renews are the clock the
//! watch-trust rules count in: a follower that distrusts a silent watch
//! after about one renew interval reads before the leader's second renew
//! since the break; one that reads at once on a watch error reads before
//! the next renew. Both electors run in one process, so a stalled runtime
//! delays the leader's renews and the follower's timers alike.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_elector::ElectorHandle;
use kube_elector_testing::{LeaseApiServer, Verb};
use tokio::time::Instant;

const PATIENCE: Duration = Duration::from_secs(30);

/// What a broken watch cost the follower.
#[derive(Debug)]
pub struct BrokenWatch {
    /// The leader's renews (PUTs) that landed between the break and the
    /// follower's first read after it.
    pub renews_before_first_read: u64,
    /// From the release's return to the start of the follower's term.
    pub taken_after_release: Duration,
}

/// `leader` (client `"a"`) leads `name` and `follower` (client `"b"`)
/// follows it. Right after a renew of the leader's lands, `break_watch`
/// breaks the follower's watch; once the follower has read the Lease,
/// the leader releases it and the follower takes it.
pub async fn follower_with_a_broken_watch(
    server: &LeaseApiServer,
    name: &str,
    leader: ElectorHandle,
    follower: &ElectorHandle,
    break_watch: impl FnOnce(&LeaseApiServer),
) -> BrokenWatch {
    drop(
        tokio::time::timeout(PATIENCE, leader.became_leader())
            .await
            .expect("the leader leads in time")
            .expect("it leads"),
    );
    super::wait_sees_leader(&mut follower.subscribe(), "a", PATIENCE).await;
    let renews_before_first_read = renews_before_first_read(server, name, break_watch).await;
    leader.shutdown().await.expect("a clean shutdown");
    let released = Instant::now();
    let leadership = tokio::time::timeout(PATIENCE, follower.became_leader())
        .await
        .expect("the follower takes the released Lease in time")
        .expect("it leads");
    let taken_after_release = leadership.started_at().saturating_duration_since(released);
    eprintln!(
        "{name}: the follower first read the Lease after {renews_before_first_read} renew(s) of the \
         leader since its watch broke, and took the release {taken_after_release:.2?} after it"
    );
    BrokenWatch {
        renews_before_first_read,
        taken_after_release,
    }
}

/// With client `"a"` leading `name` and client `"b"` following it: right
/// after a renew of `"a"` lands, `break_watch` breaks `"b"`'s watch; the
/// renews of `"a"` that landed before `"b"` next read the Lease.
pub async fn renews_before_first_read(
    server: &LeaseApiServer,
    name: &str,
    break_watch: impl FnOnce(&LeaseApiServer),
) -> u64 {
    let api: Api<Lease> = Api::namespaced(server.client_for("outsider"), "default");
    let version = |lease: &Lease| lease.metadata.resource_version.clone();
    let before = version(&api.get(name).await.expect("read the Lease"));
    let deadline = Instant::now() + PATIENCE;
    // The next renew: the follower's watch delivers it within a
    // millisecond or so, and breaks right after.
    while version(&api.get(name).await.expect("read the Lease")) == before {
        assert!(Instant::now() < deadline, "the leader never renewed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let counts = server.requests();
    let (gets, renews) = (counts.get("b", Verb::Get), counts.get("a", Verb::Update));
    break_watch(server);
    loop {
        let counts = server.requests();
        if counts.get("b", Verb::Get) > gets {
            return counts.get("a", Verb::Update) - renews;
        }
        assert!(
            Instant::now() < deadline,
            "the follower never read the Lease after its watch broke"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
