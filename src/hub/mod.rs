//! One watch per namespace, shared by every elector and observer made
//! through a [`LeaseHub`], and the line of candidates that keeps a release
//! from turning into a herd of writes.

mod namespace;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use kube::Client;
use tokio::sync::Semaphore;

use crate::config::{ElectorConfig, ObserverConfig};
use crate::elector::{LeaderElector, LeaderObserver};
use crate::error::ConfigError;
use crate::watch::{Line, Mailbox, Member, Membership, SharedWatch};
#[cfg(test)]
use namespace::Mode;
pub(crate) use namespace::Tapped;
use namespace::{Namespace, Tap};

/// Electors and observers that share one `kube::Client`: one watch per
/// namespace serves them all, and candidates for the same Lease stand in
/// one line.
///
/// Without a hub every elector watches its own Lease (one connection each).
/// Through a hub, a process that leads 10,000 Leases in a namespace holds
/// one watch of that namespace, demultiplexed to each elector by name; and
/// the candidates it runs for one Lease do not all write when that Lease is
/// released or expires: a releasing leader names the next in line as its
/// successor (see [`SUCCESSOR_ANNOTATION`](crate::handover::SUCCESSOR_ANNOTATION)),
/// and only the first in line writes at once.
///
/// The watch covers every Lease of the namespace (a field selector cannot
/// select a set of names, and a label would miss Leases created by others).
/// Where that is forbidden (a Role that grants `list` and `watch` only with
/// `resourceNames`), each elector falls back to watching its own Lease,
/// and, where that is forbidden too, to polling; the namespace watch is
/// tried again with backoff and taken back when it works.
///
/// ```no_run
/// use kube_elector::{ElectorConfig, hub::LeaseHub};
///
/// # async fn run() -> anyhow::Result<()> {
/// let hub = LeaseHub::new(kube::Client::try_default().await?);
/// let handles: Vec<_> = (0..100)
///     .map(|i| hub.elector(ElectorConfig::new(format!("tenant-{i}"))).map(|e| e.spawn()))
///     .collect::<Result<_, _>>()?;
/// # drop(handles);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LeaseHub {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    namespaces: Mutex<HashMap<String, Arc<Namespace>>>,
    /// How many requests the hub's electors may have in flight at once.
    limit: Arc<Semaphore>,
}

/// How many requests a hub's electors send at once by default: enough for
/// thousands of renews a second at loopback round trips, few enough that a
/// burst (10,000 electors starting together) does not open thousands of
/// HTTP/1 connections, which the client's pool then keeps.
const MAX_IN_FLIGHT: usize = 32;

impl std::fmt::Debug for LeaseHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let namespaces = self
            .inner
            .namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("LeaseHub")
            .field("namespaces", &namespaces)
            .finish_non_exhaustive()
    }
}

