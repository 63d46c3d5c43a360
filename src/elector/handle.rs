//! The handle of a running elector: what its users hold.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::handover::{HandoverOutcome, Successor};
use super::leadership::{Leadership, unprotected};
use crate::config::OverdueWork;
use crate::error::Error;
use crate::health::HealthCheck;
use crate::shared::Shared;
use crate::state::{self, LeaderEvents, LeaderState};

/// How often `became_leader` looks again at a term past its deadline that
/// its task has not ended yet.
const OVERDUE_RECHECK: Duration = Duration::from_millis(50);

// === impl ElectorHandle ===

/// The handle of a running elector.
///
/// Dropping it shuts the elector down (stop leading, release the Lease), as
/// cancelling its token does; [`ElectorHandle::shutdown`] does the same and
/// waits for it.
#[must_use = "dropping the handle shuts the elector down"]
#[derive(Debug)]
pub struct ElectorHandle {
    /// What every clone of the view can see and do.
    pub(super) view: ElectorView,
    pub(super) lease_duration: Duration,
    pub(super) task: JoinHandle<Result<ShutdownOutcome, Error>>,
    /// The token that shuts the elector down, cancelled when the handle is
    /// dropped (disarmed only by `shutdown` and `join`, once they own it).
    pub(super) shutdown_on_drop: DropGuard,
}

/// What a running elector shows and lets its users do, short of stopping it:
/// cheap to clone, for every task that waits to lead, runs leader work or
/// watches the state, while one [`ElectorHandle`] owns the elector (and
/// shuts it down when dropped). From [`ElectorHandle::view`].
#[derive(Clone, Debug)]
pub struct ElectorView {
    pub(super) identity: Arc<str>,
    pub(super) drain_timeout: Duration,
    pub(super) overdue_work: OverdueWork,
    pub(super) state: watch::Receiver<LeaderState>,
    pub(super) shared: Arc<Shared>,
}

impl ElectorView {
    /// The identity this elector writes as `holderIdentity`.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this elector leads, and returns a guard for the term:
    /// one whose token is not cancelled and whose deadline has not passed
    /// (a term past its deadline is over even while the elector's task,
    /// blocked, has not ended it yet).
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
            // A term past its deadline whose token the task has not yet
            // cancelled (its runtime was blocked) leads no more: judged
            // from the deadline, as `Term::is_leading` does.
            let overdue = term
                .as_ref()
                .is_some_and(|t| !t.token.is_cancelled() && !t.is_leading());
            if let Some(term) = term
                && term.is_leading()
                && let Some(drain) = self.shared.drain_for(term.id)
            {
                return Ok(Leadership {
                    identity: Arc::clone(&self.identity),
                    term,
                    _drain: drain,
                });
            }
            if overdue {
                // The task ends the term (a change) once it runs; look
                // again now and then in case it renewed in time instead.
                tokio::select! {
                    changed = state.changed() => changed.map_err(|_| Error::Stopped)?,
                    () = tokio::time::sleep(OVERDUE_RECHECK) => {}
                }
            } else {
                state.changed().await.map_err(|_| Error::Stopped)?;
            }
        }
    }

    /// Runs `work` for each term this elector leads, until the elector stops.
    ///
    /// For each term, `work` gets the term's [`Leadership`] guard and must
    /// return soon after [`crate::state::Term::token`] is cancelled. Since the guard
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
    ///                 .graceful_shutdown_on(leadership.cancelled_owned())
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
        let result: Result<(), std::convert::Infallible> = self
            .try_run_while_leading(|leadership| {
                let term = work(leadership);
                async move {
                    term.await;
                    Ok(())
                }
            })
            .await;
        let Ok(()) = result;
    }

    /// As [`run_while_leading`](Self::run_while_leading), for work that can
    /// fail: the first term whose work returns an error ends the loop, and
    /// the error is returned (the elector keeps running; shut it down if the
    /// error means the process should stop).
    ///
    /// # Errors
    /// The error the work returned.
    ///
    /// # Cancel safety
    /// As [`run_while_leading`](Self::run_while_leading).
    pub async fn try_run_while_leading<F, Fut, E>(&self, mut work: F) -> Result<(), E>
    where
        F: FnMut(Leadership) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        while let Ok(leadership) = self.became_leader().await {
            let term = leadership.term.clone();
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
                result = work(leadership) => result?,
                why = overdue => {
                    if self.overdue_work == OverdueWork::ExitProcess {
                        tracing::error!(
                            identity = %self.identity,
                            "leader work did not return by {why} (drain timeout {drain_timeout:?}) after its term ended; ending the process"
                        );
                        std::process::exit(1);
                    }
                    tracing::warn!(
                        identity = %self.identity,
                        "leader work did not return by {why} (drain timeout {drain_timeout:?}) after its term ended; dropped it",
                    );
                }
            }
            term.token.cancelled().await;
        }
        Ok(())
    }

    /// The guard of the term this elector leads now, without waiting:
    /// `None` unless a term holds (its token not cancelled, its deadline not
    /// passed) and still takes guards (a shutdown's drain takes no new
    /// ones).
    #[cfg(feature = "controller")]
    pub(crate) fn leadership_now(&self) -> Option<Leadership> {
        let term = self.state.borrow().term.clone()?;
        if !term.is_leading() {
            return None;
        }
        let drain = self.shared.drain_for(term.id)?;
        Some(Leadership {
            identity: Arc::clone(&self.identity),
            term,
            _drain: drain,
        })
    }

    /// How long leader work may run on after its term ended, and what
    /// becomes of work still running then.
    #[cfg(feature = "controller")]
    pub(crate) fn overdue_policy(&self) -> (Duration, OverdueWork) {
        (self.drain_timeout, self.overdue_work)
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
        state::events(self.state.clone())
    }
}

