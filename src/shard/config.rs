//! What a sharded elector is told, validated before anything runs.

use crate::config::ElectorConfig;
use crate::error::ConfigError;

/// Configuration of a [`ShardedElector`](crate::shard::ShardedElector):
/// how many shards, and the [`ElectorConfig`] every shard and member
/// Lease is elected by.
///
/// The template's Lease name is the prefix: shard `i` is the Lease
/// `<prefix>-<i>`, and this replica's membership the Lease
/// `<prefix>-member-<identity>`. Every other setting of the template
/// (namespace, identity, timings, drain, overdue work, release on cancel,
/// adoption, clock, metrics, the recorder) reaches every one of those
/// electors; coordinated election is refused (see
/// [`ShardConfigProblem::NotForShards`]). Every replica of a workload must
/// use the same prefix; the shard count is published on every Lease a
/// replica writes, and replicas of another count than the longest-standing
/// member's own nothing (see the sharding guide on changing the count).
///
/// ```
/// use std::time::Duration;
/// use kube_elector::ElectorConfig;
/// use kube_elector::shard::ShardConfig;
///
/// let template = ElectorConfig::new("my-operator")
///     .namespace("operators")
///     .lease_duration(Duration::from_secs(15))
///     .renew_deadline(Duration::from_secs(10))
///     .retry_period(Duration::from_secs(2));
/// let config = ShardConfig::new(template.clone(), 64);
/// assert!(config.validate().is_ok());
/// assert!(ShardConfig::new(template, 0).validate().is_err());
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
    /// `shards` shards named `<prefix>-0` … `<prefix>-<shards − 1>`, where
    /// the prefix is `template`'s Lease name, each elected as `template`
    /// says. The identity, when `template` sets one, is this replica's
    /// holder and the end of its member Lease's name, so it must fit a
    /// Lease name (lower-case letters, digits, `-` and `.`); by default
    /// it is `POD_NAME` (or the host name), made to fit, plus a random
    /// suffix.
    #[must_use]
    pub fn new(template: ElectorConfig, shards: u32) -> Self {
        let prefix = template.lease_name.clone();
        let identity = template.identity.clone();
        Self {
            prefix,
            shards,
            template,
            identity,
        }
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
        if self.template.coordination.is_some() {
            problems.push(ShardConfigProblem::NotForShards {
                option: "coordinated",
                reason: "a LeaseCandidate is named after its identity, so one identity can \
                         stand in coordinated election for one Lease only, and a replica \
                         elects every shard Lease under its one identity",
            });
        }
        // The longest shard name and the member Lease name stand for all.
        let last = self.shards.saturating_sub(1);
        for lease in [
            self.shard_lease(last),
            format!("{}{identity}", self.member_prefix()),
        ] {
            let mut config = self.elector(lease, identity);
            // Refused above, with the reason that concerns shards.
            config.coordination = None;
            if let Err(error) = config.validate() {
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
    /// An option of the template that cannot reach shards, and why.
    #[error("{option} cannot be used for shards: {reason}")]
    NotForShards {
        /// The [`ElectorConfig`] setter.
        option: &'static str,
        /// Why shards cannot have it.
        reason: &'static str,
    },
}
