//! The low-level lock, with the API of `kube-leader-election`'s `LeaseLock`
//! but conditional writes and expiry judged from the local clock.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use tokio::time::Instant;

use crate::api::LeaseApi;
use crate::clock::{SystemClock, WallClock};
use crate::config::{ConfigError, ConfigProblem};
use crate::error::{Action, Error};
use crate::record::{self, Observed, Verdict};

/// Parameters of a [`LeaseLock`], as in `kube-leader-election`.
#[derive(Clone, Debug)]
pub struct LeaseLockParams {
    /// The identity written as `holderIdentity`; unique per replica.
    pub holder_id: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// How long the Lease is valid without a renew, in whole seconds.
    pub lease_ttl: Duration,
}

/// What [`LeaseLock::try_acquire_or_renew`] found.
#[derive(Clone, Debug, Default)]
pub struct LeaseLockResult {
    /// Whether this replica holds the Lease now.
    pub acquired_lease: bool,
    /// The Lease as last read or written, if there is one.
    pub lease: Option<Lease>,
}

/// A Lease lock to be polled: call [`try_acquire_or_renew`] every fraction of
/// the TTL (a quarter, say) and act as leader while it returns
/// `acquired_lease: true`.
///
/// A drop-in for `kube_leader_election::LeaseLock`, with two differences a
/// migrating user only notices under contention: every write is conditional
/// on the `resourceVersion` it was based on, so two replicas that saw the
/// same expired Lease never both win; and a Lease counts as expired when this
/// lock has seen it unchanged for its duration, not by comparing the remote
/// `renewTime` with the local clock, so clock skew cannot cause a takeover.
/// (A lock that has not yet seen a held Lease therefore waits one full TTL
/// before taking it over.)
///
/// For a background loop with events and a renew deadline, use
/// [`LeaderElector`](crate::LeaderElector).
///
/// ```no_run
/// use std::time::Duration;
/// use kube_elector::{LeaseLock, LeaseLockParams};
///
/// # async fn run() -> anyhow::Result<()> {
/// let leadership = LeaseLock::new(
///     kube::Client::try_default().await?,
///     "default",
///     LeaseLockParams {
///         holder_id: "some-operator".into(),
///         lease_name: "some-operator-lock".into(),
///         lease_ttl: Duration::from_secs(15),
///     },
/// );
/// let lease = leadership.try_acquire_or_renew().await?;
/// println!("currently leading: {}", lease.acquired_lease);
/// leadership.step_down().await?;
/// # Ok(())
/// # }
/// ```
///
/// [`try_acquire_or_renew`]: LeaseLock::try_acquire_or_renew
#[derive(Debug)]
pub struct LeaseLock {
    api: LeaseApi,
    params: LeaseLockParams,
    observed: Mutex<Option<Observed>>,
    clock: Box<dyn WallClock>,
}

impl LeaseLock {
    /// A lock on Lease `params.lease_name` in `namespace`.
    #[must_use]
    pub fn new(client: Client, namespace: &str, params: LeaseLockParams) -> Self {
        Self {
            api: LeaseApi::new(client, namespace, &params.lease_name),
            params,
            observed: Mutex::new(None),
            clock: Box::new(SystemClock),
        }
    }

