//! A watch of one Lease that forwards what it sees to one elector's
//! mailbox.
//!
//! Followers learn of a release or a new holder within one event delivery
//! and send no periodic requests. When watching fails (RBAC without `watch`,
//! errors, an `ERROR` event other than 410 Gone), the runner is told at once,
//! reads and polls instead, and the watch is retried with backoff. A watch
//! that stays connected but silent is the runner's to notice (it knows
//! whether the Lease is held, and so whether events are due).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;

use super::machine::{Event, Sink};
use super::mailbox::{Mailbox, Update};
use crate::api::is_forbidden;
use crate::error::Error;

/// Forwards a [`Scope::Lease`](super::Scope::Lease) watch's findings to
/// one mailbox; stops the watch when the elector is gone.
#[derive(Debug)]
pub(crate) struct ToMailbox {
    mailbox: Arc<Mailbox>,
    /// How often the elector polls while the watch is down (for the logs).
    retry_period: Duration,
}

impl ToMailbox {
    pub(crate) fn new(mailbox: Arc<Mailbox>, retry_period: Duration) -> Self {
        Self {
            mailbox,
            retry_period,
        }
    }
}

impl Sink for ToMailbox {
    fn listed(&mut self, leases: Vec<Lease>, version: &str) -> bool {
        self.mailbox.post(match leases.into_iter().next() {
            Some(lease) => Update::Lease(Box::new(lease)),
            None => Update::Missing {
                version: Some(version.to_owned()),
            },
        })
    }

    fn established(&mut self) -> bool {
        tracing::debug!("watching the Lease");
        self.mailbox.post(Update::Healthy(true))
    }

    fn event(&mut self, event: Event) -> bool {
        self.mailbox.post(match event {
            Event::Applied(lease) => Update::Lease(Box::new(lease)),
            Event::Deleted(lease) => Update::Missing {
                version: lease.metadata.resource_version,
            },
            Event::Bookmark => Update::Progress,
        })
    }

    /// The first failure in a row is a warning, the rest debug.
    fn failed(&mut self, error: &Error, first: bool) -> bool {
        let retry_period = self.retry_period;
        let forbidden = is_forbidden(error);
        let error = error as &dyn std::error::Error;
        if !first {
            tracing::debug!(error, "watching the Lease failed again");
        } else if forbidden {
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
        self.mailbox.post(Update::Healthy(false))
    }
}
