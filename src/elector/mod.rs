//! The elector runtime: a background task that campaigns for, holds and
//! releases one Lease, and the handle its users hold.

mod runner;
mod telemetry;
mod watcher;

#[cfg(feature = "metrics")]
pub(crate) use telemetry::RenewFailure;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kube::Client;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::Instrument;

use crate::api::LeaseApi;
use crate::clock::WallClock;
use crate::config::{ConfigError, ConfigProblem, ElectorConfig, dns1123_label};
use crate::error::Error;
use crate::event::{self, LeaderEvents, LeaderState, Term};
use crate::health::HealthCheck;

/// Where a pod finds its namespace.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// A validated elector, ready to be spawned.
///
/// ```no_run
/// use kube_elector::{ElectorConfig, LeaderElector};
///
/// # async fn run() -> anyhow::Result<()> {
/// let client = kube::Client::try_default().await?;
/// let elector = LeaderElector::new(client, ElectorConfig::new("my-operator"))?;
/// let handle = elector.spawn();
///
/// let leadership = handle.became_leader().await?;
/// println!("leading as {} (fencing token {})", leadership.identity(), leadership.fencing_token());
/// // Leader-only work, stopped the moment leadership ends.
/// leadership.token().run_until_cancelled(async { /* reconcile */ }).await;
/// drop(leadership);
///
/// handle.shutdown().await?; // stop leading, release the Lease, end the task
/// # Ok(())
/// # }
/// ```
pub struct LeaderElector {
    client: Client,
    namespace: String,
    lease_name: String,
    settings: Arc<Settings>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("namespace", &self.namespace)
            .field("lease_name", &self.lease_name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The parts of the configuration the loop uses, with defaults resolved.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) identity: String,
    pub(crate) lease_duration_secs: i32,
    /// `lease_duration_secs` as a duration.
    pub(crate) lease_duration: Duration,
    pub(crate) renew_deadline: Duration,
    pub(crate) retry_period: Duration,
    /// The longest one request may take (a leader's requests also end at
    /// its renew deadline).
    pub(crate) request_timeout: Duration,
    pub(crate) release_on_cancel: bool,
    pub(crate) drain_timeout: Duration,
    /// Take a live Lease that names this identity in a term it did not start.
    pub(crate) adopt_own_lease: bool,
    pub(crate) clock: Arc<dyn WallClock>,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<crate::ElectorMetrics>,
    #[cfg(feature = "events")]
    pub(crate) events: Option<String>,
}

/// State shared between the task and its handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// The current term's id and the sender its guards clone; shutdown waits
    /// until every clone is dropped.
    drain: Mutex<Option<(u64, mpsc::Sender<()>)>>,
    /// When the last successful acquire or renew was sent (health checks).
    renewed: Mutex<Option<Instant>>,
    /// Whether the task has read the Lease (or learnt it is missing) once.
    observed: AtomicBool,
}

impl Shared {
    pub(crate) fn set_renewed(&self, sent: Instant) {
        *self.renewed.lock().unwrap_or_else(PoisonError::into_inner) = Some(sent);
    }

    pub(crate) fn renewed(&self) -> Option<Instant> {
        *self.renewed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_observed(&self) {
        self.observed.store(true, Ordering::Relaxed);
    }

    pub(crate) fn has_observed(&self) -> bool {
        self.observed.load(Ordering::Relaxed)
    }

    pub(crate) fn set_drain(&self, slot: Option<(u64, mpsc::Sender<()>)>) {
        *self.drain.lock().unwrap_or_else(PoisonError::into_inner) = slot;
    }

    fn drain_for(&self, term: u64) -> Option<mpsc::Sender<()>> {
        let slot = self.drain.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()
            .filter(|(id, _)| *id == term)
            .map(|(_, tx)| tx.clone())
    }
}

// === impl LeaderElector ===

impl LeaderElector {
    /// Validates `config` and resolves its defaults: the identity (`POD_NAME`
    /// or the hostname, plus a random suffix) and the namespace
    /// (`POD_NAMESPACE`, the service-account namespace file, or the client's
    /// default namespace).
    ///
    /// # Errors
    /// A [`ConfigError`] listing every invalid value.
    pub fn new(client: Client, config: ElectorConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let namespace = if let Some(ns) = config.namespace.clone() {
            ns
        } else {
            let ns = default_namespace(&client);
            dns1123_label(&ns).map_err(|reason| {
                ConfigError::single(ConfigProblem::InvalidName {
                    field: "namespace",
                    value: ns.clone(),
                    reason,
                })
            })?;
            ns
        };
        let identity = config.identity.clone().unwrap_or_else(default_identity);
        let settings = Settings {
            identity,
            lease_duration_secs: config.lease_duration_secs(),
            lease_duration: config.lease_duration,
            renew_deadline: config.renew_deadline,
            retry_period: config.retry_period,
            request_timeout: crate::record::attempt_timeout(
                config.renew_deadline,
                config.retry_period,
            ),
            release_on_cancel: config.release_on_cancel,
            drain_timeout: config.drain_timeout,
            adopt_own_lease: config.adopt_own_lease,
            clock: Arc::clone(&config.clock),
            #[cfg(feature = "metrics")]
            metrics: config.metrics.clone(),
            #[cfg(feature = "events")]
            events: config.events.clone(),
        };
        Ok(Self {
            client,
            namespace,
            lease_name: config.lease_name,
            settings: Arc::new(settings),
        })
    }

