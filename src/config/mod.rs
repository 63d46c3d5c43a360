//! What an elector is told: names, identity and timings, validated before any
//! loop runs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

mod metadata;
mod names;
mod observer;
mod settings;

pub(crate) use metadata::LeaseMetadata;
pub(crate) use names::{dns1123_label, dns1123_subdomain};
pub use observer::ObserverConfig;
#[cfg(test)]
pub(crate) use settings::attempt_timeout;
pub(crate) use settings::{Reporting, Settings};

use crate::clock::{SystemClock, WallClock};
use crate::error::{ConfigError, ConfigProblem};

/// Configuration of a [`LeaderElector`](crate::LeaderElector).
///
/// Build it with [`ElectorConfig::new`] and the setters; it is validated when
/// the elector is built ([`LeaderElector::new`](crate::LeaderElector::new)),
/// so a configuration that cannot work never reaches the loop.
///
/// ```
/// use std::time::Duration;
/// use kube_elector::ElectorConfig;
///
/// let config = ElectorConfig::new("my-operator")
///     .namespace("operators")
///     .lease_duration(Duration::from_secs(15))
///     .renew_deadline(Duration::from_secs(10))
///     .retry_period(Duration::from_secs(2));
/// assert!(config.validate().is_ok());
/// ```
//
// One field per setter, flat on purpose: a builder whose every option is
// validated together (`validate` reports all problems at once), and the
// template a sharded elector copies per Lease.
#[derive(Clone)]
pub struct ElectorConfig {
    pub(crate) lease_name: String,
    pub(crate) namespace: Option<String>,
    pub(crate) identity: Option<String>,
    pub(crate) lease_duration: Duration,
    pub(crate) renew_deadline: Duration,
    pub(crate) retry_period: Duration,
    pub(crate) release_on_cancel: bool,
    pub(crate) drain_timeout: Duration,
    pub(crate) overdue_work: OverdueWork,
    pub(crate) adopt_own_lease: bool,
    pub(crate) clock: Arc<dyn WallClock>,
    pub(crate) reporting: Reporting,
    pub(crate) coordination: Option<Coordination>,
    /// Annotations every write of this elector sets on its Lease (a
    /// sharded elector publishes its shard count so).
    pub(crate) annotations: Vec<(String, String)>,
    /// Labels and owner references every write sets on the Lease.
    pub(crate) lease_metadata: LeaseMetadata,
}

/// What a candidate of coordinated election declares in its
/// `LeaseCandidate`; see [`ElectorConfig::coordinated`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Coordination {
    pub(crate) binary_version: String,
    pub(crate) emulation_version: String,
}

impl Default for ElectorConfig {
    fn default() -> Self {
        Self {
            // No sensible default: `validate` refuses an empty name.
            lease_name: String::new(),
            // `POD_NAMESPACE`, then the service-account namespace file, then
            // the client's default namespace (see `LeaderElector::new`).
            namespace: None,
            // `POD_NAME` or the hostname, plus a random suffix.
            identity: None,
            // The same defaults as client-go's leaderelection and
            // kube-controller-manager's `--leader-elect-*` flags.
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            // client-go's `ReleaseOnCancel` defaults to false; releasing is what
            // makes a graceful handover fast, so kube-elector does it by default.
            release_on_cancel: true,
            // Bounded so a stuck leader task cannot hold up shutdown for long;
            // the Lease stays ours (still renewed) while work drains.
            drain_timeout: Duration::from_secs(5),
            // Dropping the work's future is what a library can do without
            // deciding for the application; exiting is opt-in.
            overdue_work: OverdueWork::Drop,
            // client-go takes a Lease that names its identity at once; that is
            // unsafe when two instances share an identity (a `StatefulSet` pod
            // and its replacement), so kube-elector waits it out by default.
            adopt_own_lease: false,
            clock: Arc::new(SystemClock),
            // Metrics and Events are opt-in.
            reporting: Reporting::default(),
            // Coordinated election is opt-in, as in client-go.
            coordination: None,
            // Only a sharded elector sets any.
            annotations: Vec::new(),
            // client-go's LeaseLock writes no labels unless given some.
            lease_metadata: LeaseMetadata::default(),
        }
    }
}

