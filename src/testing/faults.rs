//! Faults aimed at one client or all, and counters of requests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

/// Which clients a fault applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FaultTarget {
    /// Every client.
    All,
    /// The client with this identity (see [`LeaseApiServer::client_for`](super::LeaseApiServer::client_for)).
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

/// A request verb, as kube-apiserver's RBAC names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Verb {
    /// Read one Lease.
    Get,
    /// List Leases.
    List,
    /// Watch Leases (`?watch=true`).
    Watch,
    /// Create a Lease (POST).
    Create,
    /// Replace a Lease (PUT).
    Update,
    /// Patch a Lease (merge, strategic merge, JSON patch, apply).
    Patch,
    /// Delete a Lease.
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
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of the requests the server answered, by client and verb.
/// Discovery and admin requests are not counted.
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
#[derive(Clone, Debug, Default)]
pub(crate) struct FaultState {
    latency: BTreeMap<FaultTarget, Duration>,
    error_rate: BTreeMap<FaultTarget, f64>,
    refused: BTreeSet<FaultTarget>,
    hung: BTreeSet<FaultTarget>,
    partitioned: BTreeSet<FaultTarget>,
    forbidden: BTreeSet<(FaultTarget, Verb)>,
    /// Raised on every heal, so that requests held by a partition know to fail.
    pub(crate) heals: u64,
}

impl FaultState {
    fn any(set: &BTreeSet<FaultTarget>, client: &str) -> bool {
        set.iter().any(|t| t.matches(client))
    }

    pub(crate) fn latency(&self, client: &str) -> Duration {
        self.latency
            .iter()
            .filter(|(t, _)| t.matches(client))
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(Duration::ZERO)
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

    pub(crate) fn forbidden(&self, client: &str, verb: Verb) -> bool {
        self.forbidden
            .iter()
            .any(|(t, v)| *v == verb && t.matches(client))
    }
}

/// Faults and counters of one server.
#[derive(Debug)]
pub(crate) struct Faults {
    state: watch::Sender<FaultState>,
    counts: Mutex<RequestCounts>,
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

    pub(crate) fn set_latency(&self, target: FaultTarget, latency: Duration) {
        self.modify(|s| {
            if latency.is_zero() {
                s.latency.remove(&target);
            } else {
                s.latency.insert(target, latency);
            }
        });
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
            let set = match kind {
                Flag::Refused => &mut s.refused,
                Flag::Hung => &mut s.hung,
                Flag::Partitioned => &mut s.partitioned,
            };
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

    pub(crate) fn set_forbidden(&self, target: FaultTarget, verb: Verb, on: bool) {
        self.modify(|s| {
            if on {
                s.forbidden.insert((target, verb));
            } else if target == FaultTarget::All {
                s.forbidden.retain(|(_, v)| *v != verb);
            } else {
                s.forbidden.remove(&(target, verb));
            }
        });
    }

    pub(crate) fn clear(&self) {
        self.modify(|s| {
            let heals = s.heals + 1;
            *s = FaultState {
                heals,
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

    pub(crate) fn count(&self, client: &str, verb: Verb) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.counts.entry((client.to_owned(), verb)).or_insert(0) += 1;
    }

    pub(crate) fn counts(&self) -> RequestCounts {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn reset_counts(&self) {
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner) = RequestCounts::default();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flag {
    Refused,
    Hung,
    Partitioned,
}
