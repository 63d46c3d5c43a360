//! Errors of the elector and the lock.

use std::fmt;
use std::time::Duration;

/// What went wrong talking to the API server or running the elector.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The API server refused or failed a request.
    #[error("could not {operation} Lease {namespace}/{name}")]
    Api {
        /// What the request was for.
        operation: LeaseOperation,
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// The client's error (an HTTP status, a connection error, a decoding error).
        #[source]
        source: kube::Error,
    },
    /// A request got no answer in time.
    #[error("could not {operation} Lease {namespace}/{name}: no answer within {timeout:?}")]
    Timeout {
        /// What the request was for.
        operation: LeaseOperation,
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// Someone else wrote the Lease first (409 `Conflict` or `AlreadyExists`); read it again.
    #[error("could not {operation} Lease {namespace}/{name}: it changed since it was read")]
    Conflict {
        /// What the request was for.
        operation: LeaseOperation,
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
    },
    /// `step_down` or release was asked of a replica that does not hold the Lease.
    #[error("not the holder of the Lease (held by {})", holder.as_deref().unwrap_or("nobody"))]
    NotHolder {
        /// The holder as observed, if any.
        holder: Option<String>,
    },
    /// A handover named this elector's own identity as the successor.
    #[error("cannot hand the Lease over to this elector's own identity ({identity})")]
    HandoverToSelf {
        /// The identity named.
        identity: String,
    },
    /// The elector's task ended abnormally (it panicked or was aborted).
    #[error("the elector task ended abnormally")]
    Task(#[source] tokio::task::JoinError),
    /// The elector has stopped, so it will not lead again.
    #[error("the elector has stopped")]
    Stopped,
}

impl Error {
    /// Whether trying again later may succeed.
    ///
    /// Conflicts, timeouts, server and connection errors are worth retrying;
    /// invalid configuration and requests, authentication and authorization
    /// failures (401/403), `step_down` without the Lease, and a stopped
    /// elector are not (as kubert decides).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { source, .. } => match source {
                kube::Error::Api(status) => !matches!(status.code, 400 | 401 | 403 | 422),
                kube::Error::Auth(_) | kube::Error::BuildRequest(_) => false,
                _ => true,
            },
            Self::Timeout { .. } | Self::Conflict { .. } => true,
            Self::Config(_)
            | Self::NotHolder { .. }
            | Self::HandoverToSelf { .. }
            | Self::Task(_)
            | Self::Stopped => false,
        }
    }
}

impl Error {
    /// The error and its cause in words, for a log line (see [`plain`]).
    pub(crate) fn plain(&self) -> String {
        match self {
            Self::Api { source, .. } => format!("{self}: {}", plain(source)),
            _ => self.to_string(),
        }
    }
}

/// A kube error in one line of words, with its causes: a refused request
/// as `<code> <reason>: <message>` (kube's own rendering carries the status
/// in Rust's debug syntax), any other error followed by each cause below
/// it (a connection error's cause, refused, TLS or DNS, sits a level or two
/// below kube's own error). For log lines and command-line messages.
///
/// ```
/// let status: kube::core::Status = serde_json::from_value(serde_json::json!({
///     "code": 403, "reason": "Forbidden", "message": "leases is forbidden"
/// }))?;
/// let error = kube::Error::Api(Box::new(status));
/// assert_eq!(
///     kube_elector::error::plain(&error),
///     "403 Forbidden: leases is forbidden"
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[must_use]
pub fn plain(error: &kube::Error) -> String {
    if let kube::Error::Api(status) = error {
        return format!("{} {}: {}", status.code, status.reason, status.message);
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(next) = cause {
        let line = next.to_string();
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = next.source();
    }
    text
}

/// What a request to the API server was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseOperation {
    /// Reading the Lease.
    Get,
    /// Watching the Lease.
    Watch,
    /// Creating a missing Lease.
    Create,
    /// Taking the Lease for a new term.
    Acquire,
    /// Renewing our term.
    Renew,
    /// Releasing the Lease.
    Release,
}

impl fmt::Display for LeaseOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Get => "read",
            Self::Watch => "watch",
            Self::Create => "create",
            Self::Acquire => "acquire",
            Self::Renew => "renew",
            Self::Release => "release",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("tcp connect error")]
    struct Connect(#[source] std::io::Error);

    #[test]
    fn a_plain_error_keeps_every_cause() {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error = Error::Api {
            operation: LeaseOperation::Get,
            namespace: "ns".into(),
            name: "l".into(),
            source: kube::Error::Service(Box::new(Connect(refused))),
        };
        let plain = error.plain();
        assert!(plain.starts_with("could not read Lease ns/l: "), "{plain}");
        assert!(plain.contains("tcp connect error"), "{plain}");
        assert!(plain.ends_with("connection refused"), "{plain}");
    }

    fn api_error(code: u16) -> Error {
        let status: kube::core::Status = serde_json::from_value(
            serde_json::json!({ "code": code, "reason": "x", "message": "m" }),
        )
        .unwrap();
        Error::Api {
            operation: LeaseOperation::Renew,
            namespace: "ns".into(),
            name: "l".into(),
            source: kube::Error::Api(Box::new(status)),
        }
    }

    #[test]
    fn retryable_errors_are_the_transient_ones() {
        assert!(api_error(500).is_retryable());
        assert!(api_error(429).is_retryable());
        assert!(!api_error(403).is_retryable());
        assert!(!api_error(401).is_retryable());
        assert!(!Error::Stopped.is_retryable());
        assert!(!Error::NotHolder { holder: None }.is_retryable());
    }

    #[test]
    fn messages_name_the_lease_and_do_not_repeat_the_cause() {
        let e = api_error(500);
        assert_eq!(e.to_string(), "could not renew Lease ns/l");
        assert!(std::error::Error::source(&e).is_some());
    }
}

