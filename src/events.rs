//! Kubernetes Events about the Lease, as client-go's `EventRecorder` records
//! them: `<identity> became leader`, `<identity> stopped leading`.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// client-go's reason for both events.
const REASON: &str = "LeaderElection";

/// A change of leadership to record.
#[derive(Debug)]
pub(crate) enum Note {
    BecameLeader { uid: Option<String> },
    StoppedLeading { uid: Option<String> },
}

/// The recording side of an elector: changes go out through a channel to a
/// task of their own, so a slow or refusing API server never delays the
/// elector's loop.
#[derive(Debug)]
pub(crate) struct EventSink {
    tx: mpsc::UnboundedSender<Note>,
    task: JoinHandle<()>,
}

impl EventSink {
    pub(crate) fn spawn(
        client: Client,
        namespace: &str,
        lease_name: &str,
        identity: &str,
        controller: String,
    ) -> Self {
        let reporter = Reporter {
            controller,
            instance: Some(identity.to_owned()),
        };
        let recorder = Recorder::new(client, reporter);
        let lease = ObjectReference {
            api_version: Some("coordination.k8s.io/v1".to_owned()),
            kind: Some("Lease".to_owned()),
            namespace: Some(namespace.to_owned()),
            name: Some(lease_name.to_owned()),
            ..ObjectReference::default()
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(record(recorder, lease, identity.to_owned(), rx).in_current_span());
        Self { tx, task }
    }

    pub(crate) fn send(&self, note: Note) {
        // The task only ends after the sink is closed.
        let _ = self.tx.send(note);
    }

    /// Records what is queued (for at most `patience`), then ends the task.
    pub(crate) async fn close(self, patience: Duration) {
        let Self { tx, mut task } = self;
        drop(tx);
        if tokio::time::timeout(patience, &mut task).await.is_err() {
            tracing::debug!("recording the last events took longer than {patience:?}; dropped");
            task.abort();
        }
    }
}

async fn record(
    recorder: Recorder,
    lease: ObjectReference,
    identity: String,
    mut rx: mpsc::UnboundedReceiver<Note>,
) {
    let mut failing = false;
    while let Some(note) = rx.recv().await {
        let (action, text, uid) = match note {
            Note::BecameLeader { uid } => ("BecameLeader", "became leader", uid),
            Note::StoppedLeading { uid } => ("StoppedLeading", "stopped leading", uid),
        };
        let event = Event {
            type_: EventType::Normal,
            reason: REASON.to_owned(),
            note: Some(format!("{identity} {text}")),
            action: action.to_owned(),
            secondary: None,
        };
        let mut regarding = lease.clone();
        regarding.uid = uid;
        match recorder.publish(&event, &regarding).await {
            Ok(()) => {
                if failing {
                    tracing::debug!("recording events works again");
                }
                failing = false;
            }
            Err(error) => {
                let error = &error as &dyn std::error::Error;
                if failing {
                    tracing::debug!(error, "recording an event failed again");
                } else {
                    // Leadership does not depend on it: a warning, once.
                    tracing::warn!(
                        error,
                        "recording an event failed (grant `create` and `patch` on events.k8s.io events); leadership is not affected"
                    );
                }
                failing = true;
            }
        }
    }
}
