//! The watch of one namespace's Leases, and the members it serves.
//!
//! The task runs the crate's one watch loop ([`Watch`] in the namespace
//! [`Scope`]: lists a page at a time, watches from the list's
//! `resourceVersion`, resumes, lists again after 410 Gone, backs off);
//! here is what it does with what it sees. Each event goes to the
//! members watching that Lease's name, in order; bookmarks and health go
//! to every member. Where listing or watching the namespace is forbidden,
//! every member gets a watch of its own Lease instead, until the namespace
//! watch works again.
//!
//! The watch-trust rules are the elector's: a failure (a request, or an
//! `ERROR` event other than 410 Gone) is told to every member and tap at
//! once, so that they read, and the next watch waits for the backoff. A
//! watch that stays connected but silent is noticed by whom it serves, as
//! they know whether their Leases are held and so whether events are due:
//! each member's schedule, and a tap's coordinator.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::api::is_forbidden;
use crate::error::Error;
use crate::watch::{Event, Member, Scope, Sink, Timing, ToMailbox, Update, Watch};

/// The shortest pause between two watches, and the first backoff.
const RETRY: Duration = Duration::from_secs(1);
/// How long a list page or the start of a watch may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Cadence and timeout of the per-Lease watches that stand in while the
/// namespace watch is forbidden.
const OWN_WATCH_RETRY: Duration = Duration::from_secs(2);

/// How the members learn of changes now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// The namespace watch is being established (members poll).
    Connecting,
    /// The namespace watch is up.
    Watching,
    /// The namespace watch is forbidden: each member watches its own Lease.
    PerLease,
}

#[derive(Debug)]
pub(super) struct Members {
    by_name: HashMap<String, Vec<Arc<Member>>>,
    /// Who follows every Lease whose name has a prefix (a sharded
    /// elector's membership), not one name.
    taps: Vec<Arc<Tap>>,
    pub(super) mode: Mode,
}

/// What a tap hears: a Lease of its prefix as it is now, or deleted, and
/// whether the namespace watch is up (while it is not, nothing reaches it).
#[derive(Debug)]
pub(crate) enum Tapped {
    Lease(Box<Lease>),
    Deleted(String),
    Healthy(bool),
}

/// A follower of every Lease whose name starts with `prefix`.
#[derive(Debug)]
pub(crate) struct Tap {
    pub(super) prefix: String,
    pub(super) tx: tokio::sync::mpsc::UnboundedSender<Tapped>,
}

impl Tap {
    fn post(&self, name: &str, event: impl FnOnce() -> Tapped) {
        if name.starts_with(&self.prefix) {
            // A closed receiver: its tap is being dropped.
            let _ = self.tx.send(event());
        }
    }
}

