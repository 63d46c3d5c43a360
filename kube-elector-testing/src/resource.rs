//! The resources the server stores, and what differs between them: their
//! names, the version they are served at, the fields a selector may name,
//! and the strategy (`pkg/registry/coordination/*/strategy.go`) and
//! validation (`pkg/apis/coordination/validation`) kube-apiserver applies to
//! them. The store, the watches, the patches and the HTTP paths are the same
//! for every resource.

use std::fmt;

use serde_json::Value;

use crate::status::{ApiError, LEASE_CANDIDATES, LEASES, Names};
use crate::strategy::Gates;
use crate::validate;

/// A resource the server serves, for the request counters and the 403s
/// aimed at one resource ([`LeaseApiServer::requests_for`],
/// [`LeaseApiServer::forbid_resource`]).
///
/// [`LeaseApiServer::requests_for`]: crate::LeaseApiServer::requests_for
/// [`LeaseApiServer::forbid_resource`]: crate::LeaseApiServer::forbid_resource
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Resource {
    /// `coordination.k8s.io/v1` Leases, always served.
    Leases,
    /// `coordination.k8s.io/v1beta1` `LeaseCandidate`s, served only with the
    /// `CoordinatedLeaderElection` feature gate on
    /// ([`LeaseApiServerBuilder::coordinated_leader_election`](crate::LeaseApiServerBuilder::coordinated_leader_election)).
    LeaseCandidates,
}

impl Resource {
    /// Every resource.
    pub const ALL: [Self; 2] = [Self::Leases, Self::LeaseCandidates];

    /// The plural, as in paths and RBAC rules: `leases`, `leasecandidates`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        self.names().plural
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// How `Status` bodies name it.
    pub(crate) fn names(self) -> Names {
        match self {
            Self::Leases => LEASES,
            Self::LeaseCandidates => LEASE_CANDIDATES,
        }
    }

    /// The kind of its objects: `Lease`.
    pub(crate) fn kind(self) -> &'static str {
        self.names().kind
    }

    /// The version it is served at: `v1`.
    pub(crate) fn version(self) -> &'static str {
        match self {
            Self::Leases => "v1",
            Self::LeaseCandidates => "v1beta1",
        }
    }

    /// `coordination.k8s.io/v1`.
    pub(crate) fn api_version(self) -> String {
        format!("{}/{}", self.names().group, self.version())
    }

    /// The singular, as discovery names it: `lease`.
    pub(crate) fn singular(self) -> &'static str {
        match self {
            Self::Leases => "lease",
            Self::LeaseCandidates => "leasecandidate",
        }
    }

    /// Whether a server with `gates` serves it.
    pub(crate) fn served(self, gates: Gates) -> bool {
        match self {
            Self::Leases => true,
            Self::LeaseCandidates => gates.coordinated_leader_election,
        }
    }

    /// The fields a `fieldSelector` may name: the object's name and
    /// namespace alone, for both (kube-apiserver registers no field label
    /// conversion for `spec.leaseName`, although the `LeaseCandidate`
    /// strategy's `GetAttrs` sets it: a selector on it is refused with 400).
    pub(crate) fn field_labels(self) -> &'static [&'static str] {
        match self {
            Self::Leases | Self::LeaseCandidates => &["metadata.name", "metadata.namespace"],
        }
    }

    /// The `Warning` header kube-apiserver sends with every answer about
    /// the resource, if any: `LeaseCandidate`s are deprecated at v1beta1.
    pub(crate) fn warning(self) -> Option<&'static str> {
        match self {
            Self::Leases => None,
            Self::LeaseCandidates => Some(
                "299 - \"coordination.k8s.io/v1beta1 LeaseCandidate is deprecated in v1.36+, unavailable in v1.39+\"",
            ),
        }
    }

    /// The strategy's `PrepareForCreate`: what the server drops from an
    /// object about to be created.
    pub(crate) fn prepare_for_create(self, gates: Gates, object: &mut Value) {
        match self {
            Self::Leases => gates.prepare_for_create(object),
            Self::LeaseCandidates => {}
        }
    }

    /// The strategy's `PrepareForUpdate`: what the server drops from an
    /// object about to replace `old`.
    pub(crate) fn prepare_for_update(self, gates: Gates, object: &mut Value, old: &Value) {
        match self {
            Self::Leases => gates.prepare_for_update(object, old),
            Self::LeaseCandidates => {}
        }
    }

    /// Validation of an object named `name` about to be created: 400 for
    /// what does not decode, 422 listing every invalid field.
    pub(crate) fn validate(self, object: &Value, name: &str) -> Result<(), ApiError> {
        match self {
            Self::Leases => validate::lease(object, name),
            Self::LeaseCandidates => validate::candidate::create(object, name),
        }
    }

    /// Validation of an object named `name` about to replace `old`.
    pub(crate) fn validate_update(
        self,
        object: &Value,
        old: &Value,
        name: &str,
    ) -> Result<(), ApiError> {
        match self {
            Self::Leases => validate::lease(object, name),
            Self::LeaseCandidates => validate::candidate::update(object, old, name),
        }
    }

    /// Rewrites the `MicroTime`s of a valid object as kube-apiserver
    /// serializes them.
    pub(crate) fn normalize(self, object: &mut Value) {
        let fields: &[&str] = match self {
            Self::Leases => &["acquireTime", "renewTime"],
            Self::LeaseCandidates => &["pingTime", "renewTime"],
        };
        validate::normalize_times(object, fields);
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
