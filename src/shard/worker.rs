//! One task per shard: it keeps the shard's elector campaigning exactly
//! while the shard is assigned to this replica, and hands the shard to
//! its new owner when the assignment moves it away.
//!
//! The elector itself decides everything that matters for safety
//! (conditional writes, the renew deadline, the drain before a release);
//! the worker only switches and asks.

use std::sync::Arc;

use tokio::sync::watch;

use super::coordinator::Plan;
use super::handle::OwnedShards;
use crate::elector::{ElectorHandle, ElectorView, LeaderElector, Successor};

pub(crate) struct Worker {
    shard: u32,
    me: Arc<str>,
    elector: ElectorHandle,
    campaign: watch::Sender<bool>,
    plan: watch::Receiver<Arc<Plan>>,
}

/// What to do with a shard this replica leads but is not assigned.
#[derive(Debug, PartialEq, Eq)]
enum Move {
    /// Keep it: it is ours, or nobody else could take it.
    Stay,
    /// Hand it to this member.
    To(String),
    /// Release it to whoever comes (this replica leaves, and no member is
    /// left to name).
    Release,
}

/// Where `shard` should go, by `plan`, seen from `me`.
fn destination(plan: &Plan, shard: u32, me: &str) -> Move {
    if !plan.serving {
        // Replicas of another count serve: they take it once it is free.
        return Move::Release;
    }
    match plan.assignment.owner(shard) {
        Some(owner) if owner == me && !plan.leaving => Move::Stay,
        Some(owner) if owner != me => Move::To(owner.to_owned()),
        _ if plan.leaving => Move::Release,
        _ => Move::Stay,
    }
}

impl Worker {
    /// Spawns `elector`, switched off, and forwards its terms into `owned`.
    pub(crate) fn start(
        shard: u32,
        me: Arc<str>,
        elector: LeaderElector,
        plan: watch::Receiver<Arc<Plan>>,
        owned: Arc<watch::Sender<OwnedShards>>,
    ) -> (Self, ElectorView) {
        let (campaign, switch) = watch::channel(false);
        let elector = elector.campaign_while(switch).spawn();
        let view = elector.view();
        tokio::spawn(forward_terms(shard, view.clone(), owned));
        let worker = Self {
            shard,
            me,
            elector,
            campaign,
            plan,
        };
        (worker, view)
    }

    pub(crate) async fn run(mut self) {
        let mut state = self.elector.subscribe();
        loop {
            let plan = Arc::clone(&self.plan.borrow_and_update());
            let assigned = plan.serving
                && !plan.leaving
                && plan.assignment.owner(self.shard) == Some(&*self.me);
            self.campaign.send_if_modified(|on| {
                let changed = *on != assigned;
                *on = assigned;
                changed
            });
            if self.elector.is_leader() {
                self.move_away(&plan).await;
            }
            if plan.leaving && !self.elector.is_leader() {
                break;
            }
            tokio::select! {
                changed = self.plan.changed() => {
                    if changed.is_err() && !plan.leaving {
                        // The coordinator ended without a leaving plan
                        // (it panicked): the elector's shutdown releases.
                        break;
                    }
                }
                changed = state.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        if let Err(error) = self.elector.shutdown().await {
            let error = &error as &dyn std::error::Error;
            tracing::warn!(
                error,
                shard = self.shard,
                "shutting the shard's elector down failed"
            );
        }
    }

    /// Hands the shard over if `plan` moves it away from this replica.
    async fn move_away(&self, plan: &Plan) {
        let to = match destination(plan, self.shard, &self.me) {
            Move::Stay => return,
            Move::To(owner) => Successor::Named(owner),
            Move::Release => Successor::Any,
        };
        if let Successor::Named(owner) = &to {
            tracing::info!(
                shard = self.shard,
                to = %owner,
                "the shard moves: handing it over to {owner}"
            );
        } else {
            tracing::info!(
                shard = self.shard,
                "the shard moves: releasing it for the next owner"
            );
        }
        if let Err(error) = self.elector.hand_over(to).await {
            let error = &error as &dyn std::error::Error;
            tracing::warn!(
                error,
                shard = self.shard,
                "handing the shard over failed; its Lease expires on its own"
            );
        }
    }
}

/// Mirrors the terms of `shard`'s elector into the set of owned shards,
/// until the elector ends.
async fn forward_terms(shard: u32, view: ElectorView, owned: Arc<watch::Sender<OwnedShards>>) {
    let mut state = view.subscribe();
    loop {
        let term = state.borrow_and_update().term.clone();
        owned.send_if_modified(|shards| shards.set(shard, term));
        if state.changed().await.is_err() {
            owned.send_if_modified(|shards| shards.set(shard, None));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::Assignment;

    fn plan(members: &[&str], leaving: bool) -> Plan {
        Plan {
            assignment: Assignment::compute(1, members),
            leaving,
            serving: true,
            blocked: None,
        }
    }

    #[test]
    fn a_shard_goes_to_its_owner_and_stays_when_no_owner_could_take_it() {
        assert_eq!(destination(&plan(&["me"], false), 0, "me"), Move::Stay);
        assert_eq!(
            destination(&plan(&["other"], false), 0, "me"),
            Move::To("other".into())
        );
        // Nobody is a member in this replica's view (its own member Lease
        // lapsed): keep renewing what it leads rather than drop it.
        assert_eq!(destination(&plan(&[], false), 0, "me"), Move::Stay);
        // Leaving, with nobody left to name.
        assert_eq!(destination(&plan(&[], true), 0, "me"), Move::Release);
        // Replicas of another count serve: let go of it.
        let other_count = Plan {
            serving: false,
            ..plan(&["me"], false)
        };
        assert_eq!(destination(&other_count, 0, "me"), Move::Release);
    }
}
