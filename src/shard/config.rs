//! What a sharded elector is told, validated before anything runs.

use std::time::Duration;

use crate::config::ElectorConfig;
use crate::error::ConfigError;

/// Configuration of a [`ShardedElector`](crate::ShardedElector): how many
/// shards, the prefix of their Lease names, and the timings every shard
/// and member Lease uses.
///
/// Shard `i` is the Lease `<prefix>-<i>`; this replica's membership is the
/// Lease `<prefix>-member-<identity>`. Every replica of a workload must
/// use the same prefix; the shard count is published on every Lease a
/// replica writes, and replicas of another count than the longest-standing
/// member's own nothing (see the sharding guide on changing the count).
///
/// ```
/// use std::time::Duration;
/// use kube_elector::ShardConfig;
///
/// let config = ShardConfig::new("my-operator", 64)
///     .namespace("operators")
///     .lease_duration(Duration::from_secs(15))
///     .renew_deadline(Duration::from_secs(10))
///     .retry_period(Duration::from_secs(2));
/// assert!(config.validate().is_ok());
/// assert!(ShardConfig::new("my-operator", 0).validate().is_err());
/// ```
#[derive(Clone, Debug)]
pub struct ShardConfig {
    pub(crate) prefix: String,
    pub(crate) shards: u32,
    /// What every shard and member elector is built from (its Lease name
    /// and identity are set per Lease).
    pub(crate) template: ElectorConfig,
    pub(crate) identity: Option<String>,
}

impl ShardConfig {
    /// `shards` shards named `<prefix>-0` … `<prefix>-<shards − 1>`, with
    /// client-go's default timings (15 s / 10 s / 2 s) and a drain timeout
    /// of 5 s, as [`ElectorConfig`].
    #[must_use]
    pub fn new(prefix: impl Into<String>, shards: u32) -> Self {
        Self {
            prefix: prefix.into(),
            shards,
            template: ElectorConfig::new(""),
            identity: None,
        }
    }

    /// The namespace of every Lease; defaults as [`ElectorConfig::namespace`].
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.template = self.template.namespace(namespace);
        self
    }

    /// This replica's identity: the holder it writes, and the end of its
    /// member Lease's name, so it must fit a Lease name (lower-case
    /// letters, digits, `-` and `.`). Defaults to `POD_NAME` (or the host
    /// name), made to fit, plus a random suffix.
    #[must_use]
    pub fn identity(mut self, identity: impl Into<String>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// See [`ElectorConfig::lease_duration`]: also how long a crashed
    /// replica stays a member, so how long its shards wait for a new owner.
    #[must_use]
    pub fn lease_duration(mut self, d: Duration) -> Self {
        self.template = self.template.lease_duration(d);
        self
    }

    /// See [`ElectorConfig::renew_deadline`].
    #[must_use]
    pub fn renew_deadline(mut self, d: Duration) -> Self {
        self.template = self.template.renew_deadline(d);
        self
    }

    /// See [`ElectorConfig::retry_period`]: each owned shard and the member
    /// Lease are renewed this often.
    #[must_use]
    pub fn retry_period(mut self, d: Duration) -> Self {
        self.template = self.template.retry_period(d);
        self
    }

    /// See [`ElectorConfig::drain_timeout`]: how long a moved shard's work
    /// may take to finish before its Lease is handed over anyway.
    #[must_use]
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.template = self.template.drain_timeout(d);
        self
    }

    /// See [`ElectorConfig::clock`].
    #[must_use]
    pub fn clock(mut self, clock: std::sync::Arc<dyn crate::WallClock>) -> Self {
        self.template = self.template.clock(clock);
        self
    }

    /// Reports every shard's metrics (and the member Lease's) into
    /// `metrics`, each labelled with its Lease's name: per shard,
    /// `leader_election_master_status{name="<prefix>-<i>"}` is 1 while this
    /// replica owns it, and `leader_election_transitions_total` counts
    /// its acquisitions and losses.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    #[must_use]
    pub fn metrics(mut self, metrics: crate::ElectorMetrics) -> Self {
        self.template = self.template.metrics(metrics);
        self
    }

    /// The Lease of shard `shard`.
    pub(crate) fn shard_lease(&self, shard: u32) -> String {
        format!("{}-{shard}", self.prefix)
    }

    /// The prefix of every member Lease's name.
    pub(crate) fn member_prefix(&self) -> String {
        format!("{}-member-", self.prefix)
    }

    /// An elector configuration for `lease`, as `identity`.
    pub(crate) fn elector(&self, lease: String, identity: &str) -> ElectorConfig {
        let mut config = self.template.clone();
        config.lease_name = lease;
        // Every member and shard Lease says which count it was written
        // under: replicas of another count stay out while it lives.
        config.annotations = vec![(
            super::fleet::COUNT_ANNOTATION.to_owned(),
            self.shards.to_string(),
        )];
        config.identity(identity)
    }

    /// Checks every value and lists all that are wrong, with the identity
    /// given or a placeholder that fits.
    ///
    /// # Errors
    /// A [`ShardConfigError`] naming each problem.
    pub fn validate(&self) -> Result<(), ShardConfigError> {
        self.validate_as(self.identity.as_deref().unwrap_or("x"))
    }

    pub(crate) fn validate_as(&self, identity: &str) -> Result<(), ShardConfigError> {
        let mut problems = Vec::new();
        if self.shards == 0 {
            problems.push(ShardConfigProblem::NoShards);
        }
        if identity.is_empty() || !identity.bytes().all(fits_a_name) {
            problems.push(ShardConfigProblem::IdentityNotAName {
                identity: identity.to_owned(),
            });
        }
        // The longest shard name and the member Lease name stand for all.
        let last = self.shards.saturating_sub(1);
        for lease in [
            self.shard_lease(last),
            format!("{}{identity}", self.member_prefix()),
        ] {
            if let Err(error) = self.elector(lease, identity).validate() {
                problems.push(ShardConfigProblem::Elector(error));
                break;
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ShardConfigError { problems })
        }
    }
}

fn fits_a_name(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'.'
}

/// Why a [`ShardConfig`] cannot work: every problem found.
#[derive(Debug, thiserror::Error)]
#[error("invalid sharded elector configuration: {}", list(.problems))]
pub struct ShardConfigError {
    /// Each problem, in the order checked.
    pub problems: Vec<ShardConfigProblem>,
}

fn list(problems: &[ShardConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One problem of a [`ShardConfig`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardConfigProblem {
    /// There must be at least one shard.
    #[error("the shard count is 0")]
    NoShards,
    /// The identity ends the member Lease's name, so it must fit one.
    #[error(
        "identity {identity:?} cannot end a Lease name (lower-case letters, digits, '-' and '.')"
    )]
    IdentityNotAName {
        /// The identity given.
        identity: String,
    },
    /// The Leases' names or timings are refused as an elector's would be.
    #[error("the shard and member Leases cannot be elected")]
    Elector(#[source] ConfigError),
}
