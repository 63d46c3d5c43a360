//! kube-runtime `Controller`s gated by leadership: reconciles run only
//! inside a term of an elector, hold the term while they run, and a new
//! term reconciles every object (feature `controller`).
//!
//! A [`LeaderController`] runs in one of two modes:
//! - [`cold`](LeaderController::cold): the Controller (its watches, its
//!   store) runs only while this replica leads, built anew for each term.
//!   A new leader lists every watched object before its first reconcile.
//!   Followers send no request for it.
//! - [`warm`](LeaderController::warm): every replica runs the Controller's
//!   watches and keeps its store current; only the leader's reconciles call
//!   the application's code. A replica that starts leading reconciles every
//!   object of its warm store at once (kube-runtime's `reconcile_all_on`),
//!   with no new list, and first (up to eight at once, the pass starting
//!   200 ms into the term) the objects it saw change while it followed and
//!   those its watch delivers as it starts, so that a few changes do not
//!   wait behind every unchanged object (those are reconciled twice:
//!   reconciles must be idempotent, as kube-runtime asks). No object is
//!   reconciled twice at once. Followers call no application code and write
//!   nothing, but each holds a watch per watched kind and the objects in
//!   memory.
//!
//! In both modes:
//! - no reconcile starts outside a term: each one takes the term's
//!   [`Leadership`](crate::Leadership) guard when it starts, or does not
//!   call the application at all;
//! - the reconcile holds that guard (in its [`LeaderContext`]) while it
//!   runs, so a shutdown releases the Lease only after the reconciles in
//!   flight have returned (up to the elector's drain timeout);
//! - a reconcile still running when its term can no longer protect it (the
//!   term's deadline, or the drain timeout after the term ended) is dropped,
//!   or the process ends ([`ElectorConfig::on_overdue_work`](crate::ElectorConfig::on_overdue_work));
//! - the reconcile's context carries the term's fencing token
//!   ([`LeaderContext::fencing_token`]). A write already sent can still
//!   land after the term: make writes that matter conditional on it or on
//!   a `resourceVersion` (see the [controller guide](crate::guide::controller)).
//!
//! ```no_run
//! use std::sync::Arc;
//! use futures::StreamExt;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::runtime::{Controller, controller::Action, watcher};
//! use kube_elector::controller::{LeaderContext, LeaderController};
//! use kube_elector::{ElectorConfig, LeaderElector};
//!
//! struct Data { client: kube::Client }
//!
//! async fn reconcile(cm: Arc<ConfigMap>, ctx: Arc<LeaderContext<Data>>) -> Result<Action, kube::Error> {
//!     let _client = &ctx.client; // the application's context
//!     let _token = ctx.fencing_token(); // the term's
//!     Ok(Action::await_change())
//! }
//!
//! fn error_policy(_: Arc<ConfigMap>, _: &kube::Error, _: Arc<Data>) -> Action {
//!     Action::requeue(std::time::Duration::from_secs(5))
//! }
//!
//! # async fn run() -> anyhow::Result<()> {
//! let client = kube::Client::try_default().await?;
//! let elector = LeaderElector::new(client.clone(), ElectorConfig::new("my-operator"))?.spawn();
//! let api = kube::Api::<ConfigMap>::default_namespaced(client.clone());
//! // Warm standby: every replica watches, the leader reconciles.
//! LeaderController::warm(Controller::new(api, watcher::Config::default()))
//!     .run(&elector, reconcile, error_policy, Arc::new(Data { client }))
//!     .for_each(|_| async {})
//!     .await;
//! # Ok(())
//! # }
//! ```

mod context;
mod early;
mod gate;
mod item;

use std::fmt;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures::future::{self, FutureExt, TryFuture};
use futures::stream::{self, BoxStream, Stream, StreamExt};
use kube::Resource;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

pub use context::LeaderContext;
use early::Early;
use gate::{Gate, Gated};
pub use item::RunItem;

use crate::ElectorView;
use crate::state::{LeaderState, Term};

/// A kube-runtime `Controller` whose reconciles run only while an elector
/// leads; see the [module](self) for the two modes and what they keep.
#[must_use = "a LeaderController does nothing until `run` and its stream is polled"]
pub struct LeaderController<K>
where
    K: Clone + Resource + Debug + 'static,
    K::DynamicType: Eq + Hash,
{
    mode: Mode<K>,
}

enum Mode<K>
where
    K: Clone + Resource + Debug + 'static,
    K::DynamicType: Eq + Hash,
{
    Cold(Box<dyn FnMut() -> Controller<K> + Send>),
    Warm(Controller<K>),
}

impl<K> fmt::Debug for LeaderController<K>
where
    K: Clone + Resource + Debug + 'static,
    K::DynamicType: Eq + Hash,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::Cold(_) => "cold",
            Mode::Warm(_) => "warm",
        };
        f.debug_struct("LeaderController")
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

