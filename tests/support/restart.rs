//! What an API server does to its clients across a graceful stop and a
//! restart on the same data, checked the same way on the embedded server
//! (`tests/restart.rs`) and on kube-apiserver (`tests/real_restart.rs`):
//!
//! - a watch opened before the stop stays open after the server stopped
//!   answering requests, and delivers nothing until it breaks;
//! - after the restart, a watch resumed from the last version that watch
//!   saw gets `410 Expired`: the client must list again;
//! - a watch from a fresh list's version delivers the next change.
//!
//! kube-apiserver v1.37 showed both on SIGTERM with the watch cache on; the
//! embedded server models them with `stop_gracefully` and `restart`.

use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::Api;
use kube::api::{ObjectMeta, PostParams, WatchEvent, WatchParams};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

/// Deadline of every step: a kube-apiserver start on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(180);
/// Deadline of one request while the server is stopping.
const REQUEST: Duration = Duration::from_secs(2);

/// A server the check can stop and start again.
#[allow(async_fn_in_trait)] // used in this test crate only
pub trait Restartable {
    /// A client of the server (its address and credentials survive a restart).
    async fn client(&self) -> kube::Client;
    /// Begins a graceful stop and returns at once (SIGTERM to kube-apiserver).
    async fn begin_stop(&mut self);
    /// Waits for the stop to end (the process exits) and starts the server
    /// again on the same data; returns once it serves.
    async fn start_again(&mut self);
}

/// What one watch delivered, and when its stream ended.
enum Seen {
    Event(Box<WatchEvent<Lease>>),
    /// The stream ended: `Some(error)` when it broke.
    End(Option<String>),
}

/// Opens a watch of `name` from `version`, delivering what it gets to a channel.
async fn watch(
    api: &Api<Lease>,
    name: &str,
    version: &str,
) -> mpsc::UnboundedReceiver<(Instant, Seen)> {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290);
    let stream = api.watch(&params, version).await.expect("open the watch");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let end = loop {
            match stream.next().await {
                Some(Ok(event)) => {
                    let _ = tx.send((Instant::now(), Seen::Event(Box::new(event))));
                }
                Some(Err(e)) => break Some(e.to_string()),
                None => break None,
            }
        };
        let _ = tx.send((Instant::now(), Seen::End(end)));
    });
    rx
}

fn lease(name: &str, holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(2),
            ..LeaseSpec::default()
        }),
    }
}

/// Writes a new holder on `name` and waits until `seen` delivers that
/// change; its `resourceVersion`.
async fn change_and_see(
    api: &Api<Lease>,
    name: &str,
    holder: &str,
    seen: &mut mpsc::UnboundedReceiver<(Instant, Seen)>,
) -> String {
    let mut current = api.get(name).await.expect("get the Lease");
    current.spec.get_or_insert_default().holder_identity = Some(holder.to_owned());
    let written = api
        .replace(name, &PostParams::default(), &current)
        .await
        .expect("update the Lease");
    let version = written
        .metadata
        .resource_version
        .expect("a resourceVersion");
    timeout(PATIENCE, async {
        loop {
            match seen.recv().await {
                Some((_, Seen::Event(event))) => {
                    if let WatchEvent::Modified(lease) = *event
                        && lease.metadata.resource_version.as_deref() == Some(&version)
                    {
                        return;
                    }
                }
                Some((_, Seen::End(why))) => panic!("the watch ended before the change: {why:?}"),
                None => panic!("the watch task is gone"),
            }
        }
    })
    .await
    .expect("the watch delivers the change");
    version
}