    /// The same lock, writing times from `clock` (for tests of skew).
    #[must_use]
    pub fn with_clock(mut self, clock: impl WallClock) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Reads the Lease and takes or renews it if this replica may.
    ///
    /// Creates a missing Lease; takes one that is free (empty holder) or that
    /// this lock has seen unchanged for its duration; renews one it holds.
    /// Losing a race to another writer is not an error: the result then says
    /// `acquired_lease: false` with the Lease as read again.
    ///
    /// # Errors
    /// A TTL that is not a whole number of seconds ([`Error::Config`]), or a
    /// request that failed or timed out.
    ///
    /// # Cancel safety
    /// Dropping the future may leave a write in flight: the Lease may then be
    /// ours without the result saying so. The next call reads it and renews
    /// it, so cancelling is safe as long as the caller calls again (or
    /// [`step_down`](Self::step_down)) before the TTL runs out.
    pub async fn try_acquire_or_renew(&self) -> Result<LeaseLockResult, Error> {
        let secs = self.ttl_secs()?;
        let timeout = self.params.lease_ttl;
        let now = Instant::now();
        let Some(lease) = self.api.get(timeout).await? else {
            let last = self
                .observed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Verdict::Wait { holder, .. } =
                record::judge_missing(last.as_ref(), None, &self.params.holder_id, now)
            {
                tracing::debug!(%holder, "the Lease was deleted while held; waiting out its holder's term");
                return Ok(LeaseLockResult::default());
            }
            let spec = record::acquire(None, &self.params.holder_id, secs, self.clock.now());
            return match self.api.create(spec, timeout).await {
                Ok(lease) => Ok(self.remember(lease, true)),
                Err(Error::Conflict { .. }) => self.reread(timeout).await,
                Err(e) => Err(e),
            };
        };
        let observed = {
            let mut slot = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
            let observed = Observed::update(slot.as_ref(), lease, now);
            *slot = Some(observed.clone());
            observed
        };
        let me = &self.params.holder_id;
        let holding = observed.holder() == Some(me.as_str());
        let spec = record::spec_of(&observed.lease);
        let (action, spec) = match record::judge(Some(&observed), me, holding, now) {
            Verdict::Renew => (
                Action::Renew,
                record::renew(spec, me, secs, self.clock.now()),
            ),
            Verdict::Acquire | Verdict::Create => (
                Action::Acquire,
                record::acquire(Some(spec), me, secs, self.clock.now()),
            ),
            Verdict::Wait { holder, .. } => {
                tracing::debug!(%holder, "the Lease is held and has not expired");
                return Ok(LeaseLockResult {
                    acquired_lease: false,
                    lease: Some(observed.lease),
                });
            }
        };
        match self
            .api
            .replace(action, &observed.lease, spec, timeout)
            .await
        {
            Ok(lease) => {
                tracing::debug!(?action, "Lease written");
                Ok(self.remember(lease, true))
            }
            Err(Error::Conflict { .. }) => self.reread(timeout).await,
            Err(e) => Err(e),
        }
    }

    /// Releases the Lease if this replica holds it, as client-go does
    /// (`holderIdentity: ""`, `leaseDurationSeconds: 1`), so another replica
    /// may take it at once.
    ///
    /// # Errors
    /// [`Error::NotHolder`] when another replica holds the Lease (or nobody
    /// does), [`Error::Conflict`] when it changed between the read and the
    /// write, or a request that failed.
    ///
    /// # Cancel safety
    /// Dropping the future may leave the release in flight; either way the
    /// Lease is released or still ours, never half-written (the write is one
    /// conditional request).
    pub async fn step_down(&self) -> Result<(), Error> {
        let timeout = self.params.lease_ttl.max(Duration::from_secs(1));
        let lease = self.api.get(timeout).await?;
        let holder = lease
            .as_ref()
            .and_then(|l| record::holder(record::spec_of(l)))
            .map(str::to_owned);
        let Some(lease) =
            lease.filter(|_| holder.as_deref() == Some(self.params.holder_id.as_str()))
        else {
            return Err(Error::NotHolder { holder });
        };
        let spec = record::release(record::spec_of(&lease), self.clock.now());
        let released = self
            .api
            .replace(Action::Release, &lease, spec, timeout)
            .await?;
        self.remember(released, false);
        Ok(())
    }

    fn ttl_secs(&self) -> Result<i32, Error> {
        let ttl = self.params.lease_ttl;
        if ttl.as_secs() == 0 || ttl.subsec_nanos() != 0 {
            return Err(
                ConfigError::single(ConfigProblem::LeaseDurationNotWholeSeconds {
                    lease_duration: ttl,
                })
                .into(),
            );
        }
        Ok(i32::try_from(ttl.as_secs()).unwrap_or(i32::MAX))
    }

    async fn reread(&self, timeout: Duration) -> Result<LeaseLockResult, Error> {
        let lease = self.api.get(timeout).await?;
        Ok(match lease {
            Some(lease) => self.remember(lease, false),
            None => LeaseLockResult::default(),
        })
    }

    fn remember(&self, lease: Lease, acquired: bool) -> LeaseLockResult {
        let mut slot = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
        let observed = Observed::update(slot.as_ref(), lease, Instant::now());
        let lease = observed.lease.clone();
        *slot = Some(observed);
        LeaseLockResult {
            acquired_lease: acquired,
            lease: Some(lease),
        }
    }
}
