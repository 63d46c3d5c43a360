//! The watch loop every watch of the crate runs: list (when there is no
//! version to resume from), watch from the list's `resourceVersion`,
//! resume after a watch ends, list again after 410 Gone or a watch that
//! could not start, and back off while attempts fail. What a watch saw
//! goes to a [`Sink`]; where it goes from there is the caller's.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::WatchEvent;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use crate::api::LeaseApi;
use crate::error::Error;

/// The longest pause between two attempts while they fail.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What a watch covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The one Lease of this name (listed and watched by field selector).
    Lease(String),
    /// Every Lease of the namespace (listed a page at a time).
    Namespace,
}

/// How often a watch may start, and how long its requests may take.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// The shortest pause between two watches, and the first backoff.
    pub(crate) retry: Duration,
    /// How long a list (page) or the start of a watch may take.
    pub(crate) request_timeout: Duration,
}

/// A change the watch delivered (the loop has kept its version).
#[derive(Debug)]
pub(crate) enum Event {
    /// A Lease as it is now (added or modified).
    Applied(Lease),
    /// A Lease was deleted (its last state).
    Deleted(Lease),
    /// A bookmark: the watch is alive, nothing changed.
    Bookmark,
}

/// Where a watch's findings go. A method that returns `false` says that
/// nobody listens any more: the loop ends.
pub(crate) trait Sink: Send {
    /// What a list found (at most one Lease in a [`Scope::Lease`]), as of
    /// `version`.
    fn listed(&mut self, leases: Vec<Lease>, version: &str) -> bool;

    /// The watch is established, for the first time or after a failure.
    fn established(&mut self) -> bool;

    /// The watch delivered `event`.
    fn event(&mut self, event: Event) -> bool;

    /// An attempt failed (a request, or an `ERROR` event other than 410
    /// Gone); `first`: the first failure in a row. The next attempt waits
    /// for the backoff.
    fn failed(&mut self, error: &Error, first: bool) -> bool;

    /// The watch's stream has ended, however it did.
    fn ended(&mut self) {}

    /// Completes when the sink has something to do while the watch
    /// streams (then [`on_due`](Self::on_due) is called); never, by default.
    fn due(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }

    /// What [`due`](Self::due) waited for has come.
    fn on_due(&mut self) {}
}

/// One watch, as a state machine: where it resumes from, whether its sink
/// was told it is up, and its failures in a row.
#[derive(Debug)]
pub(crate) struct Watch {
    api: LeaseApi,
    scope: Scope,
    timing: Timing,
    /// The `resourceVersion` to resume from; `None`: list first.
    version: Option<String>,
    /// Whether the sink was last told the watch is established.
    healthy: bool,
    /// Whether the current attempt delivered anything: a watch that did
    /// worked, and its failure starts a new backoff.
    delivered: bool,
    backoff: Backoff,
}

/// How one attempt ended (other than failing).
enum Ended {
    /// It was established and ended (timeout, broken stream, 410 Gone):
    /// resume from where it was, or list again.
    Normally,
    /// Nobody listens: stop.
    Closed,
}

impl Watch {
    /// A watch of `scope` in `namespace`, its requests within `limit` if
    /// given.
    pub(crate) fn new(
        client: Client,
        namespace: &str,
        scope: Scope,
        limit: Option<Arc<Semaphore>>,
        timing: Timing,
    ) -> Self {
        let api = match &scope {
            Scope::Lease(name) => LeaseApi::new(client, namespace, name),
            Scope::Namespace => LeaseApi::every_lease(client, namespace),
        };
        let api = match limit {
            Some(limit) => api.limited(limit),
            None => api,
        };
        Self {
            api,
            scope,
            timing,
            version: None,
            healthy: false,
            delivered: false,
            backoff: Backoff::new(timing.retry, MAX_BACKOFF),
        }
    }

    /// Watches until `token` is cancelled or `sink` stops listening:
    /// watches again after a watch ends (no faster than once a retry
    /// period), and backs off (doubling, up to a minute) while attempts
    /// fail without delivering anything.
    pub(crate) async fn run(mut self, mut sink: impl Sink, token: CancellationToken) {
        loop {
            let started = Instant::now();
            self.delivered = false;
            // Not `run_until_cancelled(self.once(..))`: a future passed by
            // value to an async fn is held twice in its state.
            let once = tokio::select! {
                biased;
                () = token.cancelled() => None,
                once = self.once(&mut sink) => Some(once),
            };
            let pause = match once {
                None | Some(Ok(Ended::Closed)) => return,
                Some(Ok(Ended::Normally)) => {
                    self.backoff.reset();
                    // A watch that ends as soon as it starts must not become a hot loop.
                    (started + self.timing.retry).saturating_duration_since(Instant::now())
                }
                Some(Err(error)) => {
                    if self.delivered {
                        // It worked until now: a new run of failures.
                        self.backoff.reset();
                    }
                    let first = self.backoff.fail();
                    self.healthy = false;
                    if !sink.failed(&error, first) {
                        return;
                    }
                    self.backoff.pause()
                }
            };
            if token
                .run_until_cancelled(tokio::time::sleep(pause))
                .await
                .is_none()
            {
                return;
            }
        }
    }

