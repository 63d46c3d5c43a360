//! Requests that fail in a row, and what is said of them: one warning when
//! a failure starts, debug while it lasts, one line when it ends.

use std::time::Duration;

use crate::error::{Error, LeaseOperation};

/// What is failing now, if anything.
#[derive(Debug, Default)]
pub(super) struct Outage {
    failing: Option<Failing>,
}

#[derive(Debug)]
struct Failing {
    /// The request that failed first.
    operation: Option<LeaseOperation>,
    /// How many failed since.
    count: u32,
    /// The server answered it with a refusal (403, 401, 422…): that kind of
    /// request is refused, and only its own success ends the failure (the
    /// reads that still succeed in between say nothing about it). Without
    /// one (no connection, a timeout, a 5xx), any answer ends it.
    refused: bool,
}

/// The Kubernetes verb a request needs on `leases`.
fn verb(operation: LeaseOperation) -> &'static str {
    match operation {
        LeaseOperation::Get => "get",
        LeaseOperation::Watch => "watch",
        LeaseOperation::Create => "create",
        LeaseOperation::Acquire | LeaseOperation::Renew | LeaseOperation::Release => "update",
    }
}

/// The request an error is about, the status it was refused with (if it
/// was), and the Lease.
fn facts(error: &Error) -> (Option<LeaseOperation>, Option<u16>, Option<(&str, &str)>) {
    match error {
        Error::Api {
            operation,
            namespace,
            name,
            source,
        } => {
            let status = match source {
                kube::Error::Api(status) if status.code != 409 && status.code != 429 => {
                    Some(status.code).filter(|code| (400..500).contains(code))
                }
                _ => None,
            };
            (Some(*operation), status, Some((namespace, name)))
        }
        Error::Timeout {
            operation,
            namespace,
            name,
            ..
        }
        | Error::Conflict {
            operation,
            namespace,
            name,
        } => (Some(*operation), None, Some((namespace, name))),
        _ => (None, None, None),
    }
}

impl Outage {
    /// The API server answered `operation` (a conflict is an answer too).
    pub(super) fn answered(&mut self, operation: LeaseOperation) {
        let Some(failing) = &self.failing else {
            return;
        };
        if failing.refused && failing.operation != Some(operation) {
            return;
        }
        if failing.refused {
            tracing::info!(
                failed = failing.count,
                verb = verb(operation),
                "the API server allows {} on the Lease again",
                verb(operation)
            );
        } else {
            tracing::info!(failed = failing.count, "the API server answers again");
        }
        self.failing = None;
    }

    /// A request failed; the elector retries every `retry`.
    pub(super) fn failed(&mut self, error: &Error, retry: Duration) {
        let (operation, refused, lease) = facts(error);
        if let Some(failing) = &mut self.failing {
            failing.count = failing.count.saturating_add(1);
            tracing::debug!(error = %error.plain(), failures = failing.count, "request failed again");
            return;
        }
        let described = error.plain();
        match (operation, refused, lease) {
            (Some(operation), Some(403), Some((namespace, name))) => {
                let verb = verb(operation);
                tracing::warn!(
                    error = %described,
                    verb,
                    resource = "leases",
                    "the API server forbids {verb} on Lease {namespace}/{name}: this replica's \
                     account needs the verb {verb} on leases (group coordination.k8s.io) in \
                     {namespace}; retrying every {retry:?} (until it is allowed, further \
                     failures are logged at debug)"
                );
            }
            (Some(operation), Some(status), _) => {
                tracing::warn!(
                    error = %described,
                    verb = verb(operation),
                    status,
                    "the API server refused the request; retrying every {retry:?} (until it \
                     is accepted, further failures are logged at debug)"
                );
            }
            _ => {
                tracing::warn!(
                    error = %described,
                    "request failed; retrying every {retry:?} (further failures in a row are \
                     logged at debug)"
                );
            }
        }
        self.failing = Some(Failing {
            operation,
            count: 1,
            refused: refused.is_some(),
        });
    }
}
