//! The low-level lock, with the API of `kube-leader-election`'s `LeaseLock`
//! but conditional writes and expiry judged from the local clock.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use tokio::time::Instant;

use crate::api::LeaseApi;
use crate::clock::{SystemClock, WallClock};
use crate::config::{dns1123_label, dns1123_subdomain};
use crate::error::{ConfigError, ConfigProblem};
use crate::error::{Error, LeaseOperation};
use crate::record::{self, Observed, Own, TermRecord, Verdict};
use crate::successor;

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
    /// Whether this replica held the Lease when the call returned.
    pub acquired_lease: bool,
    /// The Lease as last read or written, if there is one.
    pub lease: Option<Lease>,
    /// Until when this replica may act as leader (local monotonic clock),
    /// unless a later call extends it: two thirds of the TTL (client-go's
    /// 10 s of 15) after the write that took or renewed the Lease was sent.
    /// Other replicas count the TTL from a later moment (when they observe
    /// the write), so they cannot take over before then. `None` when not
    /// holding.
    pub valid_until: Option<Instant>,
}

impl LeaseLockResult {
    /// Whether this replica may act as leader now: it holds the Lease and
    /// [`valid_until`](Self::valid_until) has not passed. Check it before
    /// each piece of leader work, not once per poll: a poll that hangs does
    /// not end a term, the TTL does.
    #[must_use]
    pub fn is_leading(&self) -> bool {
        self.acquired_lease && self.valid_until.is_some_and(|until| Instant::now() < until)
    }
}

/// What a lock remembers between calls.
#[derive(Debug, Default)]
struct LockState {
    observed: Option<Observed>,
    /// The record of the term this lock holds, and until when.
    term: Option<(TermRecord, Instant)>,
    /// Records this lock wrote: a Lease that carries one is its own.
    written: Vec<TermRecord>,
}

impl LockState {
    fn own(&self) -> Own<'_> {
        Own {
            leading: self.term.as_ref().map(|(record, _)| record),
            written: &self.written,
            adopt: false,
        }
    }

    fn remember(&mut self, record: TermRecord) {
        if !self.written.contains(&record) {
            if self.written.len() == 4 {
                self.written.remove(0);
            }
            self.written.push(record);
        }
    }
}

/// A Lease lock to be polled: call [`try_acquire_or_renew`] every fraction of
/// the TTL (a quarter, say) and act as leader while the last result
/// [`is_leading`](LeaseLockResult::is_leading) (it holds the Lease and its
/// [`valid_until`](LeaseLockResult::valid_until) has not passed).
///
/// A drop-in for `kube_leader_election::LeaseLock`, with two differences a
/// migrating user only notices under contention: every write is conditional
/// on the `resourceVersion` it was based on, so two replicas that saw the
/// same expired Lease never both win; and a Lease counts as expired when this
/// lock has seen it unchanged for its duration, not by comparing the remote
/// `renewTime` with the local clock, so clock skew cannot cause a takeover.
/// (A lock that has not yet seen a held Lease therefore waits one full TTL
/// before taking it over; so does a lock that finds the Lease naming its
/// `holder_id` in a term it did not write, say after a restart with a stable
/// pod name: another instance may still act on it.)
///
/// One call is bounded as a whole by two thirds of the TTL, however many
/// requests it sends, and a term is valid for two thirds of the TTL from
/// the moment the write that took or renewed it was sent.
///
/// For a background loop with events and a renew deadline, use
/// [`LeaderElector`](crate::LeaderElector).
///
/// ```no_run
/// use std::time::Duration;
/// use kube_elector::lock::{LeaseLock, LeaseLockParams};
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
/// println!("currently leading: {}", lease.is_leading());
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
    state: Mutex<LockState>,
    clock: Box<dyn WallClock>,
}

impl LeaseLock {
    /// A lock on Lease `params.lease_name` in `namespace`.
    #[must_use]
    pub fn new(client: Client, namespace: &str, params: LeaseLockParams) -> Self {
        Self {
            api: LeaseApi::new(client, namespace, &params.lease_name),
            params,
            state: Mutex::default(),
            clock: Box::new(SystemClock),
        }
    }

