//! Keeps a watch on the one Lease and forwards what it sees to the runner.
//!
//! Followers learn of a release or a new holder within one event delivery
//! and send no periodic requests. When watching fails (RBAC without `watch`,
//! errors), the runner is told, polls instead, and the watch is retried with
//! backoff.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::WatchEvent;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::{LeaseApi, is_forbidden};

/// What the watch saw.
#[derive(Debug)]
pub(super) enum Update {
    /// The Lease as it is now.
    Lease(Box<Lease>),
    /// There is no Lease (as of this `resourceVersion`, if known).
    Missing { version: Option<String> },
    /// The watch delivered a bookmark: it is alive, nothing changed.
    Progress,
    /// Whether the watch is established; while it is not, the runner polls.
    Healthy(bool),
}

/// The longest pause between two attempts to establish the watch.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub(super) async fn run(
    api: LeaseApi,
    updates: mpsc::Sender<Update>,
    token: CancellationToken,
    retry_period: Duration,
    request_timeout: Duration,
) {
    let mut backoff = retry_period;
    let mut version: Option<String> = None;
    let mut healthy = false;
    loop {
        let started = tokio::time::Instant::now();
        let established = token
            .run_until_cancelled(watch_once(
                &api,
                &updates,
                &mut version,
                &mut healthy,
                request_timeout,
            ))
            .await;
        match established {
            None => return,
            Some(Ok(())) => {
                backoff = retry_period;
                // A watch that ends as soon as it starts must not become a hot loop.
                let calm = started + retry_period;
                if token
                    .run_until_cancelled(tokio::time::sleep_until(calm))
                    .await
                    .is_none()
                {
                    return;
                }
            }
            Some(Err(error)) => {
                if healthy || backoff == retry_period {
                    let forbidden = is_forbidden(&error);
                    let error = &error as &dyn std::error::Error;
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
                healthy = false;
                if updates.send(Update::Healthy(false)).await.is_err() {
                    return;
                }
                if token
                    .run_until_cancelled(tokio::time::sleep(backoff))
                    .await
                    .is_none()
                {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Lists (when there is no version to resume from), then watches until the
/// stream ends. `Ok` means the watch was established and ended normally.
async fn watch_once(
    api: &LeaseApi,
    updates: &mpsc::Sender<Update>,
    version: &mut Option<String>,
    healthy: &mut bool,
    request_timeout: Duration,
) -> Result<(), crate::Error> {
    let from = if let Some(v) = version.clone() {
        v
    } else {
        let (lease, list_version) = api.list(request_timeout).await?;
        let update = match lease {
            Some(lease) => Update::Lease(Box::new(lease)),
            None => Update::Missing {
                version: Some(list_version.clone()),
            },
        };
        if updates.send(update).await.is_err() {
            return Ok(());
        }
        list_version
    };
    let stream = api.watch(&from, request_timeout).await?;
    if !*healthy {
        *healthy = true;
        tracing::debug!("watching the Lease");
        if updates.send(Update::Healthy(true)).await.is_err() {
            return Ok(());
        }
    }
    *version = Some(from);
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let update = match event {
            Ok(WatchEvent::Added(lease) | WatchEvent::Modified(lease)) => {
                version.clone_from(&lease.metadata.resource_version);
                Update::Lease(Box::new(lease))
            }
            Ok(WatchEvent::Deleted(lease)) => {
                version.clone_from(&lease.metadata.resource_version);
                Update::Missing {
                    version: lease.metadata.resource_version,
                }
            }
            Ok(WatchEvent::Bookmark(bookmark)) => {
                *version = Some(bookmark.metadata.resource_version);
                Update::Progress
            }
            Ok(WatchEvent::Error(status)) => {
                // 410 Gone: our version is too old; list again.
                tracing::debug!(code = status.code, reason = %status.reason, "watch ended with an error event");
                if status.code == 410 {
                    *version = None;
                }
                return Ok(());
            }
            Err(error) => {
                tracing::debug!(%error, "watch stream broke");
                return Ok(());
            }
        };
        if updates.send(update).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}
