//! Faults aimed at one client or all, and counters of requests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::resource::Resource;
use crate::store::Snapshot;

/// Which clients a fault applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FaultTarget {
    /// Every client.
    All,
    /// The client with this identity (see [`LeaseApiServer::client_for`](crate::LeaseApiServer::client_for)).
    Client(String),
}

impl FaultTarget {
    fn matches(&self, client: &str) -> bool {
        match self {
            Self::All => true,
            Self::Client(id) => id == client,
        }
    }
}

/// A request verb, as kube-apiserver's RBAC names them (for Leases, and
/// for `LeaseCandidate`s alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Verb {
    /// Read one object.
    Get,
    /// List objects.
    List,
    /// Watch objects (`?watch=true`).
    Watch,
    /// Create an object (POST).
    Create,
    /// Replace an object (PUT).
    Update,
    /// Patch an object (merge, strategic merge, JSON patch, apply).
    Patch,
    /// Delete an object.
    Delete,
}

impl Verb {
    /// Every verb.
    pub const ALL: [Self; 7] = [
        Self::Get,
        Self::List,
        Self::Watch,
        Self::Create,
        Self::Update,
        Self::Patch,
        Self::Delete,
    ];

    /// The RBAC name: `get`, `list`, `watch`, ...
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Watch => "watch",
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether it changes the store (create, update, patch, delete).
    pub(crate) fn is_write(self) -> bool {
        matches!(
            self,
            Self::Create | Self::Update | Self::Patch | Self::Delete
        )
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of the requests for one resource that the server answered,
/// by client and verb: Leases from [`LeaseApiServer::requests`], any
/// resource from [`LeaseApiServer::requests_for`]. Discovery, Event and
/// admin requests are not counted.
///
/// [`LeaseApiServer::requests`]: crate::LeaseApiServer::requests
/// [`LeaseApiServer::requests_for`]: crate::LeaseApiServer::requests_for
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    counts: BTreeMap<(String, Verb), u64>,
}

impl RequestCounts {
    /// All requests.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Requests with `verb`, from any client.
    #[must_use]
    pub fn verb(&self, verb: Verb) -> u64 {
        self.counts
            .iter()
            .filter(|((_, v), _)| *v == verb)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests from `client`, any verb.
    #[must_use]
    pub fn client(&self, client: &str) -> u64 {
        self.counts
            .iter()
            .filter(|((c, _), _)| c == client)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests from `client` with `verb`.
    #[must_use]
    pub fn get(&self, client: &str, verb: Verb) -> u64 {
        self.counts
            .get(&(client.to_owned(), verb))
            .copied()
            .unwrap_or(0)
    }

    /// Every (client, verb, count).
    pub fn iter(&self) -> impl Iterator<Item = (&str, Verb, u64)> {
        self.counts.iter().map(|((c, v), n)| (c.as_str(), *v, *n))
    }
}

/// The faults in force. Cloned into a `watch` channel so that held requests
/// wake when a fault is lifted.
///
/// One field per kind of fault, flat on purpose: each is set and cleared
/// alone through the admin endpoint, and a request checks them in one
/// place; grouping them would only add a level to every lookup.
#[derive(Clone, Debug, Default)]
pub(crate) struct FaultState {
    latency: BTreeMap<FaultTarget, Duration>,
    error_rate: BTreeMap<FaultTarget, f64>,
    refused: BTreeSet<FaultTarget>,
    hung: BTreeSet<FaultTarget>,
    partitioned: BTreeSet<FaultTarget>,
    forbidden: BTreeSet<(FaultTarget, Resource, Verb)>,
    watch_delay: BTreeMap<FaultTarget, Duration>,
    watch_black_hole: BTreeSet<FaultTarget>,
    watch_error: BTreeSet<FaultTarget>,
    lose_write_answers: BTreeSet<FaultTarget>,
    names_only: BTreeSet<FaultTarget>,
    write_answer_delay: BTreeMap<FaultTarget, Duration>,
    /// The store as it was when `stale_reads` was set for the target.
    stale_reads: BTreeMap<FaultTarget, Arc<Snapshot>>,
    /// How many more requests of a verb are answered 500, by target.
    fail_next: BTreeMap<(FaultTarget, Verb), u32>,
    /// Raised on every heal, so that requests held by a partition know to fail.
    pub(crate) heals: u64,
    /// A graceful stop under way (`stop_gracefully`): nothing is served, and
    /// open watches stay open, silent, until this instant.
    pub(crate) stopping: Option<tokio::time::Instant>,
    /// Raised on every `restart`: a watch opened before it belonged to the
    /// process that stopped, and ends.
    pub(crate) restarts: u64,
}

impl FaultState {
    fn any(set: &BTreeSet<FaultTarget>, client: &str) -> bool {
        set.iter().any(|t| t.matches(client))
    }

    /// The longest delay aimed at `client`.
    fn longest(delays: &BTreeMap<FaultTarget, Duration>, client: &str) -> Duration {
        delays
            .iter()
            .filter(|(t, _)| t.matches(client))
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    pub(crate) fn latency(&self, client: &str) -> Duration {
        Self::longest(&self.latency, client)
    }

    pub(crate) fn watch_delay(&self, client: &str) -> Duration {
        Self::longest(&self.watch_delay, client)
    }

    pub(crate) fn write_answer_delay(&self, client: &str) -> Duration {
        Self::longest(&self.write_answer_delay, client)
    }

    /// The oldest snapshot aimed at `client`, if its reads are stale.
    pub(crate) fn stale_reads(&self, client: &str) -> Option<Arc<Snapshot>> {
        self.stale_reads
            .iter()
            .filter(|(t, _)| t.matches(client))
            .map(|(_, s)| s)
            .min_by_key(|s| s.version())
            .cloned()
    }

    pub(crate) fn error_rate(&self, client: &str) -> f64 {
        self.error_rate
            .iter()
            .filter(|(t, _)| t.matches(client))
            .map(|(_, r)| *r)
            .fold(0.0, f64::max)
    }

    pub(crate) fn refused(&self, client: &str) -> bool {
        Self::any(&self.refused, client)
    }

    pub(crate) fn hung(&self, client: &str) -> bool {
        Self::any(&self.hung, client)
    }

    pub(crate) fn partitioned(&self, client: &str) -> bool {
        Self::any(&self.partitioned, client)
    }

    /// Whether `flag` applies to `client`.
    pub(crate) fn flagged(&self, flag: Flag, client: &str) -> bool {
        Self::any(self.flag_set(flag), client)
    }

    fn flag_set(&self, flag: Flag) -> &BTreeSet<FaultTarget> {
        match flag {
            Flag::Refused => &self.refused,
            Flag::Hung => &self.hung,
            Flag::Partitioned => &self.partitioned,
            Flag::WatchBlackHole => &self.watch_black_hole,
            Flag::WatchError => &self.watch_error,
            Flag::LoseWriteAnswers => &self.lose_write_answers,
            Flag::NamesOnly => &self.names_only,
        }
    }

    fn flag_set_mut(&mut self, flag: Flag) -> &mut BTreeSet<FaultTarget> {
        match flag {
            Flag::Refused => &mut self.refused,
            Flag::Hung => &mut self.hung,
            Flag::Partitioned => &mut self.partitioned,
            Flag::WatchBlackHole => &mut self.watch_black_hole,
            Flag::WatchError => &mut self.watch_error,
            Flag::LoseWriteAnswers => &mut self.lose_write_answers,
            Flag::NamesOnly => &mut self.names_only,
        }
    }

    pub(crate) fn forbidden(&self, client: &str, resource: Resource, verb: Verb) -> bool {
        self.forbidden
            .iter()
            .any(|(t, r, v)| *v == verb && *r == resource && t.matches(client))
    }
}

/// Faults and counters of one server.
#[derive(Debug)]
pub(crate) struct Faults {
    state: watch::Sender<FaultState>,
    counts: Mutex<BTreeMap<Resource, RequestCounts>>,
    rng: Mutex<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(FaultState::default()),
            counts: Mutex::default(),
            rng: Mutex::new(0x9E37_79B9_7F4A_7C15),
        }
    }
}

impl Faults {
    pub(crate) fn snapshot(&self) -> FaultState {
        self.state.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<FaultState> {
        self.state.subscribe()
    }

    pub(crate) fn modify(&self, f: impl FnOnce(&mut FaultState)) {
        self.state.send_modify(f);
    }

    /// Sets a delay of `kind` for `target` (zero clears it).
    pub(crate) fn set_delay(&self, kind: Delay, target: FaultTarget, delay: Duration) {
        self.modify(|s| {
            let delays = match kind {
                Delay::Request => &mut s.latency,
                Delay::Watch => &mut s.watch_delay,
                Delay::WriteAnswer => &mut s.write_answer_delay,
            };
            if delay.is_zero() {
                delays.remove(&target);
            } else {
                delays.insert(target, delay);
            }
        });
    }

    /// Answers the reads of `target` from `snapshot`, or (with `None`) from
    /// the store again.
    pub(crate) fn set_stale_reads(&self, target: FaultTarget, snapshot: Option<Snapshot>) {
        self.modify(|s| match snapshot {
            Some(snapshot) => {
                s.stale_reads.insert(target, Arc::new(snapshot));
            }
            None if target == FaultTarget::All => s.stale_reads.clear(),
            None => {
                s.stale_reads.remove(&target);
            }
        });
    }

    /// Answers the next `n` requests of `verb` from `target` with 500.
    pub(crate) fn set_fail_next(&self, target: FaultTarget, verb: Verb, n: u32) {
        self.modify(|s| {
            if n == 0 {
                s.fail_next.remove(&(target, verb));
            } else {
                s.fail_next.insert((target, verb), n);
            }
        });
    }

    /// Whether this request of `verb` from `client` is one of those that
    /// `set_fail_next` asked to fail (and counts it).
    pub(crate) fn take_failure(&self, client: &str, verb: Verb) -> bool {
        self.state.send_if_modified(|s| {
            let Some(left) = s
                .fail_next
                .iter_mut()
                .find(|((t, v), _)| *v == verb && t.matches(client))
                .map(|(_, left)| left)
            else {
                return false;
            };
            *left -= 1;
            s.fail_next.retain(|_, left| *left > 0);
            true
        })
    }

    pub(crate) fn set_error_rate(&self, target: FaultTarget, rate: f64) {
        self.modify(|s| {
            if rate > 0.0 {
                s.error_rate.insert(target, rate.min(1.0));
            } else {
                s.error_rate.remove(&target);
            }
        });
    }

    pub(crate) fn set_flag(&self, kind: Flag, target: FaultTarget, on: bool) {
        self.modify(|s| {
            let set = s.flag_set_mut(kind);
            if on {
                set.insert(target);
            } else {
                // Lifting a fault for `All` lifts it for every client.
                if target == FaultTarget::All {
                    set.clear();
                } else {
                    set.remove(&target);
                }
                if kind == Flag::Partitioned {
                    s.heals += 1;
                }
            }
        });
    }

    pub(crate) fn set_forbidden(
        &self,
        target: FaultTarget,
        resource: Resource,
        verb: Verb,
        on: bool,
    ) {
        self.modify(|s| {
            if on {
                s.forbidden.insert((target, resource, verb));
            } else if target == FaultTarget::All {
                s.forbidden.retain(|(_, r, v)| (*r, *v) != (resource, verb));
            } else {
                s.forbidden.remove(&(target, resource, verb));
            }
        });
    }

    /// Lifts every fault; a graceful stop is not a fault of a client, and
    /// only a restart ends it.
    pub(crate) fn clear(&self) {
        self.modify(|s| {
            *s = FaultState {
                heals: s.heals + 1,
                stopping: s.stopping,
                restarts: s.restarts,
                ..FaultState::default()
            };
        });
    }

    /// Whether this request draws an injected error, at `rate`.
    pub(crate) fn draw_error(&self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let mut x = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        // xorshift64: deterministic for a given sequence of requests.
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        #[allow(clippy::cast_precision_loss)] // a probability needs no more than 53 bits
        let sample = (*x >> 11) as f64 / (1u64 << 53) as f64;
        sample < rate
    }

    pub(crate) fn count(&self, client: &str, resource: Resource, verb: Verb) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let counts = counts.entry(resource).or_default();
        *counts.counts.entry((client.to_owned(), verb)).or_insert(0) += 1;
    }

    /// The requests for `resource` so far.
    pub(crate) fn counts(&self, resource: Resource) -> RequestCounts {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&resource)
            .cloned()
            .unwrap_or_default()
    }

    /// Sets the counters of every resource to zero.
    pub(crate) fn reset_counts(&self) {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Faults that are on or off for a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flag {
    Refused,
    Hung,
    Partitioned,
    WatchBlackHole,
    WatchError,
    LoseWriteAnswers,
    NamesOnly,
}

/// Faults that delay something by a duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delay {
    /// Every request, before it is handled.
    Request,
    /// Every watch event and bookmark.
    Watch,
    /// The answer to a write, after it was applied.
    WriteAnswer,
}

/// The target a name of the admin endpoint stands for: every client for
/// `all`, `*` or nothing, else the client of that name.
pub(crate) fn target_of(name: &str) -> FaultTarget {
    if name.is_empty() || name == "all" || name == "*" {
        FaultTarget::All
    } else {
        FaultTarget::Client(name.to_owned())
    }
}