    /// Lists (when there is no version to resume from), then watches until
    /// the stream ends. A watch that cannot start lists again next time
    /// (what it missed meanwhile arrives as the state of now, not as
    /// history); an `ERROR` event other than 410 Gone is a failure, and
    /// the next watch resumes from the same version.
    async fn once(&mut self, sink: &mut impl Sink) -> Result<Ended, Error> {
        let from = if let Some(version) = self.version.clone() {
            version
        } else {
            let (leases, version) = self.list().await?;
            if !sink.listed(leases, &version) {
                return Ok(Ended::Closed);
            }
            version
        };
        let stream = match self.open(&from).await {
            Ok(stream) => stream,
            Err(error) => {
                self.version = None;
                return Err(error);
            }
        };
        if !self.healthy {
            self.healthy = true;
            if !sink.established() {
                return Ok(Ended::Closed);
            }
        }
        self.version = Some(from);
        let ended = self.follow(stream, sink).await;
        sink.ended();
        ended
    }

    /// Every Lease of the scope, and the list's version.
    async fn list(&self) -> Result<(Vec<Lease>, String), Error> {
        let timeout = self.timing.request_timeout;
        if let Scope::Lease(_) = self.scope {
            let (lease, version) = self.api.list(timeout).await?;
            return Ok((lease.into_iter().collect(), version));
        }
        let mut leases = Vec::new();
        let mut continue_from: Option<String> = None;
        loop {
            let page = self
                .api
                .list_namespace(continue_from.as_deref(), timeout)
                .await?;
            leases.extend(page.items);
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(next) => continue_from = Some(next),
                None => return Ok((leases, page.metadata.resource_version.unwrap_or_default())),
            }
        }
    }

    /// Starts the watch of the scope from `version`.
    async fn open(
        &self,
        version: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent<Lease>, kube::Error>>, Error> {
        let timeout = self.timing.request_timeout;
        Ok(match self.scope {
            Scope::Lease(_) => self.api.watch(version, timeout).await?.boxed(),
            Scope::Namespace => self.api.watch_namespace(version, timeout).await?.boxed(),
        })
    }

    /// Passes the stream's events to `sink`, keeping the version to resume
    /// from, until the stream ends.
    async fn follow(
        &mut self,
        mut stream: BoxStream<'static, Result<WatchEvent<Lease>, kube::Error>>,
        sink: &mut impl Sink,
    ) -> Result<Ended, Error> {
        loop {
            let event = tokio::select! {
                event = stream.next() => event,
                () = sink.due() => {
                    sink.on_due();
                    continue;
                }
            };
            let Some(event) = event else {
                return Ok(Ended::Normally);
            };
            let event = match event {
                Ok(WatchEvent::Added(lease) | WatchEvent::Modified(lease)) => {
                    self.version.clone_from(&lease.metadata.resource_version);
                    Event::Applied(lease)
                }
                Ok(WatchEvent::Deleted(lease)) => {
                    self.version.clone_from(&lease.metadata.resource_version);
                    Event::Deleted(lease)
                }
                Ok(WatchEvent::Bookmark(bookmark)) => {
                    self.version = Some(bookmark.metadata.resource_version);
                    Event::Bookmark
                }
                Ok(WatchEvent::Error(status)) if status.code == 410 => {
                    // The version is too old: list again (the list tells
                    // the sink what the Leases are now).
                    self.gone(&status);
                    self.version = None;
                    return Ok(Ended::Normally);
                }
                // Resumed from the same version after the backoff.
                Ok(WatchEvent::Error(status)) => return Err(self.api.watch_failed(status)),
                Err(error) => {
                    self.broke(&error);
                    return Ok(Ended::Normally);
                }
            };
            self.delivered = true;
            if !sink.event(event) {
                return Ok(Ended::Closed);
            }
        }
    }

    fn gone(&self, status: &kube::core::Status) {
        match self.scope {
            Scope::Lease(_) => tracing::debug!(
                code = status.code,
                reason = %status.reason,
                "watch ended with 410 Gone; listing again"
            ),
            Scope::Namespace => tracing::debug!(
                code = status.code,
                reason = %status.reason,
                "namespace watch ended with 410 Gone; listing again"
            ),
        }
    }

    fn broke(&self, error: &kube::Error) {
        match self.scope {
            Scope::Lease(_) => tracing::debug!(%error, "watch stream broke"),
            Scope::Namespace => tracing::debug!(%error, "namespace watch stream broke"),
        }
    }
}
