//! What the loop reports besides its state: the stamps health checks read,
//! and metrics when they are configured.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Shared;
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
}

// Without the metrics feature, some reports go nowhere.
#[cfg_attr(not(feature = "metrics"), allow(clippy::unused_self))]
impl Telemetry {
    pub(super) fn new(shared: Arc<Shared>, settings: &super::Settings, lease_name: &str) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = (settings, lease_name);
        Self {
            shared,
            #[cfg(feature = "metrics")]
            metrics: settings
                .metrics
                .as_ref()
                .map(|metrics| metrics.for_lease(lease_name)),
        }
    }

    /// The Lease was read, or found missing.
    pub(super) fn observed(&self) {
        self.shared.set_observed();
    }

    /// A term started with the write sent at `sent`; `free_since` is when
    /// this elector found the Lease free.
    pub(super) fn started_leading(&self, sent: Instant, free_since: Option<Instant>) {
        self.shared.set_renewed(sent);
        let handover = free_since.map(|since| since.elapsed());
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.started_leading(handover);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = handover;
    }

    pub(super) fn stopped_leading(&self) {
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

    pub(super) fn renew_failed(&self, reason: RenewFailure) {
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.metrics {
            metrics.renew_failed(reason);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = reason;
    }
}