    /// A lock on Lease `params.lease_name` in `namespace`, refusing up front
    /// what [`new`](Self::new) would only report on the first call: a TTL
    /// that is not a whole, positive number of seconds, an invalid Lease
    /// name or namespace, an empty holder id.
    ///
    /// # Errors
    /// A [`ConfigError`] listing every problem.
    pub fn try_new(
        client: Client,
        namespace: &str,
        params: LeaseLockParams,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        for (field, value, check) in [
            (
                "lease_name",
                &params.lease_name,
                dns1123_subdomain as fn(&str) -> Result<(), String>,
            ),
            ("namespace", &namespace.to_owned(), dns1123_label),
        ] {
            if let Err(reason) = check(value) {
                problems.push(ConfigProblem::InvalidName {
                    field,
                    value: value.clone(),
                    reason,
                });
            }
        }
        if params.holder_id.is_empty() {
            problems.push(ConfigProblem::EmptyIdentity);
        }
        let ttl = params.lease_ttl;
        if ttl.is_zero() || ttl.subsec_nanos() != 0 || ttl.as_secs() > i32::MAX as u64 {
            problems.push(ConfigProblem::LeaseDurationNotWholeSeconds {
                lease_duration: ttl,
            });
        }
        ConfigError::from_problems(problems)?;
        Ok(Self::new(client, namespace, params))
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
        let validity = record::lock_validity(self.params.lease_ttl);
        let budget = Budget(record::after(Instant::now(), validity));
        let read_at = Instant::now();
        let Some(lease) = self.api.get(budget.left()).await? else {
            return self.create_missing(secs, &budget, read_at).await;
        };
        let (observed, verdict) = {
            let mut state = self.lock_state();
            let observed = Observed::update(state.observed.as_ref(), lease, read_at);
            state.observed = Some(observed.clone());
            let verdict = record::judge(
                Some(&observed),
                &self.params.holder_id,
                state.own(),
                read_at,
            );
            if !matches!(verdict, Verdict::Renew) {
                state.term = None;
            }
            (observed, verdict)
        };
        let previous = record::spec_of(&observed.lease);
        let me = &self.params.holder_id;
        let Some((action, spec)) =
            record::write_for(&verdict, Some(previous), me, secs, self.clock.now())
        else {
            tracing::debug!("the Lease is held and has not expired");
            return Ok(LeaseLockResult {
                lease: Some(observed.lease),
                ..LeaseLockResult::default()
            });
        };
        self.lock_state().remember(TermRecord::of(&spec));
        let sent = Instant::now();
        match self
            .api
            .replace(
                action,
                successor::to_write(&observed.lease, spec, None),
                budget.left(),
            )
            .await
        {
            Ok(lease) => {
                tracing::debug!(?action, "Lease written");
                let based_on = observed.lease.metadata.resource_version.as_deref();
                Ok(self.took(lease, based_on, sent))
            }
            Err(Error::Conflict { .. }) => self.reread(&budget).await,
            Err(e) => Err(e),
        }
    }

    /// The Lease is missing (as read at `read_at`): create it, unless it was
    /// deleted while another holder's term may still run.
    async fn create_missing(
        &self,
        secs: i32,
        budget: &Budget,
        read_at: Instant,
    ) -> Result<LeaseLockResult, Error> {
        let verdict = {
            let state = self.lock_state();
            record::judge_missing(
                state.observed.as_ref(),
                None,
                &self.params.holder_id,
                state.own(),
                read_at,
            )
        };
        if let Verdict::Wait { holder, .. } = verdict {
            tracing::debug!(%holder, "the Lease was deleted while held; waiting out its holder's term");
            return Ok(LeaseLockResult::default());
        }
        let Some((_, spec)) = record::write_for(
            &Verdict::Create,
            None,
            &self.params.holder_id,
            secs,
            self.clock.now(),
        ) else {
            return Ok(LeaseLockResult::default());
        };
        self.lock_state().remember(TermRecord::of(&spec));
        let sent = Instant::now();
        match self.api.create(spec, budget.left()).await {
            Ok(lease) => Ok(self.took(lease, None, sent)),
            Err(Error::Conflict { .. }) => self.reread(budget).await,
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
        let ours = |lease: &Lease| {
            holder.as_deref() == Some(self.params.holder_id.as_str())
                && self
                    .lock_state()
                    .written
                    .contains(&TermRecord::of(record::spec_of(lease)))
        };
        let Some(lease) = lease.filter(ours) else {
            return Err(Error::NotHolder { holder });
        };
        let spec = record::release(record::spec_of(&lease), self.clock.now());
        let released = self
            .api
            .replace(
                LeaseOperation::Release,
                successor::to_write(&lease, spec, None),
                timeout,
            )
            .await?;
        let mut state = self.lock_state();
        state.term = None;
        let observed = Observed::update(state.observed.as_ref(), released, Instant::now());
        state.observed = Some(observed);
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

    fn lock_state(&self) -> std::sync::MutexGuard<'_, LockState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn reread(&self, budget: &Budget) -> Result<LeaseLockResult, Error> {
        let lease = self.api.get(budget.left()).await?;
        let mut state = self.lock_state();
        state.term = None;
        Ok(match lease {
            Some(lease) => {
                let observed = Observed::update(state.observed.as_ref(), lease, Instant::now());
                state.observed = Some(observed.clone());
                LeaseLockResult {
                    lease: Some(observed.lease),
                    ..LeaseLockResult::default()
                }
            }
            None => LeaseLockResult::default(),
        })
    }

    /// The write sent at `sent`, based on `based_on`, was answered with
    /// `lease`: the term runs from `sent` if the write changed the record
    /// (a no-op extends nothing), and holds while its validity lasts.
    fn took(&self, lease: Lease, based_on: Option<&str>, sent: Instant) -> LeaseLockResult {
        let changed = record::write_changed(based_on, lease.metadata.resource_version.as_deref());
        let now = Instant::now();
        let mut state = self.lock_state();
        let observed = Observed::update(state.observed.as_ref(), lease, now);
        let record = observed.term_record();
        let previous = state
            .term
            .as_ref()
            .filter(|(held, _)| *held == record)
            .map(|(_, until)| *until);
        let until = if changed {
            Some(record::after(
                sent,
                record::lock_validity(self.params.lease_ttl),
            ))
        } else {
            previous
        };
        let lease = observed.lease.clone();
        state.observed = Some(observed);
        state.term = until.map(|until| (record, until));
        let acquired = until.is_some_and(|until| now < until);
        LeaseLockResult {
            acquired_lease: acquired,
            lease: Some(lease),
            valid_until: until.filter(|_| acquired),
        }
    }
}

/// The time left for one call, shared by its requests.
struct Budget(Instant);

impl Budget {
    fn left(&self) -> Duration {
        self.0
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    }
}