/// The check, against `server`; prints its figures under `label`.
pub async fn check(server: &mut impl Restartable, label: &str) {
    let api: Api<Lease> = Api::namespaced(server.client().await, "default");
    let name = super::unique_name("restart-conformance");
    let created = api
        .create(&PostParams::default(), &lease(&name, "before"))
        .await
        .expect("create the Lease");
    let mut seen = watch(
        &api,
        &name,
        created.metadata.resource_version.as_deref().unwrap(),
    )
    .await;
    let last_seen = change_and_see(&api, &name, "still-before", &mut seen).await;

    // The stop: requests soon fail, the open watch stays open and silent.
    let probe: Api<Lease> = Api::namespaced(server.client().await, "default");
    let stop_began = Instant::now();
    server.begin_stop().await;
    let unanswered = timeout(PATIENCE, async {
        loop {
            match timeout(REQUEST, probe.get(&name)).await {
                Ok(Ok(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
                Ok(Err(_)) | Err(_) => return Instant::now(),
            }
        }
    })
    .await
    .expect("requests fail once the server stops");
    let mut ended = None;
    let mut delivered = Vec::new();
    while let Ok((at, what)) = seen.try_recv() {
        match what {
            Seen::Event(event) => delivered.push(format!("{event:?}")),
            Seen::End(why) => ended = Some((at, why)),
        }
    }
    assert!(
        ended.is_none(),
        "{label}: the watch ended ({ended:?}) before a request went unanswered, {:?} into the stop",
        unanswered - stop_began
    );
    let (ended_at, why) = timeout(PATIENCE, async {
        loop {
            match seen.recv().await {
                Some((_, Seen::Event(event))) => delivered.push(format!("{event:?}")),
                Some((at, Seen::End(why))) => return (at, why),
                None => panic!("the watch task is gone"),
            }
        }
    })
    .await
    .expect("the watch ends once the server is gone");
    assert!(
        delivered.is_empty(),
        "{label}: the watch delivered during the stop: {delivered:?}"
    );
    let silent = ended_at - unanswered;

    // The restart: a resume from the last version seen gets 410.
    server.start_again().await;
    let api: Api<Lease> = Api::namespaced(server.client().await, "default");
    let mut resumed = watch(&api, &name, &last_seen).await;
    let first = timeout(PATIENCE, resumed.recv())
        .await
        .expect("the resumed watch answers");
    let gone = match first {
        Some((_, Seen::Event(event))) => match *event {
            WatchEvent::Error(status) => {
                assert_eq!(
                    (status.code, status.reason.as_str()),
                    (410, "Expired"),
                    "{label}: the resumed watch's error"
                );
                status.message
            }
            other => panic!("{label}: a watch resumed from {last_seen} got {other:?}, not 410"),
        },
        other => panic!(
            "{label}: a watch resumed from {last_seen} ended without 410: {:?}",
            other.map(|(_, s)| match s {
                Seen::End(why) => format!("end {why:?}"),
                Seen::Event(e) => format!("{e:?}"),
            })
        ),
    };

    // A list's version serves a new watch that sees the next change.
    let listed = api
        .list_metadata(&kube::api::ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .expect("list after the restart");
    let version = listed.metadata.resource_version.expect("a list version");
    let mut fresh = watch(&api, &name, &version).await;
    change_and_see(&api, &name, "after", &mut fresh).await;
    let _ = api.delete(&name, &kube::api::DeleteParams::default()).await;

    eprintln!(
        "{label}: requests unanswered {:.2?} into the stop; the open watch stayed open and \
         silent {silent:.2?} longer, then ended ({}); after the restart a resume from \
         {last_seen} got 410 Expired ({gone}); a watch from the list's {version} saw the next change",
        unanswered - stop_began,
        why.as_deref().unwrap_or("end of stream"),
    );
}

/// The embedded server as a [`Restartable`]: its watches linger `linger`
/// into a stop, as kube-apiserver's did.
pub struct Embedded {
    pub server: kube_elector_testing::LeaseApiServer,
    pub linger: Duration,
}

impl Restartable for Embedded {
    async fn client(&self) -> kube::Client {
        self.server.client()
    }

    async fn begin_stop(&mut self) {
        self.server.stop_gracefully(self.linger);
    }

    async fn start_again(&mut self) {
        self.server.restart();
    }
}