impl fmt::Debug for ElectorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElectorConfig")
            .field("lease_name", &self.lease_name)
            .field("namespace", &self.namespace)
            .field("identity", &self.identity)
            .field("lease_duration", &self.lease_duration)
            .field("renew_deadline", &self.renew_deadline)
            .field("retry_period", &self.retry_period)
            .field("release_on_cancel", &self.release_on_cancel)
            .field("drain_timeout", &self.drain_timeout)
            .field("overdue_work", &self.overdue_work)
            .field("adopt_own_lease", &self.adopt_own_lease)
            .field("clock", &self.clock)
            .field("coordination", &self.coordination)
            .field("lease_metadata", &self.lease_metadata)
            .finish_non_exhaustive()
    }
}

impl ElectorConfig {
    /// A configuration for the Lease `lease_name`, with client-go's default
    /// timings (15 s / 10 s / 2 s).
    #[must_use]
    pub fn new(lease_name: impl Into<String>) -> Self {
        Self {
            lease_name: lease_name.into(),
            ..Self::default()
        }
    }

    /// The namespace of the Lease. Defaults to `POD_NAMESPACE`, the
    /// service-account namespace file, or the client's default namespace.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// The identity written as `holderIdentity`; unique per replica. Defaults
    /// to `POD_NAME` (or the hostname) plus a random suffix.
    #[must_use]
    pub fn identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// How long followers wait, from the moment they observe a record, before
    /// they may take the Lease. Whole seconds (the Lease stores seconds).
    #[must_use]
    pub fn lease_duration(mut self, d: Duration) -> Self {
        self.lease_duration = d;
        self
    }

    /// How long a leader keeps leading without a successful renew, counted
    /// from the moment it sent the last renew that succeeded.
    #[must_use]
    pub fn renew_deadline(mut self, d: Duration) -> Self {
        self.renew_deadline = d;
        self
    }

    /// How often the leader renews, and how often candidates retry after a
    /// failed request.
    #[must_use]
    pub fn retry_period(mut self, d: Duration) -> Self {
        self.retry_period = d;
        self
    }

    /// Whether shutting down releases a held Lease (default `true`), so the
    /// next leader need not wait for it to expire.
    #[must_use]
    pub fn release_on_cancel(mut self, release: bool) -> Self {
        self.release_on_cancel = release;
        self
    }

