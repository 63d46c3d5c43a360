//! Leader election for Kubernetes workloads through a
//! `coordination.k8s.io/v1` Lease.
//!
//! Replicas of a workload contend for one Lease; the holder leads, and
//! hands over at once when it shuts down.
//!
//! # Elect a leader
//! Build a [`LeaderElector`] from a `kube::Client` and an
//! [`ElectorConfig`], spawn it, and run the leader's work in each term.
//! [`ElectorHandle::run_until_signal`] is the usual `main` of an operator:
//! it runs the work while this replica leads and, on SIGTERM or Ctrl-C,
//! lets it finish, releases the Lease and returns, so the next replica
//! takes over within one watch event rather than a lease duration.
//!
//! ```no_run
//! use kube_elector::{ElectorConfig, LeaderElector};
//!
//! # async fn run() -> anyhow::Result<()> {
//! let client = kube::Client::try_default().await?;
//! let elector = LeaderElector::new(client, ElectorConfig::new("my-operator"))?.spawn();
//! let outcome = elector
//!     .run_until_signal(|leadership| async move {
//!         // Leader-only work, until the term ends.
//!         leadership
//!             .token()
//!             .run_until_cancelled(async { /* reconcile, schedule, ... */ })
//!             .await;
//!         Ok::<_, anyhow::Error>(())
//!     })
//!     .await?;
//! println!("shut down: {outcome:?}");
//! # Ok(())
//! # }
//! ```
//!
//! # What a running elector offers
//! - The [`ElectorHandle`] owns the elector (dropping it shuts it down);
//!   through it, and through any clone of its [`ElectorView`]:
//!   [`became_leader`](ElectorView::became_leader) waits for a term and
//!   returns its [`Leadership`] guard (a fencing token, a token cancelled
//!   when the term ends, its deadline);
//!   [`run_while_leading`](ElectorView::run_while_leading) runs work per
//!   term; [`subscribe`](ElectorView::subscribe) gives the [`LeaderState`]
//!   on a `tokio::sync::watch` channel and [`events`](ElectorView::events)
//!   the same as a [`Stream`](futures::Stream) of [`LeaderEvent`]s
//!   (`StartedLeading`, `StoppedLeading`, `NewLeader`).
//! - [`ElectorHandle::shutdown`] (or cancelling the token given to
//!   [`spawn_with_token`](LeaderElector::spawn_with_token)) ends the term,
//!   waits for the guards to be dropped (up to the drain timeout), releases
//!   the Lease and says how it ended ([`ShutdownOutcome`]).
//! - A configuration that cannot work is refused at construction with a
//!   [`ConfigError`] naming every bad value; at run time every failure is
//!   logged and retried, and [`Error`] is what the few fallible calls return.
//!
//! # Why it is safe
//! Every write carries the `resourceVersion` it was based on, so of two
//! replicas that saw the same expired Lease only one wins. A follower may take
//! a held Lease only once it has seen the record unchanged for
//! `lease_duration` on its own monotonic clock, counted from the moment it
//! observed it; a leader counts its term from the moment it *sent* its last
//! successful renew and stops at `sent + renew_deadline`. Since
//! `renew_deadline < lease_duration`, a leader that cannot renew stops before
//! anyone else may start, whatever the wall clocks of the nodes say. The
//! [safety guide](guide::safety) has the argument and the fault matrix of
//! the tests that attack it.
//!
//! # Beyond one elector
//! - [`handover`]: hand leadership to a chosen replica (a rolling update's
//!   new pod) in one watch event.
//! - [`observer`]: follow who leads without campaigning.
//! - [`hub`]: thousands of electors and observers over one watch per
//!   namespace, candidates standing in line so a release is taken by one.
//! - [`shard`]: N shards, each a Lease, balanced over the replicas, with
//!   ownership you can gate each object's work on.
//! - Coordinated election (KEP-4355): [`ElectorConfig::coordinated`] and
//!   [the guide](guide::coordinated).
//! - [`lock`]: the polled `LeaseLock` of `kube-leader-election`, with the
//!   same API and conditional writes, for a one-line migration.
//! - [`health`] for `/healthz` and `/readyz`, `metrics` (feature) for
//!   Prometheus, [`clock`] for the wall clock the elector writes with,
//!   [`state`] and [`error`] for every type of the state and the errors.
//!
//! # Guides
//! The [`guide`] pages explain [why it is safe](guide::safety), [how to
//! choose the durations](guide::durations), how to migrate from
//! [kube-leader-election](guide::migrating_from_kube_leader_election) and
//! [kube-lease-manager](guide::migrating_from_kube_lease_manager), how to
//! [test leader-gated code](guide::testing) against the embedded API server
//! of the `kube-elector-testing` crate, how to [shard](guide::sharding)
//! the work over replicas, and how to run a kube-runtime Controller
//! [under leadership](https://github.com/kube-elector/kube-elector/blob/main/docs/guide/controller.md), warm or cold.
//!
//! # Observability
//! - [`ElectorHandle::health_check`] gives a [`HealthCheck`](health::HealthCheck)
//!   for `/healthz` (client-go's rule: a leader whose last renew is older
//!   than the lease duration plus a tolerance is unhealthy) and `/readyz`.
//! - With the `metrics` feature, `metrics::ElectorMetrics` reports
//!   `leader_election_master_status{name}` and friends into a
//!   `prometheus-client` registry. The `probes` example serves all three
//!   endpoints with axum.
//! - Tracing: each elector's events sit in a `leader_election` span with the
//!   lease, namespace and identity, each request in a `lease_request` span.
//!   Renews are `debug`, taking and releasing the Lease `info`, losing it
//!   `warn`; the steady state logs nothing at `info`.
//!
//! # Features
//! - `metrics`: `metrics::ElectorMetrics`, Prometheus metrics through
//!   `prometheus-client`.
//! - `recorder`: `ElectorConfig::recorder`, Kubernetes Events on the
//!   Lease (`<identity> became leader`) as client-go records them, through
//!   kube-runtime's `Recorder`.
//! - `controller`: `controller::LeaderController`, a kube-runtime
//!   `Controller` gated by leadership, cold (built per term) or warm
//!   standby (every replica watches, the leader reconciles, a new leader
//!   reconciles its warm store at once); kube's `runtime` feature, no TLS
//!   choice. See [the guide](https://github.com/kube-elector/kube-elector/blob/main/docs/guide/controller.md).
//!
//! # RBAC
//! The elector needs `get`, `list`, `watch`, `create`, `update` and `patch`
//! on `leases` in the `coordination.k8s.io` group, in the Lease's namespace.
//! Without `watch` it falls back to polling.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod api;
mod candidate;
pub mod clock;
mod config;
#[cfg(feature = "controller")]
#[cfg_attr(docsrs, doc(cfg(feature = "controller")))]
pub mod controller;
mod elector;
pub mod error;
#[cfg(feature = "recorder")]
mod events;
pub mod guide;
pub mod health;
pub mod hub;
pub mod lock;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod record;
pub mod shard;
mod shared;
pub mod state;
mod successor;
mod watch;

// The common path: elect, configure, hold the handle and the guard, read
// the state and its events, handle the errors.
pub use config::{ElectorConfig, OverdueWork};
pub use elector::{ElectorHandle, ElectorView, LeaderElector, Leadership, ShutdownOutcome};
pub use error::{ConfigError, Error};
pub use state::{LeaderEvent, LeaderEvents, LeaderState};

/// README.md's Rust blocks, compiled (and, where they need no cluster,
/// run) as doctests, so that a snippet that does not compile fails
/// `cargo test`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub mod handover {
    //! Handing leadership to a chosen replica: what
    //! [`ElectorView::hand_over`](crate::ElectorView::hand_over) takes
    //! and returns, and the annotation a release names its successor in.
    pub use crate::elector::{HandoverOutcome, Successor};
    pub use crate::successor::SUCCESSOR_ANNOTATION;
}

pub mod observer {
    //! Following who leads a Lease without campaigning: a
    //! [`LeaderObserver`], configured by the [`ObserverConfig`] it uses.
    pub use crate::config::ObserverConfig;
    pub use crate::elector::{LeaderObserver, ObserverHandle};
}
