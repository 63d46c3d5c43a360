//! What an observer is told: only what following a Lease uses.

use std::time::Duration;

use super::ElectorConfig;
use crate::error::{ConfigError, ConfigProblem};

/// Configuration of a [`LeaderObserver`](crate::observer::LeaderObserver):
/// which Lease to follow, where, how often to read it while watching
/// fails, and how long one request may take. An observer writes nothing, so it has no identity, no timings of
/// its own and none of a candidate's options: it judges a holder's expiry
/// by the duration the holder recorded on the Lease.
///
/// ```
/// use std::time::Duration;
/// use kube_elector::observer::ObserverConfig;
///
/// let config = ObserverConfig::new("my-operator")
///     .namespace("operators")
///     .retry_period(Duration::from_secs(2))
///     .request_timeout(Duration::from_secs(4));
/// assert!(config.validate().is_ok());
/// assert!(ObserverConfig::new("Not A Name").validate().is_err());
/// assert!(ObserverConfig::new("my-operator").request_timeout(Duration::ZERO).validate().is_err());
/// ```
#[derive(Clone, Debug)]
pub struct ObserverConfig {
    lease_name: String,
    namespace: Option<String>,
    retry_period: Duration,
    request_timeout: Duration,
}

/// Keeps the derived lease duration a whole number of seconds that fits
/// `leaseDurationSeconds`, whatever durations are asked for.
const LONGEST_RENEW_DEADLINE: Duration = Duration::from_secs(1 << 30);

impl ObserverConfig {
    /// Follows the Lease `lease_name`, reading it every 2 s while watching
    /// fails (client-go's default retry period), each request under a
    /// timeout of 4 s (an elector's with the default timings).
    #[must_use]
    pub fn new(lease_name: impl Into<String>) -> Self {
        let defaults = ElectorConfig::default();
        Self {
            lease_name: lease_name.into(),
            namespace: None,
            retry_period: defaults.retry_period,
            request_timeout: super::settings::attempt_timeout(
                defaults.renew_deadline,
                defaults.retry_period,
            ),
        }
    }

    /// The Lease's namespace; defaults as [`ElectorConfig::namespace`].
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// How often the observer reads the Lease while its watch is down, and
    /// the first pause before it watches again.
    #[must_use]
    pub fn retry_period(mut self, d: Duration) -> Self {
        self.retry_period = d;
        self
    }

    /// How long one request (a read, a list, the start of a watch) may
    /// take before the observer gives up on it and tries again.
    #[must_use]
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Checks every value and lists all that are wrong.
    ///
    /// # Errors
    /// A [`ConfigError`] naming each invalid value and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems: Vec<ConfigProblem> = match self.clone().into_elector().validate() {
            Ok(()) => Vec::new(),
            // The derived timings are in order whenever the two given are
            // not zero: only the names and the retry period can be wrong.
            Err(error) => error
                .problems()
                .iter()
                .filter(|p| !matches!(p, ConfigProblem::RenewDeadlineTooShort { .. }))
                .cloned()
                .collect(),
        };
        if self.request_timeout.is_zero() {
            problems.push(ConfigProblem::ZeroDuration {
                field: "request_timeout",
            });
        }
        ConfigError::from_problems(problems)
    }

    /// The configuration an observer's loop runs with: a follower's, whose
    /// candidate-only settings are never used (it campaigns for nothing),
    /// with the renew deadline whose request timeout is the one asked for
    /// (its only use in a follower).
    pub(crate) fn into_elector(self) -> ElectorConfig {
        let renew_deadline = self
            .request_timeout
            .saturating_mul(2)
            .saturating_add(self.retry_period)
            .min(LONGEST_RENEW_DEADLINE);
        let lease_duration = Duration::from_secs(renew_deadline.as_secs().saturating_add(1));
        let config = ElectorConfig::new(self.lease_name)
            .lease_duration(lease_duration)
            .renew_deadline(renew_deadline)
            .retry_period(self.retry_period);
        match self.namespace {
            Some(namespace) => config.namespace(namespace),
            None => config,
        }
    }
}