    /// How long shutdown waits for [`Leadership`](crate::Leadership) guards to
    /// be dropped before it releases the Lease anyway (default 5 s). While it
    /// waits, the elector no longer leads (the guards' tokens are cancelled)
    /// but keeps renewing the Lease, so that no other replica starts while
    /// the leader's work finishes.
    ///
    /// That protection lasts only while renews succeed: when the elector
    /// cannot renew (a partition), the wait also ends at the renew deadline
    /// after the last renew that succeeded, because from then on another
    /// replica may lead. Work still running then is unprotected:
    /// [`run_while_leading`](crate::ElectorView::run_while_leading) drops
    /// it, and guards report it through
    /// [`crate::state::Term::deadline`](crate::state::Term::deadline).
    #[must_use]
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.drain_timeout = d;
        self
    }

    /// What [`run_while_leading`](crate::ElectorView::run_while_leading)
    /// does with leader work that has not returned by the drain timeout
    /// after its term ended (or by the end of the term's protection, if
    /// sooner): drop its future (the default), or end the process, as
    /// controller-runtime does when leadership is lost. Dropping a future
    /// does not stop the tasks it spawned; ending the process does, and so
    /// bounds unprotected leader work to the drain timeout.
    #[must_use]
    pub fn on_overdue_work(mut self, overdue: OverdueWork) -> Self {
        self.overdue_work = overdue;
        self
    }

    /// Whether a Lease that names this elector's identity, in a term this
    /// elector did not start, is taken at once (`true`, client-go's
    /// behaviour) or waited out like any other holder's (`false`, the
    /// default).
    ///
    /// Such a Lease was written by another instance with the same identity:
    /// a pod with a stable name (a `StatefulSet`) restarted while its old
    /// instance may still run, partitioned. Taking it at once makes restarts
    /// faster but lets both instances lead until the old one's renew
    /// deadline; waiting it out costs a restarted pod up to one lease
    /// duration. Either way, once the new instance leads, the old one stops
    /// at its next read: a term continues only while the Lease carries its
    /// own record (holder, `leaseTransitions`, `acquireTime`).
    #[must_use]
    pub fn adopt_own_lease(mut self, adopt: bool) -> Self {
        self.adopt_own_lease = adopt;
        self
    }

    /// The wall clock whose readings are written as `acquireTime` and
    /// `renewTime`. Expiry never depends on it; tests use it to skew clocks.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn WallClock>) -> Self {
        self.clock = clock;
        self
    }

    /// Reports Prometheus metrics into `metrics` (see
    /// [`ElectorMetrics`](crate::metrics::ElectorMetrics)), labelled with the Lease's
    /// name.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    #[must_use]
    pub fn metrics(mut self, metrics: crate::metrics::ElectorMetrics) -> Self {
        self.reporting.metrics = Some(metrics);
        self
    }

    /// Records Kubernetes Events about the Lease as client-go does: reason
    /// `LeaderElection`, note `<identity> became leader` and `<identity>
    /// stopped leading`, type Normal, with `controller` as the reporting
    /// controller and the elector's identity as the reporting instance.
    /// Needs `create` and `patch` on `events` in `events.k8s.io`; failures
    /// are logged and never affect leadership.
    ///
    /// ```
    /// use kube_elector::ElectorConfig;
    ///
    /// let config = ElectorConfig::new("my-operator").recorder("my-operator");
    /// # drop(config);
    /// ```
    #[cfg(feature = "recorder")]
    #[cfg_attr(docsrs, doc(cfg(feature = "recorder")))]
    #[must_use]
    pub fn recorder(mut self, controller: impl Into<String>) -> Self {
        self.reporting.events = Some(controller.into());
        self
    }

    /// Takes part in coordinated leader election (KEP-4355) as well: the
    /// elector declares itself in a `coordination.k8s.io/v1beta1`
    /// `LeaseCandidate` named after its identity, with these versions and
    /// the `OldestEmulationVersion` strategy, keeps it renewed (when the
    /// API server's controller pings it, and every 5 minutes as client-go
    /// does), and deletes it when it stops.
    ///
    /// Where the Lease then carries a `strategy` (the controller sets it),
    /// the controller picks the leader, as client-go's `Coordinated` mode
    /// expects: this elector never takes the Lease on its own, takes it
    /// when the controller writes its identity as the holder, and hands it
    /// over (drain, then release) when `preferredHolder` names another
    /// candidate. Where the API server does not serve `LeaseCandidate`
    /// (the `CoordinatedLeaderElection` feature gate is off, the default),
    /// the elector says so once in its logs and runs the plain election.
    /// Both versions must be semantic versions (`1.31.0`), the binary's no
    /// older than the emulation's; the identity must be a valid object name.
    ///
    /// In coordinated election the controller judges expiry on the API
    /// server's wall clock: see the guide's page on coordinated election
    /// for the limit that puts on clock skew.
    ///
    /// ```
    /// use kube_elector::ElectorConfig;
    ///
    /// let config = ElectorConfig::new("my-operator")
    ///     .identity("my-operator-0")
    ///     .coordinated("1.34.0", "1.33.0");
    /// assert!(config.validate().is_ok());
    /// ```
    #[must_use]
    pub fn coordinated(
        mut self,
        binary_version: impl Into<String>,
        emulation_version: impl Into<String>,
    ) -> Self {
        self.coordination = Some(Coordination {
            binary_version: binary_version.into(),
            emulation_version: emulation_version.into(),
        });
        self
    }

    /// Checks every value and lists all that are wrong.
    ///
    /// # Errors
    /// A [`ConfigError`] naming each invalid value and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Some(coordination) = &self.coordination {
            coordination.validate(self.identity.as_deref(), &mut problems);
        }
        if let Err(reason) = dns1123_subdomain(&self.lease_name) {
            problems.push(ConfigProblem::InvalidName {
                field: "lease_name",
                value: self.lease_name.clone(),
                reason,
            });
        }
        if let Some(ns) = &self.namespace
            && let Err(reason) = dns1123_label(ns)
        {
            problems.push(ConfigProblem::InvalidName {
                field: "namespace",
                value: ns.clone(),
                reason,
            });
        }
        self.lease_metadata.validate(&mut problems);
        if self.identity.as_deref() == Some("") {
            problems.push(ConfigProblem::EmptyIdentity);
        }
        for (field, value) in [
            ("lease_duration", self.lease_duration),
            ("renew_deadline", self.renew_deadline),
            ("retry_period", self.retry_period),
        ] {
            if value.is_zero() {
                problems.push(ConfigProblem::ZeroDuration { field });
            }
        }
        if self.lease_duration.subsec_nanos() != 0
            || self.lease_duration.as_secs() > i32::MAX as u64
        {
            problems.push(ConfigProblem::LeaseDurationNotWholeSeconds {
                lease_duration: self.lease_duration,
            });
        }
        if self.lease_duration <= self.renew_deadline {
            problems.push(ConfigProblem::LeaseNotLongerThanRenewDeadline {
                lease_duration: self.lease_duration,
                renew_deadline: self.renew_deadline,
            });
        }
        if !longer_than_jittered(self.renew_deadline, self.retry_period) {
            problems.push(ConfigProblem::RenewDeadlineTooShort {
                renew_deadline: self.renew_deadline,
                retry_period: self.retry_period,
            });
        }
        ConfigError::from_problems(problems)
    }

    /// `leaseDurationSeconds` to write; only meaningful once validated.
    pub(crate) fn lease_duration_secs(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

impl Coordination {
    /// The versions as kube-apiserver validates a `LeaseCandidate`, and the
    /// identity as the candidate's name (the controller writes that name as
    /// `holderIdentity`).
    fn validate(&self, identity: Option<&str>, problems: &mut Vec<ConfigProblem>) {
        let binary = crate::candidate::version::parse(&self.binary_version);
        let emulation = crate::candidate::version::parse(&self.emulation_version);
        for (field, value, parsed) in [
            ("binary_version", &self.binary_version, &binary),
            ("emulation_version", &self.emulation_version, &emulation),
        ] {
            if let Err(reason) = parsed {
                problems.push(ConfigProblem::InvalidVersion {
                    field,
                    value: value.clone(),
                    reason: reason.clone(),
                });
            }
        }
        if let (Ok(binary), Ok(emulation)) = (&binary, &emulation)
            && binary < emulation
        {
            problems.push(ConfigProblem::BinaryOlderThanEmulation {
                binary_version: self.binary_version.clone(),
                emulation_version: self.emulation_version.clone(),
            });
        }
        if let Some(identity) = identity.filter(|i| !i.is_empty())
            && let Err(reason) = dns1123_subdomain(identity)
        {
            problems.push(ConfigProblem::InvalidName {
                field: "identity (the LeaseCandidate's name in coordinated election)",
                value: identity.to_owned(),
                reason,
            });
        }
    }
}

/// What becomes of leader work still running past its grace; see
/// [`ElectorConfig::on_overdue_work`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverdueWork {
    /// Drop the work's future (tasks it spawned keep running).
    #[default]
    Drop,
    /// Log an error and end the process with exit code 1, so that
    /// Kubernetes restarts it and nothing of the old term outlives it.
    ExitProcess,
}