// === impl ElectorHandle ===

impl std::ops::Deref for ElectorHandle {
    type Target = ElectorView;

    /// What the handle shares with every [`ElectorView`]: waiting to lead,
    /// running leader work, the state and its events.
    fn deref(&self) -> &ElectorView {
        &self.view
    }
}

impl ElectorHandle {
    /// A view of this elector that can be cloned and sent to other tasks:
    /// they can wait to lead, run leader work and follow the state, while
    /// this handle alone stops the elector.
    #[must_use]
    pub fn view(&self) -> ElectorView {
        self.view.clone()
    }

    /// Runs `work` for each term this elector leads (as
    /// [`try_run_while_leading`](ElectorView::try_run_while_leading)) until the
    /// process gets SIGTERM or SIGINT (Ctrl-C; only that one outside Unix),
    /// then shuts the elector down: the term ends, the work finishes (it is
    /// dropped after the drain timeout), the Lease is released, and the
    /// outcome returned.
    /// The usual `main` of a replicated operator.
    ///
    /// ```no_run
    /// use kube_elector::{ElectorConfig, LeaderElector};
    ///
    /// # async fn run() -> anyhow::Result<()> {
    /// let client = kube::Client::try_default().await?;
    /// let elector = LeaderElector::new(client, ElectorConfig::new("my-operator"))?.spawn();
    /// elector
    ///     .run_until_signal(|leadership| async move {
    ///         // Leader-only work, until the term ends.
    ///         leadership.lost().await;
    ///         anyhow::Ok(())
    ///     })
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The error the work returned (the elector is shut down all the same),
    /// or the shutdown's ([`ElectorHandle::shutdown`]).
    ///
    /// # Cancel safety
    /// Dropping the future drops the handle: the elector shuts down in the
    /// background.
    pub async fn run_until_signal<F, Fut, E>(self, work: F) -> Result<ShutdownOutcome, E>
    where
        F: FnMut(Leadership) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: From<Error>,
    {
        let worked = {
            let running = self.try_run_while_leading(work);
            tokio::pin!(running);
            tokio::select! {
                result = &mut running => result,
                () = shutdown_signal() => {
                    tracing::info!(identity = %self.view.identity, "shutdown signal: ending the term, draining, releasing");
                    // The work sees its term end and finishes (within the
                    // drain timeout); the loop then ends with the elector.
                    self.shutdown_on_drop.token().cancel();
                    running.await
                }
            }
        };
        let outcome = self.shutdown().await;
        worked?;
        Ok(outcome?)
    }

