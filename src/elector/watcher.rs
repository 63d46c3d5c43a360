//! Keeps a watch on the one Lease and forwards what it sees to the runner.
//!
//! Followers learn of a release or a new holder within one event delivery
//! and send no periodic requests. When watching fails (RBAC without `watch`,
//! errors, an `ERROR` event other than 410 Gone), the runner is told at once,
//! reads and polls instead, and the watch is retried with backoff. A watch
//! that stays connected but silent is the runner's to notice (it knows
//! whether the Lease is held, and so whether events are due).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::WatchEvent;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::mailbox::{Mailbox, Update};
use crate::api::{LeaseApi, is_forbidden};

/// The longest pause between two attempts to establish the watch.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The watch task: where it resumes from, and whether the runner was told
/// it is up.
pub(crate) struct Watcher {
    api: LeaseApi,
    updates: Arc<Mailbox>,
    retry_period: Duration,
    request_timeout: Duration,
    /// The `resourceVersion` to resume from; `None`: list first.
    version: Option<String>,
    /// Whether the runner was last told the watch is established.
    healthy: bool,
    /// Whether the current attempt delivered anything: a watch that did
    /// worked, and its failure starts a new backoff.
    delivered: bool,
}

/// How one watch ended (other than failing).
enum Ended {
    /// It was established and ended (timeout, broken stream, 410 Gone):
    /// resume from where it was, or list again.
    Normally,
    /// The runner is gone: stop.
    Closed,
}

impl Watcher {
    pub(crate) fn new(
        api: LeaseApi,
        updates: Arc<Mailbox>,
        retry_period: Duration,
        request_timeout: Duration,
    ) -> Self {
        Self {
            api,
            updates,
            retry_period,
            request_timeout,
            version: None,
            healthy: false,
            delivered: false,
        }
    }

    /// Watches until `token` is cancelled or the runner is gone: re-watches
    /// after a watch ends (no faster than once a retry period), and backs off
    /// (doubling, up to a minute) while watches fail without delivering
    /// anything. The first failure in a row is a warning, the rest debug.
    pub(crate) async fn run(mut self, token: CancellationToken) {
        let mut backoff = self.retry_period;
        let mut failing = false;
        loop {
            let started = tokio::time::Instant::now();
            self.delivered = false;
            // Not `run_until_cancelled(self.watch_once())`: a future passed
            // by value to an async fn is held twice in its state.
            let once = tokio::select! {
                biased;
                () = token.cancelled() => None,
                once = self.watch_once() => Some(once),
            };
            let pause = match once {
                None | Some(Ok(Ended::Closed)) => return,
                Some(Ok(Ended::Normally)) => {
                    backoff = self.retry_period;
                    failing = false;
                    // A watch that ends as soon as it starts must not become a hot loop.
                    (started + self.retry_period)
                        .saturating_duration_since(tokio::time::Instant::now())
                }
                Some(Err(error)) => {
                    if self.delivered {
                        // It worked until now: a new run of failures.
                        backoff = self.retry_period;
                        failing = false;
                    }
                    if failing {
                        let error = &error as &dyn std::error::Error;
                        tracing::debug!(error, "watching the Lease failed again");
                    } else {
                        self.warn(&error);
                    }
                    failing = true;
                    self.healthy = false;
                    if !self.send(Update::Healthy(false)) {
                        return;
                    }
                    let pause = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    pause
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

    fn warn(&self, error: &crate::error::Error) {
        let retry_period = self.retry_period;
        let forbidden = is_forbidden(error);
        let error = error as &dyn std::error::Error;
        if forbidden {
            tracing::warn!(
                error,
                "watching the Lease is forbidden; polling every {retry_period:?} instead (grant `watch` on leases for instant handovers)"
            );
        } else {
            tracing::warn!(
                error,
                "watching the Lease failed; polling every {retry_period:?} until the watch is back"
            );
        }
    }

    /// Sends `update` to the runner; `false` when it is gone.
    fn send(&self, update: Update) -> bool {
        self.updates.post(update)
    }

    /// Sends what the watch delivered to the runner; `false` when it is gone.
    fn deliver(&mut self, update: Update) -> bool {
        self.delivered = true;
        self.send(update)
    }

    /// Lists (when there is no version to resume from), then watches until
    /// the stream ends; an `ERROR` event other than 410 Gone is a failure.
    async fn watch_once(&mut self) -> Result<Ended, crate::error::Error> {
        let from = if let Some(v) = self.version.clone() {
            v
        } else {
            let (lease, list_version) = self.api.list(self.request_timeout).await?;
            let update = match lease {
                Some(lease) => Update::Lease(Box::new(lease)),
                None => Update::Missing {
                    version: Some(list_version.clone()),
                },
            };
            if !self.send(update) {
                return Ok(Ended::Closed);
            }
            list_version
        };
        let stream = self.api.watch(&from, self.request_timeout).await?;
        if !self.healthy {
            self.healthy = true;
            tracing::debug!("watching the Lease");
            if !self.send(Update::Healthy(true)) {
                return Ok(Ended::Closed);
            }
        }
        self.version = Some(from);
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let Some(update) = self.update_of(event)? else {
                return Ok(Ended::Normally);
            };
            if !self.deliver(update) {
                return Ok(Ended::Closed);
            }
        }
        Ok(Ended::Normally)
    }

    /// What a watch event tells the runner, keeping the version to resume
    /// from; `None` when the watch has ended (410 Gone, a broken stream),
    /// an error when it failed (any other `ERROR` event: the runner must
    /// read at once, and the next watch waits for the backoff).
    fn update_of(
        &mut self,
        event: Result<WatchEvent<Lease>, kube::Error>,
    ) -> Result<Option<Update>, crate::error::Error> {
        match event {
            Ok(WatchEvent::Added(lease) | WatchEvent::Modified(lease)) => {
                self.version.clone_from(&lease.metadata.resource_version);
                Ok(Some(Update::Lease(Box::new(lease))))
            }
            Ok(WatchEvent::Deleted(lease)) => {
                self.version.clone_from(&lease.metadata.resource_version);
                Ok(Some(Update::Missing {
                    version: lease.metadata.resource_version,
                }))
            }
            Ok(WatchEvent::Bookmark(bookmark)) => {
                self.version = Some(bookmark.metadata.resource_version);
                Ok(Some(Update::Progress))
            }
            Ok(WatchEvent::Error(status)) if status.code == 410 => {
                // Our version is too old: list again (the list tells the
                // runner what the Lease is now).
                tracing::debug!(code = status.code, reason = %status.reason, "watch ended with 410 Gone; listing again");
                self.version = None;
                Ok(None)
            }
            Ok(WatchEvent::Error(status)) => Err(self.api.watch_failed(status)),
            Err(error) => {
                tracing::debug!(%error, "watch stream broke");
                Ok(None)
            }
        }
    }
}