/// client-go's rule, `renew_deadline > JitterFactor (1.2) × retry_period`,
/// in whole nanoseconds, so that no duration can overflow it.
fn longer_than_jittered(renew_deadline: Duration, retry_period: Duration) -> bool {
    renew_deadline.as_nanos() * 5 > retry_period.as_nanos() * 6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn defaults_are_client_go_defaults_and_valid() {
        let c = ElectorConfig::new("lock");
        assert_eq!(
            (c.lease_duration, c.renew_deadline, c.retry_period),
            (secs(15), secs(10), secs(2))
        );
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn timing_order_is_enforced() {
        let err = ElectorConfig::new("lock")
            .lease_duration(secs(10))
            .renew_deadline(secs(10))
            .validate()
            .unwrap_err();
        assert!(matches!(
            err.problems(),
            [ConfigProblem::LeaseNotLongerThanRenewDeadline { .. }]
        ));
        let err = ElectorConfig::new("lock")
            .renew_deadline(Duration::from_millis(2400))
            .validate()
            .unwrap_err();
        assert!(matches!(
            err.problems(),
            [ConfigProblem::RenewDeadlineTooShort { .. }]
        ));
        assert!(
            ElectorConfig::new("lock")
                .renew_deadline(Duration::from_millis(2401))
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_value() {
        let err = ElectorConfig::new("Bad_Name")
            .namespace("-ns")
            .identity("")
            .retry_period(Duration::ZERO)
            .lease_duration(Duration::from_millis(1500))
            .renew_deadline(secs(1))
            .validate()
            .unwrap_err();
        let p = err.problems();
        assert!(p.contains(&ConfigProblem::EmptyIdentity), "{p:?}");
        assert!(p.contains(&ConfigProblem::ZeroDuration {
            field: "retry_period"
        }));
        assert!(p.iter().any(|p| matches!(
            p,
            ConfigProblem::InvalidName {
                field: "lease_name",
                ..
            }
        )));
        assert!(p.iter().any(|p| matches!(
            p,
            ConfigProblem::InvalidName {
                field: "namespace",
                ..
            }
        )));
        assert!(
            p.iter()
                .any(|p| matches!(p, ConfigProblem::LeaseDurationNotWholeSeconds { .. }))
        );
        let msg = err.to_string();
        assert!(
            msg.contains("\"Bad_Name\"") && msg.contains("contains 'B'"),
            "{msg}"
        );
    }

    #[test]
    fn names_follow_dns_1123() {
        assert!(dns1123_subdomain("kube-controller-manager").is_ok());
        assert!(dns1123_subdomain("a.b-c.d").is_ok());
        assert!(dns1123_subdomain("").is_err());
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_subdomain("a-").is_err());
        assert!(dns1123_subdomain(&"a".repeat(254)).is_err());
        assert!(dns1123_label("kube-system").is_ok());
        assert!(dns1123_label("a.b").is_err());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn duration() -> impl Strategy<Value = Duration> {
            prop_oneof![
                Just(Duration::ZERO),
                Just(Duration::MAX),
                (0u64..=u64::MAX, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
                (0u64..100_000).prop_map(Duration::from_millis),
            ]
        }

        proptest! {
            /// `validate` never panics, and what it accepts keeps client-go's
            /// order of durations.
            #[test]
            fn validate_never_panics(
                lease in duration(),
                renew in duration(),
                retry in duration(),
                drain in duration(),
            ) {
                let config = ElectorConfig::new("lock")
                    .lease_duration(lease)
                    .renew_deadline(renew)
                    .retry_period(retry)
                    .drain_timeout(drain);
                if config.validate().is_ok() {
                    prop_assert!(lease > renew && renew > retry && !retry.is_zero());
                    prop_assert_eq!(lease.subsec_nanos(), 0);
                }
            }
        }
    }
}
