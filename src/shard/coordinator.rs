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
    /// When the tap last delivered a member Lease (or, before the first,
    /// when following began): a silent tap is distrusted as an elector
    /// distrusts a silent watch.
    progress: Instant,
    /// The newest `resourceVersion` the tap delivered: a list that finds a
    /// newer one shows that the tap missed a change.
    tapped_version: Option<String>,
    /// Whether the tap is distrusted now, and whether a list found a
    /// change it missed (a warning, once until it delivers again).
    distrusted: bool,
    warned: bool,
    /// The names of the member Leases start with this.
    prefix: String,
    /// When to list the member Leases next while the tap is distrusted.
    poll_at: Instant,
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
            progress: Instant::now(),
            tapped_version: None,
            distrusted: false,
            warned: false,
            prefix: config.member_prefix(),
            poll_at: Instant::now(),
        }
    }

    pub(crate) async fn run(mut self) {
        // Join only once the members there are have been seen: a replica
        // that thought itself alone would campaign for every shard.
        if self.list_members().await.is_none() {
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
    /// each change of the members; lists them every retry period while
    /// the tap is not trusted.
    async fn follow(&mut self, member: &ElectorHandle) {
        let mut joined = member.subscribe();
        loop {
            let now = Instant::now();
            self.publish(Some(member), now);
            let trusted = self.tap_trusted(member, now);
            if !trusted && now >= self.poll_at {
                self.poll().await;
                continue;
            }
            let wake = self.wake_at(member, trusted, now);
            tokio::select! {
                biased;
                () = self.token.cancelled() => return,
                tapped = self.tap.rx.recv() => self.on_tapped(tapped),
                changed = joined.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = sleep_until(wake) => {}
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

    // === The tap's health ===

    /// Whether a member Lease is held, so that the tap must deliver its
    /// renews (this replica's own, at least, while it is a member).
    fn held(&self, member: &ElectorHandle, now: Instant) -> bool {
        member.is_leader() || !self.table.members(now).is_empty()
    }

    /// Whether the tap can be trusted to report changes of the member
    /// Leases: by the elector's rule, while it is up and, while a member
    /// Lease is held, has delivered within one renew interval and its
    /// margin (`record::watch_silence`).
    fn tap_trusted(&self, member: &ElectorHandle, now: Instant) -> bool {
        record::watch_trusted(
            self.watching,
            self.progress,
            self.held(member, now),
            record::watch_silence(self.retry_period),
            now,
        )
    }

    /// Lists the member Leases while the tap is not trusted, at once and
    /// then every retry period. A tap that is up but silent is said once
    /// (at debug), and a warning when a list finds a change it missed.
    async fn poll(&mut self) {
        let silent = self.watching;
        if silent && !self.distrusted {
            tracing::debug!(
                "the namespace watch has delivered no member Lease for {:?} while one is held; listing them",
                record::watch_silence(self.retry_period)
            );
        }
        self.distrusted = true;
        let missed = self.list_members().await == Some(true);
        self.poll_at = Instant::now() + self.retry_period;
        if silent && missed && !self.warned {
            self.warned = true;
            tracing::warn!(
                "the namespace watch missed a change of the member Leases; listing them every {:?} until it delivers again",
                self.retry_period
            );
        }
    }

    /// When the members must be judged again without an event: the next
    /// expiry, the next poll while the tap is not trusted, or when a
    /// trusted tap's silence would end its trust.
    fn wake_at(&self, member: &ElectorHandle, trusted: bool, now: Instant) -> Instant {
        let expiry = self
            .table
            .next_expiry(now)
            .unwrap_or_else(|| record::after(now, Duration::from_secs(86_400)));
        if !trusted {
            expiry.min(self.poll_at)
        } else if self.held(member, now) {
            expiry.min(record::after(
                self.progress,
                record::watch_silence(self.retry_period),
            ))
        } else {
            expiry
        }
    }

    fn on_tapped(&mut self, tapped: Option<Tapped>) {
        let now = Instant::now();
        match tapped {
            Some(Tapped::Lease(lease)) => {
                self.delivered(lease.metadata.resource_version.as_deref(), now);
                self.table.observe(*lease, now);
            }
            Some(Tapped::Deleted(name)) => {
                self.delivered(None, now);
                self.table.deleted(&name);
            }
            Some(Tapped::Healthy(up)) => {
                if self.watching && !up {
                    // A failure is known at once: list at once.
                    self.poll_at = now;
                }
                self.watching = up;
            }
            // The hub is gone; the token ends the task.
            None => self.watching = false,
        }
    }

    /// The tap delivered something (of `version`, if known): it is trusted
    /// again.
    fn delivered(&mut self, version: Option<&str>, now: Instant) {
        self.progress = now;
        if self.distrusted && self.watching {
            tracing::debug!("the namespace watch delivers member Leases again");
            self.distrusted = false;
            self.warned = false;
        }
        if version.is_some() && record::is_newer(version, self.tapped_version.as_deref()) {
            self.tapped_version = version.map(str::to_owned);
        }
    }

    /// Lists the namespace's Leases into the table; whether it found a
    /// member Lease newer than the tap delivered, `None` if that failed.
    async fn list_members(&mut self) -> Option<bool> {
        let mut newer = false;
        let mut from: Option<String> = None;
        loop {
            let page = tokio::select! {
                biased;
                () = self.token.cancelled() => return None,
                page = self.list.list_namespace(from.as_deref(), self.request_timeout) => page,
            };
            let page = match page {
                Ok(page) => page,
                Err(error) => {
                    let error = &error as &dyn std::error::Error;
                    tracing::debug!(error, "listing the member Leases failed");
                    return None;
                }
            };
            let now = Instant::now();
            for lease in page.items {
                let version = lease.metadata.resource_version.as_deref();
                newer |= lease
                    .metadata
                    .name
                    .as_deref()
                    .is_some_and(|name| name.starts_with(&self.prefix))
                    && version.is_some()
                    && record::is_newer(version, self.tapped_version.as_deref());
                self.table.observe(lease, now);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(next) => from = Some(next),
                None => return Some(newer),
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
