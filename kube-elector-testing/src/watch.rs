//! Watch streams: the backlog a watch starts from, then live events and
//! bookmarks, as kube-apiserver sends them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use hyper::header::CONTENT_TYPE;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::faults::Flag;
use crate::http::{Body, Dropped, LeaseRequest, Shared};
use crate::selector::Selector;
use crate::status::{self, ApiError};
use crate::store::Event;

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
        pending: VecDeque::new(),
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

/// At most this many live events and bookmarks wait in a delayed or
/// black-holed watch; one more ends the watch, as kube-apiserver drops a
/// watcher that cannot keep up.
const MAX_PENDING: usize = 16_384;

/// A line waiting to be sent, and when it reached the watch.
struct Pending {
    arrived: Instant,
    line: Bytes,
}

/// The client went away.
struct Closed;

struct WatchStream {
    shared: Arc<Shared>,
    client: String,
    namespace: Option<String>,
    selector: Selector,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    /// The newest version this watch has received (sent or not).
    last: u64,
    /// Received, not yet sent: held by a watch delay or a black hole.
    pending: VecDeque<Pending>,
}

impl WatchStream {
    fn wanted(&self, event: &Event) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| *ns == event.namespace)
            && self.selector.matches(&event.object)
    }

    /// The line of `event`, if this watch wants it.
    fn event_line(&mut self, event: &Event) -> Option<Bytes> {
        self.last = self.last.max(event.version);
        self.wanted(event)
            .then(|| line_bytes(&json!({ "type": event.change.as_str(), "object": event.object })))
    }

    fn bookmark_line(&self) -> Bytes {
        let version = self.last.max(self.shared.store.version());
        line_bytes(&json!({
            "type": "BOOKMARK",
            "object": {
                "kind": "Lease",
                "apiVersion": "coordination.k8s.io/v1",
                "metadata": { "resourceVersion": version.to_string() },
            },
        }))
    }

    fn push(&mut self, line: Bytes) {
        self.pending.push_back(Pending {
            arrived: Instant::now(),
            line,
        });
    }

    /// Queues a live line; `false` when too many are waiting.
    fn push_live(&mut self, line: Bytes) -> bool {
        if self.pending.len() >= MAX_PENDING {
            return false;
        }
        self.push(line);
        true
    }

    /// Sends, in order, every pending line whose arrival plus `delay` has
    /// passed; returns when the next one is due.
    async fn send_due(&mut self, delay: Duration) -> Result<Option<Instant>, Closed> {
        while let Some(next) = self.pending.front() {
            let due = next.arrived + delay;
            if due > Instant::now() {
                return Ok(Some(due));
            }
            if let Some(next) = self.pending.pop_front() {
                self.tx.send(Ok(next.line)).await.map_err(|_| Closed)?;
            }
        }
        Ok(None)
    }

    async fn run(
        mut self,
        backlog: Vec<Event>,
        mut live: broadcast::Receiver<Event>,
        timeout: Duration,
        bookmarks: bool,
    ) {
        let mut faults = self.shared.faults.subscribe();
        // A watch that starts broken sends its error alone.
        let mut failed = faults.borrow().flagged(Flag::WatchError, &self.client);
        if failed {
            self.push(watch_error_line());
        } else {
            for event in &backlog {
                if let Some(line) = self.event_line(event) {
                    self.push(line);
                }
            }
        }
        let end = Instant::now() + timeout;
        // Set once nothing more is to be received: the watch ends when the
        // pending lines are sent.
        let mut ending = failed;
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
            // A watch that breaks sends what it received, then the error.
            if !failed && state.flagged(Flag::WatchError, &self.client) {
                failed = true;
                ending = true;
                self.push(watch_error_line());
            }
            // A black hole holds everything, the end of the stream included.
            let held = state.flagged(Flag::WatchBlackHole, &self.client);
            let mut next_due = None;
            if !held {
                let Ok(due) = self.send_due(state.watch_delay(&self.client)).await else {
                    return;
                };
                if ending && self.pending.is_empty() {
                    return;
                }
                next_due = due;
            }
            let receiving = !ending;
            tokio::select! {
                received = live.recv(), if receiving => match received {
                    Ok(event) => {
                        if event.version > self.last
                            && let Some(text) = self.event_line(&event)
                            && !self.push_live(text)
                        {
                            return;
                        }
                    }
                    // Too slow to keep up: end the watch; the client starts anew.
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                },
                _ = faults.changed() => {}
                _ = tick.tick(), if bookmarks && receiving => {
                    let bookmark = self.bookmark_line();
                    if !self.push_live(bookmark) {
                        return;
                    }
                }
                () = tokio::time::sleep_until(end), if receiving && !held => {
                    ending = true;
                    if bookmarks {
                        let bookmark = self.bookmark_line();
                        self.push(bookmark);
                    }
                }
                () = tokio::time::sleep_until(next_due.unwrap_or(end)), if next_due.is_some() => {}
                () = self.tx.closed() => return,
                () = self.shared.shutdown.cancelled() => return,
            }
        }
    }
}

fn watch_error_line() -> Bytes {
    line_bytes(&json!({ "type": "ERROR", "object": status::watch_failed().body }))
}