    /// The identity this elector writes as `holderIdentity`.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.settings.identity
    }

    /// Starts the elector's task, stopped by the returned handle.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn(self) -> ElectorHandle {
        self.spawn_with_token(&CancellationToken::new())
    }

    /// Starts the elector's task; cancelling `token` (or any parent of it)
    /// shuts it down: it stops leading, lets leader work drain, releases the
    /// Lease and ends.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn_with_token(self, token: &CancellationToken) -> ElectorHandle {
        let token = token.child_token();
        let api = LeaseApi::new(self.client, &self.namespace, &self.lease_name);
        let (state_tx, state_rx) = watch::channel(LeaderState::initial());
        let shared = Arc::new(Shared::default());
        let (updates_tx, updates_rx) = mpsc::channel(16);

        let span = tracing::info_span!(
            "leader_election",
            lease = %self.lease_name,
            namespace = %self.namespace,
            identity = %self.settings.identity,
        );
        tokio::spawn(
            watcher::run(
                api.clone(),
                updates_tx,
                token.child_token(),
                self.settings.retry_period,
                self.settings.request_timeout,
            )
            .instrument(span.clone()),
        );
        let telemetry =
            span.in_scope(|| telemetry::Telemetry::new(Arc::clone(&shared), &self.settings, &api));
        let runner = runner::Runner::new(
            api,
            telemetry,
            Arc::clone(&self.settings),
            Arc::clone(&shared),
            state_tx,
            token.clone(),
            updates_rx,
        );
        let task = tokio::spawn(runner.run().instrument(span));
        ElectorHandle {
            identity: Arc::from(self.settings.identity.as_str()),
            lease_duration: Duration::from_secs(
                u64::try_from(self.settings.lease_duration_secs).unwrap_or(0),
            ),
            drain_timeout: self.settings.drain_timeout,
            state: state_rx,
            shared,
            token: token.clone(),
            task,
            _shutdown_on_drop: token.drop_guard(),
        }
    }
}

fn default_namespace(client: &Client) -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|ns| !ns.is_empty())
        .or_else(|| {
            std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                .ok()
                .map(|ns| ns.trim().to_owned())
                .filter(|ns| !ns.is_empty())
        })
        .unwrap_or_else(|| client.default_namespace().to_owned())
}

/// `POD_NAME` or the hostname, plus a random suffix so that two processes on
/// one host (or a restarted pod) never share an identity.
fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kube-elector".to_owned());
    format!("{base}_{}", random_suffix())
}

fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per process; mixing in the time and
    // an address separates electors within one process too.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_usize(std::ptr::from_ref(&hasher).addr());
    let mut n = hasher.finish();
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    (0..6)
        .map(|_| {
            let c = alphabet[usize::try_from(n % 27).unwrap_or(0)];
            n /= 27;
            char::from(c)
        })
        .collect()
}

// === impl ElectorHandle ===

/// The handle of a running elector.
///
/// Dropping it shuts the elector down (stop leading, release the Lease), as
/// cancelling its token does; [`ElectorHandle::shutdown`] does the same and
/// waits for it.
#[must_use = "dropping the handle shuts the elector down"]
#[derive(Debug)]
pub struct ElectorHandle {
    identity: Arc<str>,
    lease_duration: Duration,
    drain_timeout: Duration,
    state: watch::Receiver<LeaderState>,
    shared: Arc<Shared>,
    token: CancellationToken,
    task: JoinHandle<Result<ShutdownOutcome, Error>>,
    _shutdown_on_drop: DropGuard,
}

impl ElectorHandle {
    /// The identity this elector writes as `holderIdentity`.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this elector leads, and returns a guard for the term.
    ///
    /// # Errors
    /// [`Error::Stopped`] if the elector stops before it leads.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future loses nothing, and a later call sees
    /// the current term.
    pub async fn became_leader(&self) -> Result<Leadership, Error> {
        let mut state = self.state.clone();
        loop {
            let term = state.borrow_and_update().term.clone();
            if let Some(term) = term
                && !term.token.is_cancelled()
                && let Some(drain) = self.shared.drain_for(term.id)
            {
                return Ok(Leadership {
                    identity: Arc::clone(&self.identity),
                    term,
                    _drain: drain,
                });
            }
            state.changed().await.map_err(|_| Error::Stopped)?;
        }
    }