    /// Hands the Lease over without shutting down: the term ends (its
    /// token is cancelled and `StoppedLeading` sent), the leader work drains
    /// (up to the drain timeout) while renews keep everyone else out, and
    /// the Lease is released naming `to` as its successor. The elector then
    /// stays a candidate, but writes last while the released record stands:
    /// only if nobody else took the Lease within three retry periods does
    /// it take it back.
    ///
    /// A named successor takes the Lease with the first event it sees; if
    /// it does not, the first other candidate in line writes after one retry
    /// period and the rest after two. This works on any cluster (the name
    /// is an annotation, not `spec.preferredHolder`). In coordinated
    /// election the API server's controller picks the next holder, not the
    /// name; see the guide's page on coordinated election.
    ///
    /// For a rolling upgrade, hand over to a replica that already runs the
    /// new version from the old one's preStop hook; the successor leads
    /// within one watch event, where a shutdown would let every replica,
    /// old or new, race for the Lease.
    ///
    /// ```no_run
    /// # async fn run(handle: kube_elector::ElectorHandle) -> Result<(), kube_elector::Error> {
    /// use kube_elector::handover::Successor;
    ///
    /// handle.hand_over(Successor::Named("my-operator-7d9f".into())).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::HandoverToSelf`] if `to` names this elector;
    /// [`Error::Stopped`] if the elector has stopped (or another handover
    /// asked before this one was taken replaced it); the release's error if
    /// it failed (the term has ended all the same, and the Lease expires on
    /// its own).
    ///
    /// # Cancel safety
    /// Once asked, the handover goes on if this future is dropped; only its
    /// outcome is lost.
    pub async fn hand_over(&self, to: Successor) -> Result<HandoverOutcome, Error> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let mut state = self.view.state.clone();
        self.view
            .shared
            .ask_handover(crate::elector::HandoverRequest { to, reply });
        tokio::pin!(outcome);
        loop {
            tokio::select! {
                biased;
                answer = &mut outcome => return answer.map_err(|_| Error::Stopped)?,
                changed = state.changed() => {
                    if changed.is_err() {
                        // The task has ended: it may still have answered.
                        return match outcome.try_recv() {
                            Ok(answer) => answer,
                            Err(_) => Err(Error::Stopped),
                        };
                    }
                }
            }
        }
    }

    /// A liveness check for a `/healthz` probe, as client-go's
    /// `HealthzAdaptor`: unhealthy while this elector believes it leads but
    /// its last successful renew was sent more than the lease duration plus
    /// `tolerance` ago (its task is stuck), or when its task ended without
    /// being shut down. Followers are healthy. See [`HealthCheck`].
    #[must_use]
    pub fn health_check(&self, tolerance: Duration) -> HealthCheck {
        HealthCheck::new(
            self.view.state.clone(),
            Arc::clone(&self.view.shared),
            self.shutdown_on_drop.token().clone(),
            self.lease_duration.saturating_add(tolerance),
        )
    }

    /// The token that shuts this elector down when cancelled.
    #[must_use]
    pub fn cancellation_token(&self) -> CancellationToken {
        self.shutdown_on_drop.token().clone()
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
            shutdown_on_drop: guard,
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
            shutdown_on_drop: guard,
            ..
        } = self;
        // The guard stays armed while we wait: if this future is dropped,
        // the elector shuts down instead of running on detached.
        let outcome = task.await.map_err(Error::Task);
        guard.disarm();
        outcome?
    }
}

/// Completes on SIGTERM or SIGINT (only Ctrl-C outside Unix); never, if
/// the signal handlers cannot be installed (said in the logs).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Err(error), _) | (_, Err(error)) => {
                let error = &error as &dyn std::error::Error;
                tracing::warn!(
                    error,
                    "cannot listen for SIGTERM/SIGINT; run_until_signal runs until the work ends"
                );
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    if let Err(error) = tokio::signal::ctrl_c().await {
        let error = &error as &dyn std::error::Error;
        tracing::warn!(
            error,
            "cannot listen for Ctrl-C; run_until_signal runs until the work ends"
        );
        std::future::pending::<()>().await;
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
