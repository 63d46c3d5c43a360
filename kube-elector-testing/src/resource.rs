//! The resources the server stores, and what tells them apart: their
//! names, the version they are served at, the fields a selector may name.
//! What the server does to each before storing it is in `strategy.rs`; the
//! store, the watches, the patches and the HTTP paths are the same for
//! every resource.

use std::fmt;

use crate::status::{LEASE_CANDIDATES, LEASES, Names};

/// The feature gates of a server that change what it serves and how it
/// treats Leases (`strategy.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Gates {
    /// `CoordinatedLeaderElection`.
    pub(crate) coordinated_leader_election: bool,
}

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
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