    /// Runs `work` for each term this elector leads, until the elector stops.
    ///
    /// For each term, `work` gets the term's [`Leadership`] guard and must
    /// return soon after [`Leadership::token`] is cancelled. Since the guard
    /// lives as long as `work` keeps it, a shutdown releases the Lease only
    /// after `work` has returned (up to the drain timeout, renewing the Lease
    /// meanwhile). Work still running a drain timeout after its term ended is
    /// dropped: by then the Lease may be someone else's. If `work` returns
    /// while its term still holds, the next term runs it again: a term runs
    /// the work once.
    ///
    /// With a kube-runtime `Controller`, scope it to the term with
    /// `graceful_shutdown_on`: reconciles in flight finish before the stream
    /// ends, and so before the Lease is released. (kube-runtime 5's
    /// Controller does not end at all when its graceful shutdown starts
    /// before its first list has completed, say for a term that ends at
    /// once; the drain timeout bounds that case too.)
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use futures::StreamExt;
    /// # use k8s_openapi::api::core::v1::ConfigMap;
    /// # use kube::runtime::{Controller, controller::Action, watcher};
    /// # async fn reconcile(_: Arc<ConfigMap>, _: Arc<()>) -> Result<Action, kube::Error> {
    /// #     Ok(Action::await_change())
    /// # }
    /// # fn error_policy(_: Arc<ConfigMap>, _: &kube::Error, _: Arc<()>) -> Action {
    /// #     Action::await_change()
    /// # }
    /// # async fn run(client: kube::Client, elector: kube_elector::ElectorHandle) {
    /// elector
    ///     .run_while_leading(|leadership| {
    ///         let api = kube::Api::<ConfigMap>::default_namespaced(client.clone());
    ///         async move {
    ///             Controller::new(api, watcher::Config::default())
    ///                 .graceful_shutdown_on(leadership.token().clone().cancelled_owned())
    ///                 .run(reconcile, error_policy, Arc::new(()))
    ///                 .for_each(|_| async {})
    ///                 .await;
    ///             drop(leadership); // the Lease may be released from here on
    ///         }
    ///     })
    ///     .await;
    /// # }
    /// ```
    ///
    /// # Cancel safety
    /// Dropping the future drops the running `work` future (and the guard it
    /// holds) at its current await point; nothing of the elector is lost.
    pub async fn run_while_leading<F, Fut>(&self, mut work: F)
    where
        F: FnMut(Leadership) -> Fut,
        Fut: Future<Output = ()>,
    {
        while let Ok(leadership) = self.became_leader().await {
            let term = leadership.term().clone();
            let drain_timeout = self.drain_timeout;
            // Once the term has ended, the work may finish within the drain
            // timeout, but never past the moment the elector can no longer
            // keep other replicas out (its deadline, which renews during a
            // shutdown's drain extend): then it is dropped.
            let overdue = async {
                term.token.cancelled().await;
                tokio::select! {
                    () = tokio::time::sleep(drain_timeout) => "the drain timeout",
                    () = unprotected(&term) => "the end of the term's protection",
                }
            };
            tokio::select! {
                () = work(leadership) => {}
                why = overdue => tracing::warn!(
                    identity = %self.identity,
                    "leader work did not return by {why} (drain timeout {drain_timeout:?}) after its term ended; dropped it",
                ),
            }
            term.token.cancelled().await;
        }
    }

