//! Leader election for Kubernetes workloads through a
//! `coordination.k8s.io/v1` Lease.
//!
//! Replicas of a workload contend for one Lease; the holder leads. Two layers:
//!
//! - [`LeaderElector`]: a background task that campaigns, renews, watches the
//!   Lease and releases it on shutdown. Its [`ElectorHandle`] offers
//!   [`became_leader`](ElectorHandle::became_leader) (a guard with a fencing
//!   token and a token cancelled when leadership ends), the current
//!   [`LeaderState`] on a `watch` channel, and a [`Stream`](futures::Stream)
//!   of [`LeaderEvent`]s.
//! - [`LeaseLock`]: the polled lock of `kube-leader-election`, with the same
//!   API, for a one-line migration.
//!
//! A [`ShardedElector`] spreads work over the replicas: N shards, each a
//! Lease with its own elector, assigned to the members exactly balanced,
//! and handed over when a replica joins or leaves (see
//! [the sharding guide](guide::sharding)).
//!
//! Electors and [`LeaderObserver`]s made through one [`LeaseHub`] share one
//! watch per namespace, and candidates for one Lease stand in line: a
//! release names the next as its successor, so a handover costs two
//! requests whatever the number of candidates.
//!
//! # Why it is safe
//! Every write carries the `resourceVersion` it was based on, so of two
//! replicas that saw the same expired Lease only one wins. A follower may take
//! a held Lease only once it has seen the record unchanged for
//! `lease_duration` on its own monotonic clock, counted from the moment it
//! observed it; a leader counts its term from the moment it *sent* its last
//! successful renew and stops at `sent + renew_deadline`. Since
//! `renew_deadline < lease_duration`, a leader that cannot renew stops before
//! anyone else may start, whatever the wall clocks of the nodes say.
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use futures::StreamExt;
//! use kube_elector::{ElectorConfig, LeaderElector, LeaderEvent};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> anyhow::Result<()> {
//! let client = kube::Client::try_default().await?;
//! let config = ElectorConfig::new("my-operator")
//!     .lease_duration(Duration::from_secs(15))
//!     .renew_deadline(Duration::from_secs(10))
//!     .retry_period(Duration::from_secs(2));
//! let shutdown = CancellationToken::new();
//! let elector = LeaderElector::new(client, config)?.spawn_with_token(&shutdown);
//!
//! let mut events = elector.events();
//! tokio::spawn(async move {
//!     while let Some(event) = events.next().await {
//!         if let LeaderEvent::NewLeader { identity } = event {
//!             println!("leader is now {identity:?}");
//!         }
//!     }
//! });
//!
//! let leadership = elector.became_leader().await?;
//! leadership
//!     .token()
//!     .run_until_cancelled(async { /* leader-only work */ })
//!     .await;
//! drop(leadership);
//!
//! shutdown.cancel(); // or elector.shutdown().await: hand over at once
//! elector.join().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Guides
//! The [`guide`] pages explain [why it is safe](guide::safety), [how to
//! choose the durations](guide::durations), how to migrate from
//! [kube-leader-election](guide::migrating_from_kube_leader_election) and
//! [kube-lease-manager](guide::migrating_from_kube_lease_manager), and how to
//! [test leader-gated code](guide::testing) against the embedded API server
//! of the `kube-elector-testing` crate, and how to [shard](guide::sharding)
//! the work over replicas.
//!
//! # Observability
//! - [`ElectorHandle::health_check`] gives a [`HealthCheck`] for `/healthz`
//!   (client-go's rule: a leader whose last renew is older than the lease
//!   duration plus a tolerance is unhealthy) and `/readyz`.
//! - With the `metrics` feature, [`ElectorMetrics`] reports
//!   `leader_election_master_status{name}` and friends into a
//!   `prometheus-client` registry. The `probes` example serves all three
//!   endpoints with axum.
//! - Tracing: each elector's events sit in a `leader_election` span with the
//!   lease, namespace and identity, each request in a `lease_request` span.
//!   Renews are `debug`, taking and releasing the Lease `info`, losing it
//!   `warn`; the steady state logs nothing at `info`.
//!
//! # Features
//! - `metrics`: [`ElectorMetrics`], Prometheus metrics through
//!   `prometheus-client`.
//! - `events`: [`ElectorConfig::record_events`], Kubernetes Events on the
//!   Lease (`<identity> became leader`) as client-go records them, through
//!   kube-runtime's `Recorder`.
//!
//! # RBAC
//! The elector needs `get`, `list`, `watch`, `create`, `update` and `patch`
//! on `leases` in the `coordination.k8s.io` group, in the Lease's namespace.
//! Without `watch` it falls back to polling.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod api;
mod candidate;
mod clock;
mod config;
mod elector;
mod error;
#[cfg(feature = "events")]
mod events;
pub mod guide;
mod health;
mod hub;
mod lock;
#[cfg(feature = "metrics")]
mod metrics;
mod record;
mod shard;
mod shared;
mod state;
mod watch;

pub use clock::{SkewedClock, SystemClock, WallClock};
pub use config::{ElectorConfig, OverdueWork};
pub use elector::{
    ElectorHandle, ElectorView, HandoverOutcome, LeaderElector, LeaderObserver, Leadership,
    ObserverHandle, ShutdownOutcome, Successor,
};
pub use error::{ConfigError, ConfigProblem, Error, LeaseOperation};
pub use health::{HealthCheck, Unhealthy};
pub use hub::LeaseHub;
pub use lock::{LeaseLock, LeaseLockParams, LeaseLockResult};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics::ElectorMetrics;
pub use record::SUCCESSOR_ANNOTATION;
pub use shard::{
    Assignment, OwnedShards, ShardConfig, ShardConfigError, ShardConfigProblem, ShardEvent,
    ShardEvents, ShardedElector, ShardedHandle, shard_for_key,
};
pub use state::{LeaderEvent, LeaderEvents, LeaderState, Term};
