//! What the loop reports besides its state: the stamps health checks read,
//! and metrics and Kubernetes Events when they are configured.
//!
//! One code path whatever the features: without `metrics` or `events`, the
//! reporters are the uninhabited stand-ins of `off`, so their `Option`s are
//! always `None` and the calls compile to nothing (as tokio's metrics
//! `mock.rs`, client-go's `noMetrics`).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::LeaseApi;
use crate::config::Settings;
use crate::shared::{RenewFailure, Shared};

#[cfg(feature = "recorder")]
use crate::events::{EventSink, Note};
#[cfg(feature = "metrics")]
use crate::metrics::LeaseMetrics;
#[cfg(not(feature = "metrics"))]
use off::LeaseMetrics;
#[cfg(not(feature = "recorder"))]
use off::{EventSink, Note};

#[derive(Debug)]
pub(super) struct Telemetry {
    shared: Arc<Shared>,
    metrics: Option<LeaseMetrics>,
    events: Option<EventSink>,
}

impl Telemetry {
    pub(super) fn new(shared: Arc<Shared>, settings: &Settings, api: &LeaseApi) -> Self {
        Self {
            shared,
            metrics: lease_metrics(settings, api),
            events: event_sink(settings, api),
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
        if let Some(events) = &self.events {
            events.send(Note::BecameLeader {
                uid: uid.map(str::to_owned),
            });
        }
        if let Some(metrics) = &self.metrics {
            metrics.started_leading(free_since.map(|since| since.elapsed()));
        }
    }

    pub(super) fn stopped_leading(&self, uid: Option<&str>) {
        if let Some(events) = &self.events {
            events.send(Note::StoppedLeading {
                uid: uid.map(str::to_owned),
            });
        }
        if let Some(metrics) = &self.metrics {
            metrics.stopped_leading();
        }
    }

    /// A renew sent at `sent` succeeded.
    pub(super) fn renewed(&self, sent: Instant) {
        self.shared.set_renewed(sent);
        if let Some(metrics) = &self.metrics {
            metrics.renewed(sent.elapsed());
        }
    }

    pub(super) fn renew_failed(&self, reason: RenewFailure) {
        if let Some(metrics) = &self.metrics {
            metrics.renew_failed(reason);
        }
    }

    /// Records what is still queued (events), for at most `patience`.
    pub(super) async fn close(&mut self, patience: Duration) {
        if let Some(events) = self.events.take() {
            events.close(patience).await;
        }
    }
}

#[cfg(feature = "metrics")]
fn lease_metrics(settings: &Settings, api: &LeaseApi) -> Option<LeaseMetrics> {
    let metrics = settings.reporting.metrics.as_ref()?;
    Some(metrics.for_lease(api.name()))
}

#[cfg(not(feature = "metrics"))]
fn lease_metrics(_: &Settings, _: &LeaseApi) -> Option<LeaseMetrics> {
    None
}

#[cfg(feature = "recorder")]
fn event_sink(settings: &Settings, api: &LeaseApi) -> Option<EventSink> {
    let controller = settings.reporting.events.clone()?;
    Some(EventSink::spawn(
        api.client(),
        api.namespace(),
        api.name(),
        &settings.identity,
        controller,
    ))
}

#[cfg(not(feature = "recorder"))]
fn event_sink(_: &Settings, _: &LeaseApi) -> Option<EventSink> {
    None
}

/// Stand-ins for the reporters of features that are off: they cannot be
/// made, so code that would use them never runs.
#[cfg(not(all(feature = "metrics", feature = "recorder")))]
#[allow(dead_code, clippy::unused_self, clippy::unused_async)]
mod off {
    use std::time::Duration;

    use crate::shared::RenewFailure;

    #[derive(Debug)]
    pub(super) enum LeaseMetrics {}

    impl LeaseMetrics {
        pub(super) fn started_leading(&self, _: Option<Duration>) {
            match *self {}
        }
        pub(super) fn stopped_leading(&self) {
            match *self {}
        }
        pub(super) fn renewed(&self, _: Duration) {
            match *self {}
        }
        pub(super) fn renew_failed(&self, _: RenewFailure) {
            match *self {}
        }
    }

    #[derive(Debug)]
    pub(super) enum EventSink {}

    pub(super) enum Note {
        BecameLeader { uid: Option<String> },
        StoppedLeading { uid: Option<String> },
    }

    impl EventSink {
        pub(super) fn send(&self, _: Note) {
            match *self {}
        }
        pub(super) async fn close(self, _: Duration) {
            match self {}
        }
    }
}