    /// Whether this elector leads now.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.state.borrow().is_leader()
    }

    /// The current state: who leads, whether this elector does, its term.
    #[must_use]
    pub fn state(&self) -> LeaderState {
        self.state.borrow().clone()
    }

    /// A receiver of the state, woken on each change of leader or term.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<LeaderState> {
        self.state.clone()
    }

    /// The events of this elector, starting with those that describe the
    /// current state; see [`LeaderEvents`].
    pub fn events(&self) -> LeaderEvents {
        event::events(self.state.clone())
    }

    /// A liveness check for a `/healthz` probe, as client-go's
    /// `HealthzAdaptor`: unhealthy while this elector believes it leads but
    /// its last successful renew was sent more than the lease duration plus
    /// `tolerance` ago (its task is stuck), or when its task ended without
    /// being shut down. Followers are healthy. See [`HealthCheck`].
    #[must_use]
    pub fn health_check(&self, tolerance: Duration) -> HealthCheck {
        HealthCheck::new(
            self.state.clone(),
            Arc::clone(&self.shared),
            self.token.clone(),
            self.lease_duration.saturating_add(tolerance),
        )
    }

    /// The token that shuts this elector down when cancelled.
    #[must_use]
    pub fn cancellation_token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Shuts the elector down and waits for it: it stops leading, lets leader
    /// work drain (up to the drain timeout), releases the Lease if it holds
    /// it, and ends.
    ///
    /// # Errors
    /// The release failed (the Lease then expires on its own), or the task
    /// ended abnormally ([`Error::Task`]).
    ///
    /// # Cancel safety
    /// Not cancel safe in the sense that the shutdown goes on in the
    /// background if this future is dropped; only its outcome is lost.
    pub async fn shutdown(self) -> Result<ShutdownOutcome, Error> {
        let Self {
            task,
            _shutdown_on_drop: guard,
            ..
        } = self;
        guard.disarm().cancel();
        task.await.map_err(Error::Task)?
    }

    /// Waits for the elector to end (after its token is cancelled), without
    /// cancelling it.
    ///
    /// # Errors
    /// As [`ElectorHandle::shutdown`].
    ///
    /// # Cancel safety
    /// As [`ElectorHandle::shutdown`]: the handle is consumed, and if the
    /// future is dropped before the elector ended, the elector shuts down in
    /// the background (it is never left running detached).
    pub async fn join(self) -> Result<ShutdownOutcome, Error> {
        let Self {
            task,
            _shutdown_on_drop: guard,
            ..
        } = self;
        // The guard stays armed while we wait: if this future is dropped,
        // the elector shuts down instead of running on detached.
        let outcome = task.await.map_err(Error::Task);
        guard.disarm();
        outcome?
    }
}

/// How an elector ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownOutcome {
    /// It held the Lease and released it: the next leader need not wait.
    Released,
    /// It did not hold the Lease; there was nothing to release.
    NotHolding,
    /// Releasing is turned off (`release_on_cancel(false)`).
    ReleaseSkipped,
}

/// Completes once `term`'s deadline has passed for good: the elector can
/// no longer keep other replicas out.
async fn unprotected(term: &Term) {
    loop {
        let deadline = term.deadline();
        tokio::time::sleep_until(deadline).await;
        if tokio::time::Instant::now() >= term.deadline() {
            return;
        }
    }
}

// === impl Leadership ===

/// A term of leadership, returned by [`ElectorHandle::became_leader`].
///
/// Its [`token`](Leadership::token) is cancelled the moment leadership ends:
/// scope leader-only work to it. On shutdown the elector waits (up to its
/// drain timeout) for every guard to be dropped before it releases the Lease,
/// renewing the Lease meanwhile, so leader work can finish before the next
/// leader starts. (When leadership is *lost* instead, say to a partition, the
/// Lease is no longer ours to keep: stop the work as soon as the token is
/// cancelled.)
#[must_use = "the guard tells when leadership ends; shutdown waits for it to be dropped"]
#[derive(Clone, Debug)]
pub struct Leadership {
    identity: Arc<str>,
    term: Term,
    _drain: mpsc::Sender<()>,
}

impl Leadership {
    /// The identity that leads.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The fencing token of this term: the `resourceVersion` of the write
    /// that started it.
    ///
    /// On kube-apiserver a resourceVersion is etcd's revision, which every
    /// write to any object raises, so a later term of any leader on this
    /// Lease, from any replica, has a larger token, also after the Lease was
    /// deleted and re-created. A store that remembers the largest token it
    /// accepted and refuses smaller ones therefore refuses writes from every
    /// earlier term. Tokens order terms only on one cluster (one etcd): a
    /// restore of etcd from a backup, or a server whose resourceVersions are
    /// not integers (then the token is 0), breaks the order.
    #[must_use]
    pub fn fencing_token(&self) -> u64 {
        self.term.fencing_token
    }

    /// The term this guard belongs to.
    #[must_use]
    pub fn term(&self) -> &Term {
        &self.term
    }

    /// Cancelled the moment leadership ends.
    #[must_use]
    pub fn token(&self) -> &CancellationToken {
        &self.term.token
    }

    /// Whether this term still holds: judged from the term's own deadline
    /// as well as its token, so the answer is right even when the elector's
    /// task cannot run (a blocked runtime) to end the term.
    #[must_use]
    pub fn is_leading(&self) -> bool {
        self.term.is_leading()
    }

    /// When this term ends unless a renew extends it (local monotonic clock).
    #[must_use]
    pub fn deadline(&self) -> tokio::time::Instant {
        self.term.deadline()
    }

    /// Completes when leadership ends: the token is cancelled, or the term's
    /// deadline passes.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn lost(&self) {
        loop {
            let deadline = self.term.deadline();
            tokio::select! {
                () = self.term.token.cancelled() => return,
                () = tokio::time::sleep_until(deadline) => {}
            }
            if !self.term.is_leading() {
                return;
            }
        }
    }
}
