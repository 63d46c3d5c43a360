//! Liveness of an elector, for a `/healthz` probe: client-go's
//! `HealthzAdaptor`, judged on the local monotonic clock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::shared::Shared;
use crate::state::LeaderState;

/// Why an elector is unhealthy; see [`HealthCheck::check`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unhealthy {
    /// The elector believes it leads, but its last successful renew was sent
    /// longer ago than the lease duration plus the tolerance. The elector
    /// would have stopped leading at its renew deadline had its task run:
    /// the task is stuck (a blocked runtime, a starved thread), and other
    /// replicas may lead by now.
    #[error(
        "leading, but the last successful renew was sent {since:?} ago (more than the allowed {allowed:?}): the elector's task is stuck"
    )]
    RenewOverdue {
        /// Time since the last successful renew was sent.
        since: Duration,
        /// The lease duration plus the tolerance.
        allowed: Duration,
    },
    /// The elector's task ended although nobody shut it down (it panicked).
    #[error("the elector's task ended without being shut down")]
    Stopped,
}

/// A liveness check of one elector, from
/// [`ElectorHandle::health_check`](crate::ElectorHandle::health_check).
///
/// Cheap to clone and to call: it reads shared state and sends no request.
/// Followers are always healthy (an API server outage is not a reason to
/// restart them); a leader is unhealthy when its last successful renew is
/// older than the lease duration plus the tolerance, which can only happen
/// when the elector's task cannot run. Restarting such a process is the
/// remedy client-go's health check exists for.
///
/// ```no_run
/// # async fn run(handle: kube_elector::ElectorHandle) {
/// use std::time::Duration;
///
/// let health = handle.health_check(Duration::from_secs(20));
/// match health.check() {
///     Ok(()) => println!("ok"),
///     Err(unhealthy) => eprintln!("unhealthy: {unhealthy}"),
/// }
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct HealthCheck {
    state: watch::Receiver<LeaderState>,
    shared: Arc<Shared>,
    token: CancellationToken,
    allowed: Duration,
}

impl HealthCheck {
    pub(crate) fn new(
        state: watch::Receiver<LeaderState>,
        shared: Arc<Shared>,
        token: CancellationToken,
        allowed: Duration,
    ) -> Self {
        Self {
            state,
            shared,
            token,
            allowed,
        }
    }

    /// Whether the elector is alive: see [`HealthCheck`].
    ///
    /// # Errors
    /// [`Unhealthy`] saying why.
    pub fn check(&self) -> Result<(), Unhealthy> {
        let ended = self.state.has_changed().is_err();
        // The task believes it leads (whatever its deadline says): a task that
        // cannot run to end its term is what this check exists to catch.
        let leading = self.state.borrow().term.is_some();
        judge(
            leading,
            ended && !self.token.is_cancelled(),
            self.shared.renewed(),
            Instant::now(),
            self.allowed,
        )
    }

    /// Whether the elector has reached the API server at least once (read
    /// the Lease, or learnt that it does not exist): a readiness signal.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.shared.has_observed()
    }
}

/// The health of an elector that is `leading` (or not), whose task has
/// `ended` unexpectedly (or not), and whose last successful renew was sent
/// at `renewed`.
fn judge(
    leading: bool,
    ended: bool,
    renewed: Option<Instant>,
    now: Instant,
    allowed: Duration,
) -> Result<(), Unhealthy> {
    if ended {
        return Err(Unhealthy::Stopped);
    }
    if !leading {
        return Ok(());
    }
    match renewed {
        Some(sent) if now.saturating_duration_since(sent) > allowed => {
            Err(Unhealthy::RenewOverdue {
                since: now.saturating_duration_since(sent),
                allowed,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: Duration = Duration::from_secs(20);

    #[test]
    fn followers_are_healthy_however_old_the_last_renew() {
        let now = Instant::now();
        let long_ago = now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
        assert_eq!(judge(false, false, Some(long_ago), now, ALLOWED), Ok(()));
        assert_eq!(judge(false, false, None, now, ALLOWED), Ok(()));
    }

    #[test]
    fn a_leader_is_healthy_up_to_the_allowed_age_and_unhealthy_after() {
        let sent = Instant::now();
        assert_eq!(
            judge(true, false, Some(sent), sent + ALLOWED, ALLOWED),
            Ok(())
        );
        let late = sent + ALLOWED + Duration::from_millis(1);
        assert_eq!(
            judge(true, false, Some(sent), late, ALLOWED),
            Err(Unhealthy::RenewOverdue {
                since: ALLOWED + Duration::from_millis(1),
                allowed: ALLOWED,
            })
        );
    }

    #[test]
    fn a_task_that_ended_unasked_is_unhealthy_leader_or_not() {
        let now = Instant::now();
        assert_eq!(
            judge(false, true, None, now, ALLOWED),
            Err(Unhealthy::Stopped)
        );
        assert_eq!(
            judge(true, true, Some(now), now, ALLOWED),
            Err(Unhealthy::Stopped)
        );
    }
}
