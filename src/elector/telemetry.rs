//! What the loop reports besides its state: the stamps health checks read,
//! and metrics when they are configured.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Shared;
use crate::api::LeaseApi;
#[cfg(feature = "events")]
use crate::events::{EventSink, Note};
#[cfg(feature = "metrics")]
use crate::metrics::LeaseMetrics;

/// Why a renew failed (the `reason` label of the failure counter).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum RenewFailure {
    /// The Lease changed since it was read.
    Conflict,
    /// The request failed or timed out.
    Error,
}

#[derive(Debug)]
pub(super) struct Telemetry {
    shared: Arc<Shared>,
    #[cfg(feature = "metrics")]
    metrics: Option<LeaseMetrics>,
    #[cfg(feature = "events")]
    events: Option<EventSink>,
}

// Without the metrics feature, some reports go nowhere.
#[cfg_attr(not(feature = "metrics"), allow(clippy::unused_self))]
impl Telemetry {
    pub(super) fn new(shared: Arc<Shared>, settings: &super::Settings, api: &LeaseApi) -> Self {
        #[cfg(not(any(feature = "metrics", feature = "events")))]
        let _ = (settings, api);
        Self {
            shared,
            #[cfg(feature = "metrics")]
            metrics: settings
                .metrics
                .as_ref()
                .map(|metrics| metrics.for_lease(api.name())),
            #[cfg(feature = "events")]
            events: settings.events.clone().map(|controller| {
                EventSink::spawn(
                    api.client(),
                    api.namespace(),
                    api.name(),
                    &settings.identity,
                    controller,
                )
            }),
        }
    }

    /// The Lease was read, or found missing.
    pub(super) fn observed(&self) {
        self.shared.set_observed();
    }

    /// A term started with the write sent at `sent`; `free_since` is when
    /// this elector found the Lease free.
    pub(super) fn started_leading(
        &self,
        sent: Instant,
        free_since: Option<Instant>,
        uid: Option<&str>,
    ) {
        self.shared.set_renewed(sent);
        #[cfg(feature = "events")]
        if let Some(events) = &self.events {
            events.send(Note::BecameLeader {
                uid: uid.map(str::to_owned),
            });
        }
        #[cfg(not(feature = "events"))]
        let _ = uid;
        let handover = free_since.map(|since| since.elapsed());
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.started_leading(handover);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = handover;
    }

    pub(super) fn stopped_leading(&self, uid: Option<&str>) {
        #[cfg(feature = "events")]
        if let Some(events) = &self.events {
            events.send(Note::StoppedLeading {
                uid: uid.map(str::to_owned),
            });
        }
        #[cfg(not(feature = "events"))]
        let _ = uid;
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.stopped_leading();
        }
    }

    /// A renew sent at `sent` succeeded.
    pub(super) fn renewed(&self, sent: Instant) {
        self.shared.set_renewed(sent);
        let round_trip: Duration = sent.elapsed();
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.renewed(round_trip);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = round_trip;
    }

    /// Records what is still queued (events), for at most `patience`.
    #[cfg_attr(not(feature = "events"), allow(clippy::unused_async))]
    pub(super) async fn close(&mut self, patience: Duration) {
        #[cfg(feature = "events")]
        if let Some(events) = self.events.take() {
            events.close(patience).await;
        }
        #[cfg(not(feature = "events"))]
        let _ = patience;
    }

    pub(super) fn renew_failed(&self, reason: RenewFailure) {
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.renew_failed(reason);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = reason;
    }
}