pub(super) struct Namespace {
    name: String,
    client: Client,
    members: Mutex<Members>,
    pub(super) token: CancellationToken,
    limit: Arc<Semaphore>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl Namespace {
    /// Starts watching `namespace` (in a task that ends when the last
    /// member leaves).
    pub(super) fn start(client: Client, namespace: &str, limit: Arc<Semaphore>) -> Arc<Self> {
        let ns = Arc::new(Self {
            name: namespace.to_owned(),
            client,
            members: Mutex::new(Members {
                by_name: HashMap::new(),
                taps: Vec::new(),
                mode: Mode::Connecting,
            }),
            token: CancellationToken::new(),
            limit,
        });
        let span = tracing::info_span!("lease_watch", namespace = %namespace);
        let task = Arc::clone(&ns);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let token = task.token.clone();
                task.run(token).await;
            },
            span,
        ));
        ns
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn members(&self) -> MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `member`, telling it at once how changes will reach it.
    pub(super) fn admit(&self, member: &Arc<Member>) {
        let mut members = self.members();
        match members.mode {
            Mode::Watching => {
                member.mailbox.post(Update::Healthy(true));
            }
            Mode::PerLease => self.watch_own(member),
            Mode::Connecting => {}
        }
        members
            .by_name
            .entry(member.name.clone())
            .or_default()
            .push(Arc::clone(member));
    }

    /// Removes `member`; `true` (and the watch stops) when none is left.
    pub(super) fn leave(&self, member: &Arc<Member>) -> bool {
        let mut members = self.members();
        if let Some(list) = members.by_name.get_mut(&member.name) {
            list.retain(|m| !Arc::ptr_eq(m, member));
            if list.is_empty() {
                members.by_name.remove(&member.name);
            }
        }
        self.stop_if_unused(&members)
    }

    /// Adds `tap`, telling it whether the watch is up.
    pub(super) fn admit_tap(&self, tap: &Arc<Tap>) {
        let mut members = self.members();
        let _ = tap.tx.send(Tapped::Healthy(members.mode == Mode::Watching));
        members.taps.push(Arc::clone(tap));
    }

    /// Removes `tap`; `true` (and the watch stops) when nobody is left.
    /// A tap that joins while the watch is up sees the Leases of its
    /// prefix only as they change: it joins before the electors it
    /// follows are made, or lists once itself.
    pub(super) fn leave_tap(&self, tap: &Arc<Tap>) -> bool {
        let mut members = self.members();
        members.taps.retain(|t| !Arc::ptr_eq(t, tap));
        self.stop_if_unused(&members)
    }

    fn stop_if_unused(&self, members: &Members) -> bool {
        let empty = members.by_name.is_empty() && members.taps.is_empty();
        if empty {
            self.token.cancel();
        }
        empty
    }

    /// The first candidate in line for `name`: the earliest to join that
    /// campaigns, does not lead, and is not `except`.
    pub(super) fn first_in_line(&self, name: &str, except: Option<&str>) -> Option<Arc<Member>> {
        crate::successor::first_in_line(self.members().by_name.get(name)?.iter(), except).cloned()
    }

    // === The watch ===

    async fn run(&self, token: CancellationToken) {
        let timing = Timing {
            retry: RETRY,
            request_timeout: REQUEST_TIMEOUT,
        };
        let watch = Watch::new(
            self.client.clone(),
            &self.name,
            Scope::Namespace,
            Some(Arc::clone(&self.limit)),
            timing,
        );
        let demux = Demux {
            namespace: self,
            held: Held::default(),
        };
        watch.run(demux, token).await;
    }

    /// The namespace watch could not be established: members fall back.
    fn failed(&self, error: &Error, first: bool) {
        let forbidden = is_forbidden(error);
        let mut members = self.members();
        let error = error as &dyn std::error::Error;
        if forbidden && members.mode != Mode::PerLease {
            tracing::warn!(
                error,
                "watching the namespace's Leases is forbidden; each elector watches its own Lease instead \
                 (grant `list` and `watch` on leases in the namespace for one shared watch)"
            );
            members.mode = Mode::PerLease;
            for tap in &members.taps {
                let _ = tap.tx.send(Tapped::Healthy(false));
            }
            for member in members.by_name.values().flatten() {
                member.mailbox.post(Update::Healthy(false));
                self.watch_own(member);
            }
        } else if !forbidden {
            if first {
                tracing::warn!(
                    error,
                    "watching the namespace's Leases failed; electors poll until the watch is back"
                );
            } else {
                tracing::debug!(error, "watching the namespace's Leases failed again");
            }
            if members.mode == Mode::Watching {
                members.mode = Mode::Connecting;
                for member in members.by_name.values().flatten() {
                    member.mailbox.post(Update::Healthy(false));
                }
                for tap in &members.taps {
                    let _ = tap.tx.send(Tapped::Healthy(false));
                }
            }
        }
    }

    /// Starts `member`'s own watch of its Lease (while the namespace watch
    /// is forbidden).
    fn watch_own(&self, member: &Arc<Member>) {
        let token = self.token.child_token();
        let watch = Watch::new(
            self.client.clone(),
            &self.name,
            Scope::Lease(member.name.clone()),
            Some(Arc::clone(&self.limit)),
            Timing {
                retry: OWN_WATCH_RETRY,
                request_timeout: REQUEST_TIMEOUT,
            },
        );
        let sink = ToMailbox::new(Arc::clone(&member.mailbox), OWN_WATCH_RETRY);
        let previous = member
            .own_watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(token.clone());
        if let Some(previous) = previous {
            previous.cancel();
        }
        tokio::spawn(tracing::Instrument::in_current_span(watch.run(sink, token)));
    }

    /// The watch is established: members that watched their own Leases stop
    /// (the namespace watch listed everything before this), and every
    /// member hears that the watch is up.
    fn established(&self) {
        let mut members = self.members();
        if members.mode == Mode::Watching {
            return;
        }
        if members.mode == Mode::PerLease {
            tracing::info!("watching the namespace's Leases again");
        } else {
            tracing::debug!("watching the namespace's Leases");
        }
        members.mode = Mode::Watching;
        for member in members.by_name.values().flatten() {
            member.stop_own_watch();
            member.mailbox.post(Update::Healthy(true));
        }
        for tap in &members.taps {
            let _ = tap.tx.send(Tapped::Healthy(true));
        }
    }

    /// Tells each tap of every Lease of its prefix, and each member what
    /// its Lease is now (or that it is missing), after a list as of
    /// `version`.
    fn listed(&self, listed: Vec<Lease>, version: &str) {
        // Every Lease, not only those watched now: a member may join
        // while later pages are read.
        let mut leases: HashMap<String, Lease> = HashMap::new();
        for lease in listed {
            if let Some(name) = lease.metadata.name.clone() {
                leases.insert(name, lease);
            }
        }
        let members = self.members();
        for (name, lease) in &leases {
            for tap in &members.taps {
                tap.post(name, || Tapped::Lease(Box::new(lease.clone())));
            }
        }
        for (name, list) in &members.by_name {
            for member in list {
                member.mailbox.post(match leases.get(name) {
                    Some(lease) => Update::Lease(Box::new(lease.clone())),
                    None => Update::Missing {
                        version: Some(version.to_owned()),
                    },
                });
            }
        }
    }

    /// Tells the taps and the members watching it that a Lease was deleted.
    fn deleted(&self, lease: Lease, held: &mut Held) {
        let name = lease.metadata.name.unwrap_or_default();
        held.flush(&name);
        for tap in &self.members().taps {
            tap.post(&name, || Tapped::Deleted(name.clone()));
        }
        self.deliver(&name, || Update::Missing {
            version: lease.metadata.resource_version.clone(),
        });
    }

    /// A bookmark: every member hears that the watch is alive.
    fn progress(&self) {
        for member in self.members().by_name.values().flatten() {
            member.mailbox.post(Update::Progress);
        }
    }

    /// Posts `lease` to the members watching it, after any change of it
    /// still held. A release that names a successor among them goes to the
    /// successor (and to members that lead) at once, and to the other
    /// candidates only with the next change of the Lease (the successor's
    /// acquire, normally a millisecond later) or after `HOLD`: they defer
    /// to the successor anyway, and a thousand of them woken at once would
    /// delay the one that acts.
    fn deliver_lease(&self, lease: &Lease, held: &mut Held) {
        let Some(name) = lease.metadata.name.as_deref() else {
            return;
        };
        held.flush(name);
        let members = self.members();
        for tap in &members.taps {
            tap.post(name, || Tapped::Lease(Box::new(lease.clone())));
        }
        let Some(list) = members.by_name.get(name) else {
            return;
        };
        let successor = crate::successor::named(lease);
        let named = |m: &Arc<Member>| {
            successor.is_some_and(|name| crate::successor::names(name, &m.identity))
        };
        if !list.iter().any(named) {
            for member in list {
                member.mailbox.post(Update::Lease(Box::new(lease.clone())));
            }
            return;
        }
        let mut waiting = Vec::new();
        for member in list {
            if named(member) || member.leading.load(Ordering::Acquire) {
                member.mailbox.post(Update::Lease(Box::new(lease.clone())));
            } else {
                waiting.push(Arc::clone(member));
            }
        }
        held.hold(name, lease.clone(), waiting);
    }

    /// Posts `update()` to every member watching `name`.
    fn deliver(&self, name: &str, update: impl Fn() -> Update) {
        if let Some(list) = self.members().by_name.get(name) {
            for member in list {
                member.mailbox.post(update());
            }
        }
    }
}

