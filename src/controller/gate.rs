//! The gate every reconcile passes: it starts the application's reconcile
//! only inside a term, holds the term's guard while it runs, and drops it
//! once the term can no longer protect it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, TryFuture, TryFutureExt};
use kube::runtime::controller::{self, Action};

use super::context::LeaderContext;
use super::item::RunItem;
use crate::ElectorView;
use crate::config::OverdueWork;
use crate::elector::unprotected;
use crate::state::Term;

/// Why a reconcile did not call the application's code, or its error.
pub(super) enum Gated<E> {
    /// No term held when it was due: nothing ran (the next term reconciles
    /// every object).
    Outside,
    /// It ran past its term's protection and was dropped.
    Dropped,
    /// The application's reconcile failed.
    Failed(E),
}

impl<E: fmt::Debug> fmt::Debug for Gated<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Outside => f.write_str("Outside"),
            Self::Dropped => f.write_str("Dropped"),
            Self::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for Gated<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Outside => f.write_str("not leading: the reconcile did not run"),
            Self::Dropped => f.write_str("the reconcile outlived its term and was dropped"),
            Self::Failed(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Gated<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed(e) => e.source(),
            Self::Outside | Self::Dropped => None,
        }
    }
}

/// What every reconcile of one [`LeaderController`](super::LeaderController)
/// shares: the elector it is gated by, the application's functions and
/// context. kube-runtime's `Controller::run` gets it as its context.
pub(super) struct Gate<R, P, Ctx> {
    pub(super) view: ElectorView,
    pub(super) reconcile: R,
    pub(super) error_policy: P,
    pub(super) data: Arc<Ctx>,
}

impl<R, P, Ctx> Gate<R, P, Ctx> {
    /// Runs the application's reconcile of `object` if this replica leads
    /// now, holding the term's guard until it returns or is dropped.
    pub(super) fn reconcile<K, Fut>(
        &self,
        object: Arc<K>,
    ) -> BoxFuture<'static, Result<Action, Gated<Fut::Error>>>
    where
        R: Fn(Arc<K>, Arc<LeaderContext<Ctx>>) -> Fut,
        Fut: TryFuture<Ok = Action> + Send + 'static,
        Fut::Error: Send,
    {
        let Some(leadership) = self.view.leadership_now() else {
            return futures::future::ready(Err(Gated::Outside)).boxed();
        };
        let term: Term = Term::clone(&leadership);
        let (drain, overdue_work) = self.view.overdue_policy();
        let identity: Arc<str> = leadership.identity().into();
        let context = Arc::new(LeaderContext::new(leadership, Arc::clone(&self.data)));
        let work = TryFutureExt::into_future((self.reconcile)(object, context));
        async move {
            tokio::select! {
                result = work => result.map_err(Gated::Failed),
                why = overdue(&term, drain) => {
                    if overdue_work == OverdueWork::ExitProcess {
                        tracing::error!(
                            %identity,
                            "a reconcile did not return by {why} (drain timeout {drain:?}); ending the process"
                        );
                        std::process::exit(1);
                    }
                    tracing::warn!(
                        %identity,
                        "a reconcile did not return by {why} (drain timeout {drain:?}); dropped it"
                    );
                    Err(Gated::Dropped)
                }
            }
        }
        .boxed()
    }

    /// The application's error policy for its own errors; no retry for a
    /// reconcile that did not run or was dropped (the next term reconciles
    /// every object).
    pub(super) fn error_policy<K, E>(&self, object: Arc<K>, error: &Gated<E>) -> Action
    where
        P: Fn(Arc<K>, &E, Arc<Ctx>) -> Action,
    {
        match error {
            Gated::Failed(error) => (self.error_policy)(object, error, Arc::clone(&self.data)),
            Gated::Outside | Gated::Dropped => Action::await_change(),
        }
    }
}

/// Completes once work of `term` must stop: at the end of the term's
/// protection (its deadline, which only renews move), or a drain timeout
/// after the term ended, whichever comes first.
async fn overdue(term: &Term, drain: Duration) -> &'static str {
    tokio::select! {
        () = unprotected(term) => "the end of its term's protection",
        () = async {
            term.token.cancelled().await;
            tokio::time::sleep(drain).await;
        } => "the drain timeout after its term ended",
    }
}

/// One item of kube-runtime's run stream, as the application sees it:
/// reconciles that did not run, or were dropped, are left out; the
/// application's errors are its own type again.
pub(super) fn unwrap<K, E>(item: RunItem<K, Gated<E>>) -> Option<RunItem<K, E>>
where
    K: kube::Resource,
{
    use controller::Error;
    Some(match item {
        Ok(done) => Ok(done),
        Err(Error::ReconcilerFailed(Gated::Failed(e), object)) => {
            Err(Error::ReconcilerFailed(e, object))
        }
        Err(Error::ReconcilerFailed(Gated::Outside | Gated::Dropped, _)) => return None,
        Err(Error::ObjectNotFound(object)) => Err(Error::ObjectNotFound(object)),
        Err(Error::QueueError(e)) => Err(Error::QueueError(e)),
        Err(Error::RunnerError(e)) => Err(Error::RunnerError(e)),
    })
}
