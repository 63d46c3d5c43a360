//! Sharded leadership: N shards over the replicas that are members now,
//! each shard a Lease with its own elector, balanced, and never owned twice.
//!
//! The pieces, in the order a change travels:
//! - `membership`: who is a member, judged from member Leases by observed
//!   time (pure);
//! - `assign`: who owns which shard, from the members (pure);
//! - `coordinator`: the task that holds this replica's member Lease,
//!   follows the others' through the hub and publishes the assignment;
//! - `worker`: one task per shard that switches its elector's campaign on
//!   or off and hands a moved shard to its new owner;
//! - `handle`: what users hold: the owned shards, their events, the work.
//!
//! - `fleet`: whether every live replica shards alike, and which members
//!   do not serve their shards (pure);
//!
//! Safety is each shard's Lease's: ownership *is* leadership of that
//! Lease, with its conditional writes and renew deadline. The assignment
//! only decides who campaigns and to whom a holder hands over, so replicas
//! that disagree about the members for a moment cost time, never a shard
//! owned twice.

mod assign;
mod config;
mod coordinator;
mod fleet;
mod handle;
mod key;
mod membership;
mod plan;
mod worker;

pub use assign::Assignment;
pub use config::{ShardConfig, ShardConfigError, ShardConfigProblem};
pub use handle::{OwnedShards, ShardEvent, ShardEvents, ShardedHandle};
pub use key::shard_for_key;

use std::sync::Arc;

use kube::Client;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::elector::LeaderElector;
use crate::hub::LeaseHub;

/// A validated sharded elector, ready to be spawned: one member Lease and
/// one elector per shard, all through one [`LeaseHub`] (one watch of the
/// namespace).
///
/// Each replica announces itself with its member Lease
/// `<prefix>-member-<identity>`, renewed like any Lease. Every replica
/// computes the same [`Assignment`] from the members it sees, campaigns
/// only for the shards assigned to it, and hands a shard that moves to its
/// new owner with [`hand_over`](crate::ElectorView::hand_over) (one watch
/// event, after the shard's work drained). A replica that crashes stops
/// being a member once its member Lease expires; its shards' new owners,
/// which have observed those Leases all along, take them as they expire.
///
/// ```no_run
/// use kube_elector::ElectorConfig;
/// use kube_elector::shard::{ShardConfig, ShardedElector};
///
/// # async fn run() -> anyhow::Result<()> {
/// let client = kube::Client::try_default().await?;
/// let config = ShardConfig::new(ElectorConfig::new("my-operator"), 16);
/// let sharded = ShardedElector::new(client, config)?.spawn();
/// sharded
///     .run_per_shard(|shard, leadership| async move {
///         println!("reconciling shard {shard} (fencing token {})", leadership.fencing_token());
///         leadership.lost().await;
///     })
///     .await;
/// sharded.shutdown().await?; // hands every shard to its next owner
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ShardedElector {
    hub: LeaseHub,
    config: ShardConfig,
    identity: Arc<str>,
    member: LeaderElector,
    shards: Vec<LeaderElector>,
}

// === impl ShardedElector ===

impl ShardedElector {
    /// Validates `config` and resolves its identity and namespace, with a
    /// hub of its own on `client`.
    ///
    /// # Errors
    /// A [`ShardConfigError`] listing every problem.
    pub fn new(client: Client, config: ShardConfig) -> Result<Self, ShardConfigError> {
        Self::in_hub(&LeaseHub::new(client), config)
    }

    /// As [`new`](Self::new), through `hub`: shard and member Leases share
    /// its watch of the namespace with every other elector of the hub.
    ///
    /// # Errors
    /// A [`ShardConfigError`] listing every problem.
    pub fn in_hub(hub: &LeaseHub, config: ShardConfig) -> Result<Self, ShardConfigError> {
        let identity = config
            .identity
            .clone()
            .unwrap_or_else(key::default_identity);
        config.validate_as(&identity)?;
        let elector = |lease| {
            hub.elector(config.elector(lease, &identity))
                .map_err(|error| ShardConfigError {
                    problems: vec![ShardConfigProblem::Elector(error)],
                })
        };
        let member = elector(format!("{}{identity}", config.member_prefix()))?;
        let shards = (0..config.shards)
            .map(|shard| elector(config.shard_lease(shard)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            hub: hub.clone(),
            identity: Arc::from(identity),
            config,
            member,
            shards,
        })
    }

    /// This replica's identity.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Starts the member Lease and every shard's elector, stopped by the
    /// returned handle.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn(self) -> ShardedHandle {
        self.spawn_with_token(&CancellationToken::new())
    }

    /// Starts the sharded elector; cancelling `token` (or a parent of it)
    /// makes it leave: it releases its member Lease, hands each shard it
    /// owns to its next owner (after the shard's work drained), and ends.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn_with_token(self, token: &CancellationToken) -> ShardedHandle {
        let token = token.child_token();
        let span = tracing::info_span!(
            "sharded_election",
            prefix = %self.config.prefix,
            namespace = %self.member.namespace(),
            identity = %self.identity,
        );
        let tap = self
            .hub
            .tap(self.member.namespace(), &format!("{}-", self.config.prefix));
        let (plan_tx, plan_rx) =
            watch::channel(Arc::new(coordinator::Plan::empty(self.config.shards)));
        let (owned_tx, owned_rx) = watch::channel(OwnedShards::default());
        let owned_tx = Arc::new(owned_tx);
        let mut tasks = Vec::with_capacity(self.shards.len() + 1);
        let mut views = Vec::with_capacity(self.shards.len());
        for (shard, elector) in (0..).zip(self.shards) {
            let (worker, view) = worker::Worker::start(
                shard,
                Arc::clone(&self.identity),
                elector,
                plan_rx.clone(),
                Arc::clone(&owned_tx),
            );
            views.push(view);
            tasks.push(tokio::spawn(worker.run().instrument(span.clone())));
        }
        let coordinator = coordinator::Coordinator::new(
            &self.hub,
            &self.config,
            Arc::clone(&self.identity),
            self.member,
            tap,
            plan_tx,
            token.clone(),
        );
        let coordinator = tokio::spawn(coordinator.run().instrument(span));
        ShardedHandle {
            identity: self.identity,
            shards: self.config.shards,
            views,
            owned: owned_rx,
            plan: plan_rx,
            coordinator,
            workers: tasks,
            leave_on_drop: token.drop_guard(),
        }
    }
}

#[cfg(test)]
mod tests;
