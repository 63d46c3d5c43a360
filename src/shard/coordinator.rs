//! The task that holds this replica's member Lease, follows every member
//! Lease through the hub's namespace watch, and publishes the assignment
//! the shard workers act on.
//!
//! Phases, in order: learn the members there are (one list), join (start
//! the member elector), follow (tap events, expiry timers), leave (release
//! the member Lease, then publish the last plan, without this replica).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::assign::Assignment;
use super::config::ShardConfig;
use super::membership::MemberTable;
use crate::api::LeaseApi;
use crate::elector::{ElectorHandle, LeaderElector};
use crate::hub::{LeaseHub, TapHandle, Tapped};
use crate::record;

/// What the workers act on: the assignment, and whether this replica is
/// leaving (then every shard goes to its next owner, and the workers end).
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) assignment: Assignment,
    pub(crate) leaving: bool,
}

impl Plan {
    pub(crate) fn empty(shards: u32) -> Self {
        Self {
            assignment: Assignment::compute::<&str>(shards, &[]),
            leaving: false,
        }
    }
}

pub(crate) struct Coordinator {
    me: Arc<str>,
    shards: u32,
    table: MemberTable,
    tap: TapHandle,
    /// Lists the namespace's Leases when the tap cannot be relied on.
    list: LeaseApi,
    request_timeout: Duration,
    retry_period: Duration,
    /// Not started until the members there are were listed.
    member: Option<LeaderElector>,
    plan: watch::Sender<Arc<Plan>>,
    token: CancellationToken,
    /// Whether the namespace watch (and so the tap) is up.
    watching: bool,
}

impl Coordinator {
    pub(crate) fn new(
        hub: &LeaseHub,
        config: &ShardConfig,
        me: Arc<str>,
        member: LeaderElector,
        tap: TapHandle,
        plan: watch::Sender<Arc<Plan>>,
        token: CancellationToken,
    ) -> Self {
        let list =
            LeaseApi::new(hub.client().clone(), member.namespace(), "*").limited(hub.limit());
        Self {
            me,
            shards: config.shards,
            table: MemberTable::new(config.member_prefix()),
            tap,
            list,
            request_timeout: config.template.renew_deadline,
            retry_period: config.template.retry_period,
            member: Some(member),
            plan,
            token,
            watching: false,
        }
    }

    pub(crate) async fn run(mut self) {
        // Join only once the members there are have been seen: a replica
        // that thought itself alone would campaign for every shard.
        if !self.list_members().await {
            tracing::warn!(
                "could not list the member Leases; joining after a retry period of watching instead"
            );
            self.follow_until(Instant::now() + self.retry_period).await;
        }
        let Some(member) = self.member.take().filter(|_| !self.token.is_cancelled()) else {
            self.publish(None, Instant::now());
            return;
        };
        let member = member.spawn();
        self.follow(&member).await;
        self.leave(member).await;
    }

    // === Following ===

    /// Follows the member Leases until the token is cancelled, publishing
    /// each change of the members.
    async fn follow(&mut self, member: &ElectorHandle) {
        let mut joined = member.subscribe();
        loop {
            let now = Instant::now();
            self.publish(Some(member), now);
            let wake = self.wake_at(now);
            tokio::select! {
                biased;
                () = self.token.cancelled() => return,
                tapped = self.tap.rx.recv() => self.on_tapped(tapped),
                changed = joined.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = sleep_until(wake) => {
                    if !self.watching {
                        self.list_members().await;
                    }
                }
            }
        }
    }

    /// Follows without being a member yet, until `until`.
    async fn follow_until(&mut self, until: Instant) {
        loop {
            tokio::select! {
                biased;
                () = self.token.cancelled() => return,
                tapped = self.tap.rx.recv() => self.on_tapped(tapped),
                () = sleep_until(until) => return,
            }
        }
    }

    /// When the members must be judged again without an event: the next
    /// expiry, or the next poll while the watch is down.
    fn wake_at(&self, now: Instant) -> Instant {
        let expiry = self
            .table
            .next_expiry(now)
            .unwrap_or_else(|| record::after(now, Duration::from_secs(86_400)));
        if self.watching {
            expiry
        } else {
            expiry.min(now + self.retry_period)
        }
    }

    fn on_tapped(&mut self, tapped: Option<Tapped>) {
        let now = Instant::now();
        match tapped {
            Some(Tapped::Lease(lease)) => self.table.observe(*lease, now),
            Some(Tapped::Deleted(name)) => self.table.deleted(&name),
            Some(Tapped::Healthy(up)) => self.watching = up,
            // The hub is gone; the token ends the task.
            None => self.watching = false,
        }
    }

    /// Lists the namespace's Leases into the table; `false` if that failed.
    async fn list_members(&mut self) -> bool {
        let mut from: Option<String> = None;
        loop {
            let page = tokio::select! {
                biased;
                () = self.token.cancelled() => return false,
                page = self.list.list_namespace(from.as_deref(), self.request_timeout) => page,
            };
            let page = match page {
                Ok(page) => page,
                Err(error) => {
                    let error = &error as &dyn std::error::Error;
                    tracing::debug!(error, "listing the member Leases failed");
                    return false;
                }
            };
            let now = Instant::now();
            for lease in page.items {
                self.table.observe(lease, now);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(next) => from = Some(next),
                None => return true,
            }
        }
    }

    // === Publishing ===

    /// The members at `now`: the others by their member Leases as
    /// observed, and this replica while its member elector holds its
    /// Lease (by its own term, which ends before the others may judge it
    /// gone: a replica lets go of its shards first).
    fn members(&self, member: Option<&ElectorHandle>, now: Instant) -> BTreeSet<String> {
        let mut members = self.table.members(now);
        members.remove(&*self.me);
        if member.is_some_and(ElectorHandle::is_leader) {
            members.insert(self.me.to_string());
        }
        members
    }

    /// Publishes the plan for the members at `now`, if they changed.
    fn publish(&self, member: Option<&ElectorHandle>, now: Instant) {
        let members: Vec<String> = self.members(member, now).into_iter().collect();
        let leaving = member.is_none();
        self.plan.send_if_modified(|plan| {
            let same = plan.leaving == leaving
                && plan
                    .assignment
                    .members()
                    .iter()
                    .map(|m| &**m)
                    .eq(members.iter().map(String::as_str));
            if !same {
                tracing::info!(?members, leaving, "members changed: reassigning the shards");
                *plan = Arc::new(Plan {
                    assignment: Assignment::compute(self.shards, &members),
                    leaving,
                });
            }
            !same
        });
    }

    // === Leaving ===

    /// Releases the member Lease, so that the others reassign this
    /// replica's shards and campaign for them, then tells the workers to
    /// hand each shard to its owner in the assignment without this replica.
    async fn leave(self, member: ElectorHandle) {
        if let Err(error) = member.shutdown().await {
            let error = &error as &dyn std::error::Error;
            tracing::warn!(
                error,
                "releasing the member Lease failed; it expires on its own"
            );
        }
        self.publish(None, Instant::now());
        // Dropping the sender ends the workers' waits for a new plan.
    }
}
