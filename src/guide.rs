//! Guides: one page per concept, beyond the API reference.
//!
//! - [`safety`]: why there is never more than one leader, and where that
//!   guarantee ends.
//! - [`durations`]: choosing `lease_duration`, `renew_deadline` and
//!   `retry_period`.
//! - [`migrating_from_kube_leader_election`] and
//!   [`migrating_from_kube_lease_manager`]: moving over from the peer crates.
//! - [`coordinated`]: coordinated leader election (`LeaseCandidate`) and
//!   directed handover.
//! - [`testing`]: testing leader-gated code against the embedded API server
//!   (the `kube-elector-testing` crate).
//! - [`sharding`]: N shards over the replicas: when to shard, choosing N,
//!   what a move costs, idempotent reconciles across a move.
//! - `controller` (feature `controller`): kube-runtime Controllers under
//!   leadership, cold or warm standby: when warm standby pays, what it
//!   costs, and writes fenced against a term that ended.
//! - [`command`]: the `kube-elector` command (crate `kube-elector-cli`) for
//!   workloads in any language: `run`, `serve`, `observe`.
//!
//! The pages hold no items; their examples are compiled and run as doctests.

#[doc = include_str!("../docs/guide/safety.md")]
pub mod safety {}

#[doc = include_str!("../docs/guide/durations.md")]
pub mod durations {}

#[doc = include_str!("../docs/guide/migrating_from_kube_leader_election.md")]
pub mod migrating_from_kube_leader_election {}

#[doc = include_str!("../docs/guide/migrating_from_kube_lease_manager.md")]
pub mod migrating_from_kube_lease_manager {}

#[doc = include_str!("../docs/guide/coordinated.md")]
pub mod coordinated {}

#[doc = include_str!("../docs/guide/testing.md")]
pub mod testing {}

#[doc = include_str!("../docs/guide/sharding.md")]
pub mod sharding {}

#[cfg(feature = "controller")]
#[cfg_attr(docsrs, doc(cfg(feature = "controller")))]
#[doc = include_str!("../docs/guide/controller.md")]
pub mod controller {}

#[doc = include_str!("../docs/guide/command.md")]
pub mod command {}