/// The namespace watch's findings, demultiplexed to the members and taps.
struct Demux<'a> {
    namespace: &'a Namespace,
    held: Held,
}

impl Sink for Demux<'_> {
    fn listed(&mut self, leases: Vec<Lease>, version: &str) -> bool {
        self.namespace.listed(leases, version);
        true
    }

    fn established(&mut self) -> bool {
        self.namespace.established();
        true
    }

    fn event(&mut self, event: Event) -> bool {
        match event {
            Event::Applied(lease) => self.namespace.deliver_lease(&lease, &mut self.held),
            Event::Deleted(lease) => self.namespace.deleted(lease, &mut self.held),
            Event::Bookmark => self.namespace.progress(),
        }
        true
    }

    fn failed(&mut self, error: &Error, first: bool) -> bool {
        self.namespace.failed(error, first);
        true
    }

    fn ended(&mut self) {
        self.held.flush_all();
    }

    fn due(&self) -> impl Future<Output = ()> + Send {
        self.held.due()
    }

    fn on_due(&mut self) {
        self.held.flush_due(tokio::time::Instant::now());
    }
}

/// How long a release that names a local successor is held back from the
/// other candidates, at most.
const HOLD: Duration = Duration::from_millis(100);

/// Releases held back from the candidates that defer to a named successor,
/// by Lease name: the Lease, who waits for it, and until when.
#[derive(Default)]
struct Held(HashMap<String, (Lease, Vec<Arc<Member>>, tokio::time::Instant)>);

impl Held {
    fn hold(&mut self, name: &str, lease: Lease, waiting: Vec<Arc<Member>>) {
        let until = tokio::time::Instant::now() + HOLD;
        self.0.insert(name.to_owned(), (lease, waiting, until));
    }

    /// Completes when the earliest hold is due (never, when none is).
    async fn due(&self) {
        match self.0.values().map(|(_, _, until)| *until).min() {
            Some(until) => tokio::time::sleep_until(until).await,
            None => std::future::pending().await,
        }
    }

    fn deliver((lease, waiting, _): (Lease, Vec<Arc<Member>>, tokio::time::Instant)) {
        for member in waiting {
            member.mailbox.post(Update::Lease(Box::new(lease.clone())));
        }
    }

    /// Delivers what is held for `name`, if anything (before its next change).
    fn flush(&mut self, name: &str) {
        if let Some(held) = self.0.remove(name) {
            Self::deliver(held);
        }
    }

    fn flush_due(&mut self, now: tokio::time::Instant) {
        let due: Vec<String> = self
            .0
            .iter()
            .filter(|(_, (_, _, until))| *until <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            self.flush(&name);
        }
    }

    fn flush_all(&mut self) {
        for (_, held) in self.0.drain() {
            Self::deliver(held);
        }
    }
}
