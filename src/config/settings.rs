//! The configuration as the loop uses it: validated, with every default
//! resolved once.

use std::sync::Arc;
use std::time::Duration;

use super::{ElectorConfig, dns1123_label};
use crate::clock::WallClock;
use crate::error::{ConfigError, ConfigProblem};

/// The parts of the configuration the loop uses, with defaults resolved.
///
/// Flat on purpose: the configuration's options resolved once, read (never
/// written) by the runner, the schedule and the telemetry of one elector.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) identity: String,
    pub(crate) lease_duration_secs: i32,
    /// `lease_duration_secs` as a duration.
    pub(crate) lease_duration: Duration,
    pub(crate) renew_deadline: Duration,
    pub(crate) retry_period: Duration,
    /// The longest one request may take (a leader's requests also end at
    /// its renew deadline).
    pub(crate) request_timeout: Duration,
    pub(crate) release_on_cancel: bool,
    pub(crate) drain_timeout: Duration,
    pub(crate) overdue_work: super::OverdueWork,
    /// Take a live Lease that names this identity in a term it did not start.
    pub(crate) adopt_own_lease: bool,
    /// Whether this elector campaigns (`false`: an observer, which never
    /// writes).
    pub(crate) campaign: bool,
    pub(crate) clock: Arc<dyn WallClock>,
    /// What this elector declares as a `LeaseCandidate`, if it takes part
    /// in coordinated election.
    pub(crate) coordination: Option<super::Coordination>,
    /// Annotations every write sets on the Lease.
    pub(crate) annotations: Vec<(String, String)>,
    /// Labels and owner references every write sets on the Lease.
    pub(crate) lease_metadata: super::LeaseMetadata,
    // Empty, and so unread, without the optional features.
    #[cfg_attr(not(any(feature = "metrics", feature = "recorder")), allow(dead_code))]
    pub(crate) reporting: Reporting,
}

impl ElectorConfig {
    /// Validates the configuration and resolves its defaults once: the
    /// namespace (`POD_NAMESPACE`, the service-account namespace file, or
    /// `client_default`), the identity (`POD_NAME` or the hostname, plus a
    /// random suffix), the duration in whole seconds, the request timeout.
    pub(crate) fn resolve(&self, client_default: &str) -> Result<(String, Settings), ConfigError> {
        self.validate()?;
        let namespace = if let Some(ns) = self.namespace.clone() {
            ns
        } else {
            let ns = default_namespace(client_default);
            dns1123_label(&ns).map_err(|reason| {
                ConfigError::single(ConfigProblem::InvalidName {
                    field: "namespace",
                    value: ns.clone(),
                    reason,
                })
            })?;
            ns
        };
        let settings = Settings {
            identity: self.identity.clone().unwrap_or_else(|| {
                let identity = default_identity();
                if self.coordination.is_some() {
                    // The name of a LeaseCandidate: no `_`, no capitals.
                    identity.to_lowercase().replace(['_', '.'], "-")
                } else {
                    identity
                }
            }),
            lease_duration_secs: self.lease_duration_secs(),
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
            request_timeout: attempt_timeout(self.renew_deadline, self.retry_period),
            release_on_cancel: self.release_on_cancel,
            drain_timeout: self.drain_timeout,
            overdue_work: self.overdue_work,
            adopt_own_lease: self.adopt_own_lease,
            campaign: true,
            clock: Arc::clone(&self.clock),
            coordination: self.coordination.clone(),
            annotations: self.annotations.clone(),
            lease_metadata: self.lease_metadata.clone(),
            reporting: self.reporting.clone(),
        };
        Ok((namespace, settings))
    }
}

/// Where a pod finds its namespace.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

fn default_namespace(client_default: &str) -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|ns| !ns.is_empty())
        .or_else(|| {
            std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                .ok()
                .map(|ns| ns.trim().to_owned())
                .filter(|ns| !ns.is_empty())
        })
        .unwrap_or_else(|| client_default.to_owned())
}

/// `POD_NAME` or the hostname, plus a random suffix so that two processes on
/// one host (or a restarted pod) never share an identity.
fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kube-elector".to_owned());
    format!("{base}_{}", random_suffix())
}

fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per process; mixing in the time and
    // an address separates electors within one process too.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_usize(std::ptr::from_ref(&hasher).addr());
    let mut n = hasher.finish();
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    (0..6)
        .map(|_| {
            let c = alphabet[usize::try_from(n % 27).unwrap_or(0)];
            n /= 27;
            char::from(c)
        })
        .collect()
}

/// What an elector reports besides its state, by optional feature: the one
/// place where the configuration depends on features.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reporting {
    /// Prometheus metrics (opt-in: they need the caller's registry).
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<crate::metrics::ElectorMetrics>,
    /// Kubernetes Events, as this controller (opt-in: they need RBAC on
    /// events.k8s.io).
    #[cfg(feature = "recorder")]
    pub(crate) events: Option<String>,
}

/// How long one request may take: two attempts fit within the time a leader
/// has for a renew (the renew deadline less the retry period it waited), so
/// one hung request does not cost the term.
pub(crate) fn attempt_timeout(renew_deadline: Duration, retry_period: Duration) -> Duration {
    (renew_deadline.saturating_sub(retry_period) / 2).max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_attempts_fit_in_what_is_left_of_a_renew_deadline() {
        let (deadline, retry) = (Duration::from_secs(1), Duration::from_millis(250));
        let attempt = attempt_timeout(deadline, retry);
        assert!(retry + attempt * 2 <= deadline);
        assert_eq!(
            attempt_timeout(Duration::from_secs(10), Duration::from_secs(2)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn an_absurd_retry_period_leaves_the_least_attempt_timeout() {
        assert_eq!(
            attempt_timeout(Duration::from_secs(1), Duration::MAX),
            Duration::from_millis(1)
        );
    }
}
