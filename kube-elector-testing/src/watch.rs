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

use crate::faults::{FaultState, Flag};
use crate::request::ApiRequest;
use crate::resource::Resource;
use crate::selector::Selector;
use crate::shared::Shared;
use crate::status::{self, ApiError};
use crate::store::Event;
use crate::wire::{Body, Dropped};

/// kube-apiserver's `--min-request-timeout` default, for watches that give none.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);

pub(crate) fn watch(
    shared: &Arc<Shared>,
    request: &ApiRequest,
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
    let start = match shared.store.watch(request.resource, ns, name, from) {
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
        resource: request.resource,
        namespace: ns.map(str::to_owned),
        selector,
        tx,
        last: from.unwrap_or(0),
        pending: VecDeque::new(),
        restarts: shared.faults.snapshot().restarts,
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

/// The watch is over: the client went away, or a fault or the timeout
/// ended it.
struct Ended;

struct WatchStream {
    shared: Arc<Shared>,
    client: String,
    resource: Resource,
    namespace: Option<String>,
    selector: Selector,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    /// The newest version this watch has received (sent or not).
    last: u64,
    /// Received, not yet sent: held by a watch delay or a black hole.
    pending: VecDeque<Pending>,
    /// The server's restarts when the watch began.
    restarts: u64,
}

impl WatchStream {
    fn wanted(&self, event: &Event) -> bool {
        event.resource == self.resource
            && self
                .namespace
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
                "kind": self.resource.kind(),
                "apiVersion": self.resource.api_version(),
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
    async fn send_due(&mut self, delay: Duration) -> Result<Option<Instant>, Ended> {
        while let Some(next) = self.pending.front() {
            let due = next.arrived + delay;
            if due > Instant::now() {
                return Ok(Some(due));
            }
            if let Some(next) = self.pending.pop_front() {
                self.tx.send(Ok(next.line)).await.map_err(|_| Ended)?;
            }
        }
        Ok(None)
    }

    /// Queues what the watch starts with: its backlog, or (a watch that
    /// starts broken) its error alone.
    fn start(&mut self, backlog: &[Event], failed: bool) {
        if failed {
            self.push(watch_error_line());
        } else {
            for event in backlog {
                if let Some(line) = self.event_line(event) {
                    self.push(line);
                }
            }
        }
    }

    /// Waits while the client is partitioned, hung or refused; `Ended` when
    /// the watch is over: a partition that heals and a refusal break the
    /// stream, as a lost connection would, and the timeout or a shutdown
    /// end it.
    async fn sit_out(
        &self,
        faults: &mut tokio::sync::watch::Receiver<FaultState>,
        state: &FaultState,
        end: Instant,
    ) -> Result<(), Ended> {
        let heals = state.heals;
        let client = self.client.clone();
        let lifted = faults.wait_for(|s| !cut_off(s, &client));
        let healed = tokio::select! {
            r = lifted => r.map_or(true, |s| s.heals != heals),
            () = tokio::time::sleep_until(end) => return Err(Ended),
            () = self.shared.shutdown.cancelled() => return Err(Ended),
        };
        if healed || state.refused(&self.client) {
            let _ = self.tx.send(Err(std::io::Error::other(Dropped))).await;
            return Err(Ended);
        }
        Ok(())
    }

    /// Sits out a graceful stop of the server: the watch stays open and
    /// silent until the stop's linger ends it, as a lost connection, or a
    /// restart does (the process that served it is gone). `Ended` then.
    async fn sit_out_stop(
        &self,
        faults: &mut tokio::sync::watch::Receiver<FaultState>,
        state: &FaultState,
    ) -> Result<(), Ended> {
        let lingering = state
            .stopping
            .filter(|until| *until > Instant::now() && state.restarts == self.restarts);
        let Some(until) = lingering else {
            let _ = self.tx.send(Err(std::io::Error::other(Dropped))).await;
            return Err(Ended);
        };
        tokio::select! {
            _ = faults.changed() => Ok(()),
            () = tokio::time::sleep_until(until) => Ok(()),
            () = self.tx.closed() => Err(Ended),
            () = self.shared.shutdown.cancelled() => Err(Ended),
        }
    }

    /// Queues a live event; `Ended` when the watch fell too far behind.
    fn receive(
        &mut self,
        received: Result<Event, broadcast::error::RecvError>,
    ) -> Result<(), Ended> {
        match received {
            Ok(event) => {
                if event.version > self.last
                    && let Some(text) = self.event_line(&event)
                    && !self.push_live(text)
                {
                    return Err(Ended);
                }
                Ok(())
            }
            // Too slow to keep up: end the watch; the client starts anew.
            Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => {
                Err(Ended)
            }
        }
    }

    /// Sends the backlog, then live events and bookmarks, until the timeout,
    /// the client or a fault ends the watch. Each turn applies the faults as
    /// they are now, sends what is due, then waits for the next thing to
    /// happen. (Longer than most: the `select!` arms share the loop's state,
    /// `failed`, `ending` and the timers; the steps are the methods above.)
    async fn run(
        mut self,
        backlog: Vec<Event>,
        mut live: broadcast::Receiver<Event>,
        timeout: Duration,
        bookmarks: bool,
    ) {
        let mut faults = self.shared.faults.subscribe();
        let mut failed = faults.borrow().flagged(Flag::WatchError, &self.client);
        self.start(&backlog, failed);
        let end = Instant::now() + timeout;
        // Set once nothing more is to be received: the watch ends when the
        // pending lines are sent.
        let mut ending = failed;
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.reset();
        loop {
            let state = faults.borrow_and_update().clone();
            // A stopping server sends nothing; a restarted one is another process.
            if state.stopping.is_some() || state.restarts != self.restarts {
                if self.sit_out_stop(&mut faults, &state).await.is_err() {
                    return;
                }
                continue;
            }
            // A partitioned or hung client gets nothing.
            if cut_off(&state, &self.client) {
                if self.sit_out(&mut faults, &state, end).await.is_err() {
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
                received = live.recv(), if receiving => {
                    if self.receive(received).is_err() {
                        return;
                    }
                }
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

/// Whether `client` gets nothing at all: partitioned, hung or refused.
fn cut_off(state: &FaultState, client: &str) -> bool {
    state.partitioned(client) || state.hung(client) || state.refused(client)
}

fn watch_error_line() -> Bytes {
    line_bytes(&json!({ "type": "ERROR", "object": status::watch_failed().body }))
}
