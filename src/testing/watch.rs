//! Watch streams: the backlog a watch starts from, then live events and
//! bookmarks, as kube-apiserver sends them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use hyper::header::CONTENT_TYPE;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::http::{Body, Dropped, LeaseRequest, Shared};
use super::selector::Selector;
use super::status::{self, ApiError};
use super::store::Event;

/// kube-apiserver's `--min-request-timeout` default, for watches that give none.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);

pub(crate) fn watch(
    shared: &Arc<Shared>,
    request: &LeaseRequest,
    ns: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let selector = Selector::parse(request)?;
    let from = match request.param("resourceVersion") {
        None | Some("" | "0") => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| status::bad_request(format!("invalid resource version: {v:?}")))?,
        ),
    };
    let timeout = request
        .param("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    let bookmarks = request.param("allowWatchBookmarks") == Some("true");
    let name = selector
        .fields
        .iter()
        .find(|(key, equal, _)| key == "metadata.name" && *equal)
        .map(|(_, _, value)| value.as_str());
    let start = match shared.store.watch(ns, name, from) {
        Ok(start) => start,
        // A too-old version is answered inside the stream, as kube-apiserver does.
        Err(e) if e.code == 410 => {
            let line = json!({ "type": "ERROR", "object": e.body });
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(Ok(line_bytes(&line)));
            return Ok(stream_response(rx));
        }
        Err(e) => return Err(e),
    };
    let (tx, rx) = mpsc::channel(64);
    let stream = WatchStream {
        shared: Arc::clone(shared),
        client: request.client.clone(),
        namespace: ns.map(str::to_owned),
        selector,
        tx,
        last: from.unwrap_or(0),
    };
    tokio::spawn(stream.run(start.backlog, start.live, timeout, bookmarks));
    Ok(stream_response(rx))
}

fn stream_response(rx: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Response<Body> {
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item.map(Frame::data), rx))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    response.headers_mut().insert(
        CONTENT_TYPE,
        "application/json".parse().expect("static header"),
    );
    response
}

fn line_bytes(value: &serde_json::Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

struct WatchStream {
    shared: Arc<Shared>,
    client: String,
    namespace: Option<String>,
    selector: Selector,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    last: u64,
}

impl WatchStream {
    fn wanted(&self, event: &Event) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| *ns == event.namespace)
            && self.selector.matches(&event.object)
    }

    async fn send(&mut self, event: &Event) -> bool {
        self.last = self.last.max(event.version);
        if !self.wanted(event) {
            return true;
        }
        let line = json!({ "type": event.change.as_str(), "object": event.object });
        self.tx.send(Ok(line_bytes(&line))).await.is_ok()
    }

    async fn bookmark(&mut self) -> bool {
        let version = self.last.max(self.shared.store.version());
        let line = json!({
            "type": "BOOKMARK",
            "object": {
                "kind": "Lease",
                "apiVersion": "coordination.k8s.io/v1",
                "metadata": { "resourceVersion": version.to_string() },
            },
        });
        self.tx.send(Ok(line_bytes(&line))).await.is_ok()
    }

    async fn run(
        mut self,
        backlog: Vec<Event>,
        mut live: broadcast::Receiver<Event>,
        timeout: Duration,
        bookmarks: bool,
    ) {
        for event in &backlog {
            if !self.send(event).await {
                return;
            }
        }
        let end = tokio::time::Instant::now() + timeout;
        let mut faults = self.shared.faults.subscribe();
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.reset();
        loop {
            // A partitioned or hung client gets nothing; a partition that heals
            // breaks the stream, as a lost connection would.
            let state = faults.borrow_and_update().clone();
            if state.partitioned(&self.client)
                || state.hung(&self.client)
                || state.refused(&self.client)
            {
                let heals = state.heals;
                let client = self.client.clone();
                let lifted = faults.wait_for(|s| {
                    !(s.partitioned(&client) || s.hung(&client) || s.refused(&client))
                });
                let healed = tokio::select! {
                    r = lifted => r.map_or(true, |s| s.heals != heals),
                    () = tokio::time::sleep_until(end) => return,
                    () = self.shared.shutdown.cancelled() => return,
                };
                if healed || state.refused(&self.client) {
                    let _ = self.tx.send(Err(std::io::Error::other(Dropped))).await;
                    return;
                }
                continue;
            }
            tokio::select! {
                received = live.recv() => match received {
                    Ok(event) => {
                        if event.version > self.last && !self.send(&event).await {
                            return;
                        }
                    }
                    // Too slow to keep up: end the watch; the client starts anew.
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                },
                _ = faults.changed() => {}
                _ = tick.tick(), if bookmarks => {
                    if !self.bookmark().await {
                        return;
                    }
                }
                () = tokio::time::sleep_until(end) => {
                    if bookmarks {
                        self.bookmark().await;
                    }
                    return;
                }
                () = self.tx.closed() => return,
                () = self.shared.shutdown.cancelled() => return,
            }
        }
    }
}