// === Configuration errors ===

/// A configuration that cannot work, with every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid elector configuration: {}", join(.problems))]
pub struct ConfigError {
    problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// Each value that is wrong, and why.
    #[must_use]
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }

    /// `Ok` when there is no problem.
    pub(crate) fn from_problems(problems: Vec<ConfigProblem>) -> Result<(), Self> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Self { problems })
        }
    }

    pub(crate) fn single(problem: ConfigProblem) -> Self {
        Self {
            problems: vec![problem],
        }
    }
}

fn join(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One invalid value of an [`ElectorConfig`](crate::ElectorConfig).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// A name that Kubernetes would refuse.
    #[error("{field} {value:?} is not a valid name: {reason}")]
    InvalidName {
        /// Which setting.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A version of [`ElectorConfig::coordinated`](crate::ElectorConfig::coordinated) that kube-apiserver would
    /// refuse in a `LeaseCandidate`.
    #[error("{field} {value:?} is not a semantic version (MAJOR.MINOR.PATCH): {reason}")]
    InvalidVersion {
        /// Which version.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A binary can emulate older versions, not newer ones.
    #[error(
        "binary_version {binary_version:?} must not be older than emulation_version {emulation_version:?}"
    )]
    BinaryOlderThanEmulation {
        /// The binary version given.
        binary_version: String,
        /// The emulation version given.
        emulation_version: String,
    },
    /// A label of [`ElectorConfig::lease_label`](crate::ElectorConfig::lease_label)
    /// that Kubernetes would refuse.
    #[error("lease label {key:?}={value:?} is invalid: {reason}")]
    InvalidLabel {
        /// The key given.
        key: String,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An owner reference of [`ElectorConfig::owner_reference`](crate::ElectorConfig::owner_reference)
    /// that Kubernetes would refuse.
    #[error("owner reference {owner} is invalid: {reason}")]
    InvalidOwnerReference {
        /// The owner, as `apiVersion/kind name`.
        owner: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The identity is empty; an empty holder means "free" to every elector.
    #[error("identity must not be empty: an empty holderIdentity means the Lease is free")]
    EmptyIdentity,
    /// A duration of zero.
    #[error("{field} must be greater than zero")]
    ZeroDuration {
        /// Which setting.
        field: &'static str,
    },
    /// The Lease stores whole seconds; a fraction would be cut off, and
    /// followers would take over before the leader's renew deadline.
    #[error(
        "lease_duration must be a whole number of seconds (at most i32::MAX), got {lease_duration:?}"
    )]
    LeaseDurationNotWholeSeconds {
        /// The value given.
        lease_duration: Duration,
    },
    /// A leader must stop before followers may take over.
    #[error(
        "lease_duration ({lease_duration:?}) must be greater than renew_deadline ({renew_deadline:?})"
    )]
    LeaseNotLongerThanRenewDeadline {
        /// The lease duration given.
        lease_duration: Duration,
        /// The renew deadline given.
        renew_deadline: Duration,
    },
    /// A leader needs room for at least one retry before its deadline.
    #[error(
        "renew_deadline ({renew_deadline:?}) must be greater than 1.2 × retry_period ({retry_period:?})"
    )]
    RenewDeadlineTooShort {
        /// The renew deadline given.
        renew_deadline: Duration,
        /// The retry period given.
        retry_period: Duration,
    },
    /// In coordinated election, the identity already names the
    /// `LeaseCandidate` another elector of this process declares for
    /// another Lease. The candidate is named after the identity, and
    /// kube-apiserver's controller writes that name as the holder it
    /// elects: one name cannot stand for two Leases.
    #[error(
        "identity {identity:?} is already the LeaseCandidate of Lease {lease:?} in namespace \
         {namespace:?} (another coordinated elector of this process): the controller writes the \
         candidate's name as the holder, so one identity cannot be the candidate of two Leases; \
         give each Lease's elector an identity of its own"
    )]
    CandidateNameInUse {
        /// The identity given.
        identity: String,
        /// The namespace of both Leases.
        namespace: String,
        /// The Lease the identity is the candidate of already.
        lease: String,
    },
}