impl<K> LeaderController<K>
where
    K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Debug + Unpin + Send + Sync,
{
    /// Cold mode: `build` makes the Controller (`Controller::new`, with its
    /// `owns`, `watches`, `with_config`) at the start of each term; it runs
    /// until the term ends, then shuts down gracefully (reconciles in
    /// flight finish, none starts). A term that ends before the
    /// Controller's first list completes ends it at once (kube-runtime's
    /// graceful shutdown alone would wait for that list for ever).
    pub fn cold(build: impl FnMut() -> Controller<K> + Send + 'static) -> Self {
        Self {
            mode: Mode::Cold(Box::new(build)),
        }
    }

    /// Warm standby: `controller` runs on every replica, from now until
    /// the elector stops, keeping its store current; only the leader's
    /// reconciles call the application's code, and each new term
    /// reconciles every object in the store at once. Do not add a graceful
    /// shutdown to it: it shuts down when the elector has stopped.
    pub fn warm(controller: Controller<K>) -> Self {
        Self {
            mode: Mode::Warm(controller),
        }
    }

    /// Runs the Controller gated by `elector`'s terms, until the elector
    /// stops (its handle shut down or dropped) and the reconciles in flight
    /// have returned.
    ///
    /// `reconcile` gets each object and a [`LeaderContext`] (the term's
    /// guard and fencing token; it derefs to `context`); `error_policy`
    /// gets the application's errors and `context` itself, after the
    /// reconcile has returned (outside the term: it should only choose a
    /// requeue). As with `Controller::run`, nothing happens unless the
    /// stream is polled; it yields the results of the reconciles that ran
    /// the application's code (not those of a follower, which never do).
    ///
    /// Concurrency, debounce and the watched kinds are the Controller's
    /// (`Controller::with_config`, `owns`, `watches`).
    pub fn run<Ctx, R, Fut, P>(
        self,
        elector: &ElectorView,
        reconcile: R,
        error_policy: P,
        context: Arc<Ctx>,
    ) -> impl Stream<Item = RunItem<K, Fut::Error>> + Send + use<K, Ctx, R, Fut, P>
    where
        Ctx: Send + Sync + 'static,
        R: Fn(Arc<K>, Arc<LeaderContext<Ctx>>) -> Fut + Send + Sync + 'static,
        Fut: TryFuture<Ok = Action> + Send + 'static,
        Fut::Error: std::error::Error + Send + 'static,
        P: Fn(Arc<K>, &Fut::Error, Arc<Ctx>) -> Action + Send + Sync + 'static,
    {
        let gate = Arc::new(Gate {
            view: elector.clone(),
            reconcile,
            error_policy,
            data: context,
        });
        match self.mode {
            Mode::Warm(controller) => warm(controller, gate).left_stream(),
            Mode::Cold(build) => cold(build, gate).right_stream(),
        }
    }
}

/// Runs `controller` through `gate` from now until the elector stops.
fn warm<K, R, P, Ctx, Fut>(
    controller: Controller<K>,
    gate: Arc<Gate<R, P, Ctx>>,
) -> BoxStream<'static, RunItem<K, Fut::Error>>
where
    K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Debug + Unpin + Send + Sync,
    Ctx: Send + Sync + 'static,
    R: Fn(Arc<K>, Arc<LeaderContext<Ctx>>) -> Fut + Send + Sync + 'static,
    Fut: TryFuture<Ok = Action> + Send + 'static,
    Fut::Error: std::error::Error + Send + 'static,
    P: Fn(Arc<K>, &Fut::Error, Arc<Ctx>) -> Action + Send + Sync + 'static,
{
    let state = gate.view.subscribe();
    let store = controller.store();
    let stopped = elector_stopped(state.clone());
    let early = Arc::new(Early::default());
    let controller_store = store.clone();
    let controller_early = Arc::clone(&early);
    // The pass over the whole store waits a moment into the term, so that
    // what changed goes first: what this replica saw change while it
    // followed (`changed_first`), and the watch events that reach it just
    // after it starts leading (a graceful handover's, which its own
    // triggers reconcile at once while the queue is still empty).
    let passes = new_terms(state.clone()).then(|()| tokio::time::sleep(early::PASS_AFTER));
    let everything = controller
        .reconcile_all_on(passes)
        .graceful_shutdown_on(stopped)
        .run(
            move |object, gate: Arc<Gate<R, P, Ctx>>| {
                let (early, store) = (Arc::clone(&controller_early), controller_store.clone());
                async move {
                    // The gate alone decides whether this replica leads;
                    // what it did not run, the next term's early lane may.
                    let _slot = early.slot(early::key_of(object.as_ref())).await;
                    let result = gate.reconcile(Arc::clone(&object)).await;
                    if matches!(result, Err(Gated::Outside)) {
                        early.skipped(object.as_ref(), || store.state());
                    }
                    result
                }
            },
            |object, error, gate| gate.error_policy(object, error),
            Arc::clone(&gate),
        )
        .take_until(never_ready_after(
            elector_stopped(state.clone()),
            store.clone(),
        ))
        .filter_map(|item| future::ready(gate::unwrap(item)));
    stream::select(everything, changed_first(state, store, early, gate)).boxed()
}

