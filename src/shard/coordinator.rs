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

use k8s_openapi::api::coordination::v1::Lease;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::assign::Assignment;
use super::config::ShardConfig;
use super::fleet::{Serving, ShardLeases};
use super::membership::MemberTable;
pub(crate) use super::plan::Plan;
use crate::api::LeaseApi;
use crate::elector::{ElectorHandle, LeaderElector};
use crate::hub::{LeaseHub, TapHandle, Tapped};
use crate::record;

/// What this replica concluded about the fleet at one instant.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    /// The members that get shards: of this replica's count, serving.
    members: Vec<String>,
    serving: bool,
    /// Why not serving, or what disagrees while serving (logged once).
    disagreement: Option<String>,
}

/// Twenty-one fields, in three groups a reader meets in this order: who
/// and what this replica is (identity, count, member elector, plan,
/// token), what it knows of the fleet (the member table, the shard Leases,
/// who serves, the last verdict logged and assignment computed), and how
/// far it trusts the tap that tells it (the watch's health, progress and
/// newest version, distrust, the poll and its list). Each group is read
/// and written by one phase of `follow`.
pub(crate) struct Coordinator {
    me: Arc<str>,
    shards: u32,
    table: MemberTable,
    /// The shard Leases of the prefix, of any count.
    leases: ShardLeases,
    /// Which members do not take their shards.
    serving: Serving,
    /// The last disagreement logged, so that each is logged once.
    logged: Option<String>,
    /// The last assignment computed.
    computed: Option<Assignment>,
    /// `<prefix>-member-`.
    member_prefix: String,
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
    /// When the tap last delivered a Lease of the prefix (or, before the
    /// first, when following began): a silent tap is distrusted as an
    /// elector distrusts a silent watch.
    progress: Instant,
    /// The newest `resourceVersion` the tap delivered: a list that finds a
    /// newer member Lease shows that the tap missed a change.
    tapped_version: Option<String>,
    /// Whether the tap is distrusted now, and whether a list found a
    /// change it missed (a warning, once until it delivers again).
    distrusted: bool,
    warned: bool,
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
            LeaseApi::every_lease(hub.client().clone(), member.namespace()).limited(hub.limit());
        Self {
            me,
            shards: config.shards,
            table: MemberTable::new(config.member_prefix()),
            leases: ShardLeases::new(format!("{}-", config.prefix)),
            serving: Serving::new(config.template.lease_duration),
            logged: None,
            computed: None,
            member_prefix: config.member_prefix(),
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
            let _ = self.publish(None, Instant::now());
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
        // Judged again only when something that may change the verdict
        // happened: most tapped events are renews of shard Leases.
        let mut dirty = true;
        let mut judge_again = None;
        loop {
            let now = Instant::now();
            if dirty {
                judge_again = self.publish(Some(member), now);
                dirty = false;
            }
            let trusted = self.tap_trusted(member, now);
            if !trusted && now >= self.poll_at {
                dirty |= self.poll().await;
                continue;
            }
            let wake = self.wake_at(member, trusted, now);
            let wake = judge_again.map_or(wake, |at: Instant| wake.min(at));
            tokio::select! {
                biased;
                () = self.token.cancelled() => return,
                tapped = self.tap.rx.recv() => {
                    dirty |= self.on_tapped(tapped);
                    while let Ok(more) = self.tap.rx.try_recv() {
                        dirty |= self.on_tapped(Some(more));
                    }
                }
                changed = joined.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    dirty = true;
                }
                () = sleep_until(wake) => dirty = true,
            }
        }
    }

    /// Follows without being a member yet, until `until`.
    async fn follow_until(&mut self, until: Instant) {
        loop {
            tokio::select! {
                biased;
                () = self.token.cancelled() => return,
                tapped = self.tap.rx.recv() => {
                    self.on_tapped(tapped);
                }
                () = sleep_until(until) => return,
            }
        }
    }

    // === The tap's health ===

    /// Whether a member Lease is held, so that the tap must deliver its
    /// renews (this replica's own, at least, while it is a member).
    fn held(&self, member: &ElectorHandle, now: Instant) -> bool {
        member.is_leader() || !self.table.live(now).is_empty()
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
    /// then every retry period; whether the list changed what is known. A
    /// tap that is up but silent is said once (at debug), and a warning
    /// when a list finds a change it missed.
    async fn poll(&mut self) -> bool {
        let silent = self.watching;
        if silent && !self.distrusted {
            tracing::debug!(
                "the namespace watch has delivered no member Lease for {:?} while one is held; listing them",
                record::watch_silence(self.retry_period)
            );
        }
        self.distrusted = true;
        let listed = self.list_members().await;
        self.poll_at = Instant::now() + self.retry_period;
        if silent && listed == Some(true) && !self.warned {
            self.warned = true;
            tracing::warn!(
                "the namespace watch missed a change of the member Leases; listing them every {:?} until it delivers again",
                self.retry_period
            );
        }
        listed.is_some()
    }

    /// When the members must be judged again without an event: the next
    /// expiry, the next poll while the tap is not trusted, or when a
    /// trusted tap's silence would end its trust.
    fn wake_at(&self, member: &ElectorHandle, trusted: bool, now: Instant) -> Instant {
        let never = record::after(now, Duration::from_secs(86_400));
        let expiry = self
            .table
            .next_expiry(now)
            .unwrap_or(never)
            .min(self.leases.next_expiry(now).unwrap_or(never))
            .min(self.serving.next_return().unwrap_or(never));
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

    /// Folds in what the tap heard; whether it may change the verdict (a
    /// shard Lease renewed by the same holder under the same count does
    /// not: its expiry is a timer of its own).
    fn on_tapped(&mut self, tapped: Option<Tapped>) -> bool {
        let now = Instant::now();
        match tapped {
            Some(Tapped::Lease(lease)) => {
                self.delivered(lease.metadata.resource_version.as_deref(), now);
                self.observe(*lease, now)
            }
            Some(Tapped::Deleted(name)) => {
                self.delivered(None, now);
                self.leases.deleted(&name);
                self.table.deleted(&name);
                true
            }
            Some(Tapped::Healthy(up)) => {
                if self.watching && !up {
                    // A failure is known at once: list at once.
                    self.poll_at = now;
                }
                self.watching = up;
                true
            }
            // The hub is gone; the token ends the task.
            None => {
                self.watching = false;
                true
            }
        }
    }

    /// Folds in `lease` (a member or a shard Lease), as [`on_tapped`](Self::on_tapped).
    fn observe(&mut self, lease: Lease, now: Instant) -> bool {
        if lease
            .metadata
            .name
            .as_deref()
            .is_some_and(|name| name.starts_with(&self.member_prefix))
        {
            self.table.observe(lease, now);
            true
        } else {
            self.leases.observe(lease, now)
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
                    .is_some_and(|name| name.starts_with(&self.member_prefix))
                    && version.is_some()
                    && record::is_newer(version, self.tapped_version.as_deref());
                self.observe(lease, now);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(next) => from = Some(next),
                None => return Some(newer),
            }
        }
    }

    // === Publishing ===

    /// The fleet at `now` as this replica sees it: the others by their
    /// member Leases as observed, and this replica while its member
    /// elector holds its Lease (by its own term, which ends before the
    /// others may judge it gone: a replica lets go of its shards first).
    ///
    /// Members that publish another shard count get no shards. Who serves
    /// in a disagreement: the count of the longest-standing live member
    /// (earliest member term); a member that publishes no count counts as
    /// this replica's count. And no replica serves while a live shard Lease
    /// of the prefix is held under another count.
    fn verdict(&mut self, member: Option<&ElectorHandle>, now: Instant) -> Verdict {
        let mine = self.shards;
        let mut live = self.table.live(now);
        let me_member = member.is_some_and(|m| m.is_leader());
        if !me_member {
            live.retain(|m| *m.identity != *self.me);
        } else if !live.iter().any(|m| *m.identity == *self.me) {
            // Not seen through the watch yet: the youngest member.
            live.push(super::membership::LiveMember {
                identity: self.me.to_string(),
                count: Some(mine),
                since: None,
            });
        }
        let count = |m: &super::membership::LiveMember| {
            if *m.identity == *self.me {
                mine
            } else {
                m.count.unwrap_or(mine)
            }
        };
        let senior = live
            .iter()
            .min_by(|a, b| a.standing().cmp(&b.standing()))
            .map_or(mine, count);
        let others: Vec<String> = live
            .iter()
            .filter(|m| count(m) != mine)
            .map(|m| format!("{} ({} shards)", m.identity, count(m)))
            .collect();
        let foreign = self.leases.foreign(mine, now);
        let suspects = self.serving.suspects(now);
        let members: Vec<String> = live
            .iter()
            .filter(|m| count(m) == mine && !suspects.contains(&m.identity))
            .map(|m| m.identity.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let serving = senior == mine && foreign.is_empty();
        let disagreement = if !foreign.is_empty() {
            Some(format!(
                "not owning shards: shard Leases of this prefix are held under another shard count (shard: count) {foreign:?}, this replica has {mine}"
            ))
        } else if senior != mine {
            Some(format!(
                "not owning shards: the longest-standing member shards by {senior}, this replica by {mine}; members of another count: {others:?}"
            ))
        } else if !others.is_empty() {
            Some(format!(
                "members of another shard count get no shards (this replica's count, {mine}, is the longest-standing member's): {others:?}"
            ))
        } else {
            None
        };
        Verdict {
            members,
            serving,
            disagreement,
        }
    }

    /// The assignment among `members`, computed once per set of members.
    fn assignment_of(&mut self, members: &[String]) -> Assignment {
        let same = self.computed.as_ref().is_some_and(|assignment| {
            assignment
                .members()
                .iter()
                .map(|m| &**m)
                .eq(members.iter().map(String::as_str))
        });
        if !same {
            self.computed = Some(Assignment::compute(self.shards, members));
        }
        self.computed
            .clone()
            .unwrap_or_else(|| Assignment::compute(self.shards, members))
    }

    /// Publishes the plan for the fleet at `now`, if it changed; returns
    /// when the members' serving must be judged again without an event.
    fn publish(&mut self, member: Option<&ElectorHandle>, now: Instant) -> Option<Instant> {
        let (verdict, judge_again) = loop {
            let verdict = self.verdict(member, now);
            let assignment = self.assignment_of(&verdict.members);
            let (found, next) = self.serving.judge(&assignment, &self.leases, &self.me, now);
            if found.is_empty() {
                break (verdict, next);
            }
            tracing::warn!(
                members = %found.join(", "),
                "members keep a shard assigned to them free for a lease duration: they get no shards for {} lease durations",
                super::fleet::COOL_DOWN_LEASES
            );
        };
        if verdict.disagreement != self.logged {
            if let Some(why) = &verdict.disagreement {
                tracing::warn!("{why}");
            } else if self.logged.is_some() {
                tracing::info!("every live member shards alike again");
            }
            self.logged.clone_from(&verdict.disagreement);
        }
        let assignment = self.assignment_of(&verdict.members);
        let members = verdict.members;
        let serving = verdict.serving;
        let blocked: Option<Arc<str>> = if serving {
            None
        } else {
            verdict.disagreement.as_deref().map(Arc::from)
        };
        let leaving = member.is_none();
        self.plan.send_if_modified(|plan| {
            let same = plan.leaving == leaving
                && plan.serving == serving
                && plan.blocked == blocked
                && plan
                    .assignment
                    .members()
                    .iter()
                    .map(|m| &**m)
                    .eq(members.iter().map(String::as_str));
            if !same {
                tracing::info!(
                    members = %members.join(", "),
                    leaving,
                    serving,
                    "members changed: reassigning the shards"
                );
                *plan = Arc::new(Plan {
                    assignment,
                    leaving,
                    serving,
                    blocked,
                });
            }
            !same
        });
        judge_again
    }

    // === Leaving ===

    /// Releases the member Lease, so that the others reassign this
    /// replica's shards and campaign for them, then tells the workers to
    /// hand each shard to its owner in the assignment without this replica.
    async fn leave(mut self, member: ElectorHandle) {
        if let Err(error) = member.shutdown().await {
            let error = &error as &dyn std::error::Error;
            tracing::warn!(
                error,
                "releasing the member Lease failed; it expires on its own"
            );
        }
        let _ = self.publish(None, Instant::now());
        // Dropping the sender ends the workers' waits for a new plan.
    }
}
