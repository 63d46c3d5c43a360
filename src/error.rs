//! Errors of the elector and the lock.

use std::fmt;
use std::time::Duration;

use crate::config::ConfigError;

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