impl LeaseHub {
    /// A hub whose electors and observers send their requests through
    /// `client`, at most 32 at once.
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self::with_max_requests_in_flight(
            client,
            NonZeroUsize::new(MAX_IN_FLIGHT).unwrap_or(NonZeroUsize::MIN),
        )
    }

    /// A hub whose electors send at most `max` requests at once (a request
    /// waiting for its turn counts within its timeout, and a leader counts
    /// its term from before the wait).
    #[must_use]
    pub fn with_max_requests_in_flight(client: Client, max: NonZeroUsize) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                namespaces: Mutex::new(HashMap::new()),
                limit: Arc::new(Semaphore::new(max.get())),
            }),
        }
    }

    /// The shared limit on requests in flight.
    pub(crate) fn limit(&self) -> Arc<Semaphore> {
        Arc::clone(&self.inner.limit)
    }

    /// The client the hub's electors use.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// An elector that watches through this hub. Validates `config` as
    /// [`LeaderElector::new`] does.
    ///
    /// # Errors
    /// A [`ConfigError`] listing every invalid value.
    pub fn elector(&self, config: ElectorConfig) -> Result<LeaderElector, ConfigError> {
        LeaderElector::new(self.inner.client.clone(), config)
            .map(|e| e.in_hub(Arc::new(self.clone())))
    }

    /// An observer that watches through this hub. Validates `config` as
    /// [`LeaderObserver::new`] does.
    ///
    /// # Errors
    /// A [`ConfigError`] listing every invalid value.
    pub fn observer(&self, config: ObserverConfig) -> Result<LeaderObserver, ConfigError> {
        LeaderObserver::new(self.inner.client.clone(), config)
            .map(|o| o.in_hub(Arc::new(self.clone())))
    }

    /// Joins the watch of `namespace` for the Lease `name`: updates go to
    /// `mailbox` until the returned membership is dropped.
    pub(crate) fn join(
        &self,
        namespace: &str,
        name: &str,
        identity: &str,
        campaigns: bool,
        mailbox: Arc<Mailbox>,
    ) -> Membership {
        let member = Arc::new(Member::new(name, identity, campaigns, mailbox));
        self.with_namespace(namespace, |ns| {
            ns.admit(&member);
            let seat = Seat {
                hub: Arc::clone(&self.inner),
                namespace: Arc::clone(ns),
            };
            Membership::new(member, Box::new(seat))
        })
    }

    /// Runs `f` on the namespace's watch (started if it is not running),
    /// under the lock that keeps the last member's leaving from racing it.
    fn with_namespace<T>(&self, namespace: &str, f: impl FnOnce(&Arc<Namespace>) -> T) -> T {
        let mut namespaces = self
            .inner
            .namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ns = namespaces.entry(namespace.to_owned()).or_insert_with(|| {
            Namespace::start(self.inner.client.clone(), namespace, self.limit())
        });
        f(ns)
    }
}

// === Taps ===

impl LeaseHub {
    /// Follows every Lease of `namespace` whose name starts with `prefix`
    /// through the namespace watch, until the returned tap is dropped: a
    /// sharded elector learns of members it cannot name in advance.
    pub(crate) fn tap(&self, namespace: &str, prefix: &str) -> TapHandle {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let tap = Arc::new(Tap {
            prefix: prefix.to_owned(),
            tx,
        });
        self.with_namespace(namespace, |ns| {
            ns.admit_tap(&tap);
            TapHandle {
                hub: Arc::clone(&self.inner),
                namespace: Arc::clone(ns),
                tap,
                rx,
            }
        })
    }
}

/// A tap's place in a namespace's watch, and what it hears; leaves the
/// watch when dropped.
pub(crate) struct TapHandle {
    hub: Arc<Inner>,
    namespace: Arc<Namespace>,
    tap: Arc<Tap>,
    pub(crate) rx: tokio::sync::mpsc::UnboundedReceiver<Tapped>,
}

impl std::fmt::Debug for TapHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapHandle")
            .field("prefix", &self.tap.prefix)
            .finish_non_exhaustive()
    }
}

impl Drop for TapHandle {
    fn drop(&mut self) {
        let mut namespaces = self
            .hub
            .namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.namespace.leave_tap(&self.tap) {
            namespaces.remove(self.namespace.name());
        }
    }
}

// === What an elector takes from a hub ===

impl SharedWatch for LeaseHub {
    fn limit(&self) -> Arc<Semaphore> {
        LeaseHub::limit(self)
    }

    fn join(
        &self,
        namespace: &str,
        name: &str,
        identity: &str,
        campaigns: bool,
        mailbox: Arc<Mailbox>,
    ) -> Membership {
        LeaseHub::join(self, namespace, name, identity, campaigns, mailbox)
    }
}

impl crate::successor::InLine for Arc<Member> {
    fn identity(&self) -> &str {
        &self.identity
    }

    fn in_line(&self) -> bool {
        self.campaigns && !self.leading.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// A member's namespace watch and line, as its membership reaches them.
struct Seat {
    hub: Arc<Inner>,
    namespace: Arc<Namespace>,
}

impl Line for Seat {
    fn first_in_line(&self, name: &str, except: Option<&str>) -> Option<Arc<Member>> {
        self.namespace.first_in_line(name, except)
    }

    fn leave(&self, member: &Arc<Member>) {
        let mut namespaces = self
            .hub
            .namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.namespace.leave(member) {
            namespaces.remove(self.namespace.name());
        }
    }
}

#[cfg(test)]
mod tests;
