//! Prometheus metrics of electors, through `prometheus-client`.

use std::time::Duration;

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::shared::RenewFailure;

/// The label of every metric: the Lease's name, as client-go's `name`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    name: String,
}

/// A change of this elector's leadership.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Transition {
    Started,
    Stopped,
}

impl EncodeLabelValue for Transition {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(match self {
            Self::Started => "started_leading",
            Self::Stopped => "stopped_leading",
        })
    }
}

impl EncodeLabelValue for RenewFailure {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(match self {
            Self::Conflict => "conflict",
            Self::Error => "error",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    name: String,
    transition: Transition,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    name: String,
    reason: RenewFailure,
}

type Histograms = Family<LeaseLabels, Histogram, fn() -> Histogram>;

/// Prometheus metrics of electors, registered once in a
/// [`Registry`] and given to each
/// elector with [`ElectorConfig::metrics`](crate::ElectorConfig::metrics).
/// Every metric carries the label `name`, the Lease's name, so one set
/// (created once per registry, then cloned) serves the electors of several
/// Leases in a process; two electors of the *same* Lease in one process would
/// share their series, so give each its own registry.
///
/// | metric | type | meaning |
/// |---|---|---|
/// | `leader_election_master_status` | gauge | 1 while this replica leads, else 0 (client-go's name) |
/// | `leader_election_transitions_total` | counter | terms started and ended, label `transition` = `started_leading` / `stopped_leading` |
/// | `leader_election_renew_duration_seconds` | histogram | round trip of successful renews |
/// | `leader_election_renew_failures_total` | counter | failed renews, label `reason` = `conflict` / `error` |
/// | `leader_election_handover_seconds` | histogram | from the moment this replica found the Lease free (released, expired or deleted, by its own clock) to the start of its term |
///
/// ```
/// use prometheus_client::registry::Registry;
/// use kube_elector::{ElectorConfig, metrics::ElectorMetrics};
///
/// let mut registry = Registry::default();
/// let metrics = ElectorMetrics::new(&mut registry);
/// let config = ElectorConfig::new("my-operator").metrics(metrics);
/// # drop(config);
///
/// // Serve this on /metrics (see the `probes` example).
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ElectorMetrics {
    master_status: Family<LeaseLabels, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
    renew_duration: Histograms,
    renew_failures: Family<FailureLabels, Counter>,
    handover: Histograms,
}

/// 1 ms to ~8 s: a renew is one round trip to the API server.
fn renew_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// 1 ms to ~33 s: a handover after a release is a watch event, one after a
/// crash waits out the lease duration.
fn handover_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl ElectorMetrics {
    /// Creates the metrics and registers them in `registry` (use
    /// [`Registry::sub_registry_with_prefix`] for a prefix).
    #[must_use]
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            master_status: Family::default(),
            transitions: Family::default(),
            renew_duration: Family::new_with_constructor(renew_buckets),
            renew_failures: Family::default(),
            handover: Family::new_with_constructor(handover_buckets),
        };
        registry.register(
            "leader_election_master_status",
            "Whether this replica leads the Lease (1) or not (0)",
            metrics.master_status.clone(),
        );
        registry.register(
            "leader_election_transitions",
            "Terms of leadership this replica started and ended",
            metrics.transitions.clone(),
        );
        registry.register_with_unit(
            "leader_election_renew_duration",
            "Round trip of successful renews of the Lease",
            Unit::Seconds,
            metrics.renew_duration.clone(),
        );
        registry.register(
            "leader_election_renew_failures",
            "Renews of the Lease that failed",
            metrics.renew_failures.clone(),
        );
        registry.register_with_unit(
            "leader_election_handover",
            "From finding the Lease free to leading",
            Unit::Seconds,
            metrics.handover.clone(),
        );
        metrics
    }

    pub(crate) fn for_lease(&self, name: &str) -> LeaseMetrics {
        let metrics = LeaseMetrics {
            metrics: self.clone(),
            name: name.to_owned(),
        };
        metrics.leading(false);
        metrics
    }
}

/// The metrics of one elector, labelled with its Lease's name.
#[derive(Clone, Debug)]
pub(crate) struct LeaseMetrics {
    metrics: ElectorMetrics,
    name: String,
}

impl LeaseMetrics {
    fn labels(&self) -> LeaseLabels {
        LeaseLabels {
            name: self.name.clone(),
        }
    }

    fn leading(&self, leading: bool) {
        self.metrics
            .master_status
            .get_or_create(&self.labels())
            .set(i64::from(leading));
    }

    fn transition(&self, transition: Transition) {
        self.metrics
            .transitions
            .get_or_create(&TransitionLabels {
                name: self.name.clone(),
                transition,
            })
            .inc();
    }

    pub(crate) fn started_leading(&self, handover: Option<Duration>) {
        self.leading(true);
        self.transition(Transition::Started);
        if let Some(handover) = handover {
            self.metrics
                .handover
                .get_or_create(&self.labels())
                .observe(handover.as_secs_f64());
        }
    }

    pub(crate) fn stopped_leading(&self) {
        self.leading(false);
        self.transition(Transition::Stopped);
    }

    pub(crate) fn renewed(&self, round_trip: Duration) {
        self.metrics
            .renew_duration
            .get_or_create(&self.labels())
            .observe(round_trip.as_secs_f64());
    }

    pub(crate) fn renew_failed(&self, reason: RenewFailure) {
        self.metrics
            .renew_failures
            .get_or_create(&FailureLabels {
                name: self.name.clone(),
                reason,
            })
            .inc();
    }
}