/// At the start of each term, reconciles the objects that changed while
/// this replica followed, beside the Controller's pass over every object
/// (see `early.rs`); yields nothing (those objects' results come from that
/// pass, which reconciles them too).
fn changed_first<K, R, P, Ctx, Fut>(
    state: watch::Receiver<LeaderState>,
    store: Store<K>,
    early: Arc<Early>,
    gate: Arc<Gate<R, P, Ctx>>,
) -> impl Stream<Item = RunItem<K, Fut::Error>> + Send + 'static
where
    K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Debug + Unpin + Send + Sync,
    Ctx: Send + Sync + 'static,
    R: Fn(Arc<K>, Arc<LeaderContext<Ctx>>) -> Fut + Send + Sync + 'static,
    Fut: TryFuture<Ok = Action> + Send + 'static,
    Fut::Error: std::error::Error + Send + 'static,
    P: Fn(Arc<K>, &Fut::Error, Arc<Ctx>) -> Action + Send + Sync + 'static,
{
    new_terms(state)
        .then(move |()| {
            let (early, store, gate) = (Arc::clone(&early), store.clone(), Arc::clone(&gate));
            async move {
                let changed = early.take_changed();
                if changed.is_empty() {
                    return;
                }
                tracing::debug!(
                    objects = changed.len(),
                    "reconciling first the objects that changed while following"
                );
                let objects = store
                    .state()
                    .into_iter()
                    .filter(|o| changed.contains(&early::key_of(o.as_ref())));
                stream::iter(objects)
                    .for_each_concurrent(early::CONCURRENCY, |object| {
                        let (early, gate) = (Arc::clone(&early), Arc::clone(&gate));
                        async move {
                            let _slot = early.slot(early::key_of(object.as_ref())).await;
                            // Its error, if any, comes again from the
                            // Controller's pass, which reconciles it too.
                            let _ = gate.reconcile(object).await;
                        }
                    })
                    .await;
            }
        })
        .filter_map(|()| future::ready(None))
}

/// Builds a Controller with `build` for each term and runs it through
/// `gate` until the term ends.
fn cold<K, R, P, Ctx, Fut>(
    build: Box<dyn FnMut() -> Controller<K> + Send>,
    gate: Arc<Gate<R, P, Ctx>>,
) -> BoxStream<'static, RunItem<K, Fut::Error>>
where
    K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Debug + Unpin + Send + Sync,
    Ctx: Send + Sync + 'static,
    R: Fn(Arc<K>, Arc<LeaderContext<Ctx>>) -> Fut + Send + Sync + 'static,
    Fut: TryFuture<Ok = Action> + Send + 'static,
    Fut::Error: std::error::Error + Send + 'static,
    P: Fn(Arc<K>, &Fut::Error, Arc<Ctx>) -> Action + Send + Sync + 'static,
{
    let terms = stream::unfold((build, gate, 0_u64), |(mut build, gate, last)| async move {
        // The next term (never the one whose Controller just ended).
        let term = loop {
            let leadership = gate.view.became_leader().await.ok()?;
            let term = Term::clone(&leadership);
            // The Controller's reconciles take guards of their own: this
            // one must not hold up the term's drain.
            drop(leadership);
            if term.id() != last {
                break term;
            }
            term.token.cancelled().await;
        };
        let controller = build();
        let store = controller.store();
        let ended = term.token.clone().cancelled_owned();
        let run = controller
            .graceful_shutdown_on(term.token.clone().cancelled_owned())
            .run(
                |object, gate: Arc<Gate<R, P, Ctx>>| gate.reconcile(object),
                |object, error, gate| gate.error_policy(object, error),
                Arc::clone(&gate),
            )
            .take_until(never_ready_after(ended, store))
            .filter_map(|item| future::ready(gate::unwrap(item)))
            .boxed();
        Some((run, (build, gate, term.id())))
    });
    terms.flatten().boxed()
}

/// Completes if `store` is not ready (its first list has not completed)
/// once `end` has: kube-runtime's graceful shutdown waits for that list
/// for ever, and with no list done no reconcile has started to wait for.
async fn never_ready_after<K>(end: impl Future<Output = ()>, store: Store<K>)
where
    K: Clone + Resource + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    end.await;
    if store.wait_until_ready().now_or_never().is_none() {
        tracing::debug!("the controller's first list had not completed; ended it");
        return;
    }
    future::pending::<()>().await;
}

/// Completes when the elector has stopped (its task ended).
#[allow(clippy::manual_async_fn)] // the signature promises `Sync`, which `graceful_shutdown_on` asks for
fn elector_stopped(
    mut state: watch::Receiver<LeaderState>,
) -> impl Future<Output = ()> + Send + Sync + 'static {
    async move { while state.changed().await.is_ok() {} }
}

/// Yields once at the start of each term (at once if one holds now).
fn new_terms(state: watch::Receiver<LeaderState>) -> impl Stream<Item = ()> + Send + 'static {
    stream::unfold((state, 0_u64), |(mut state, last)| async move {
        loop {
            let current = state
                .borrow_and_update()
                .term
                .as_ref()
                .filter(|t| t.is_leading())
                .map(Term::id);
            if let Some(id) = current.filter(|id| *id != last) {
                return Some(((), (state, id)));
            }
            state.changed().await.ok()?;
        }
    })
}
