//! The elector runtime: a background task that campaigns for, holds and
//! releases one Lease, and the handle its users hold.

mod handle;
mod handover;
mod leadership;
mod observer;
mod runner;
mod schedule;
mod telemetry;

pub use handle::{ElectorHandle, ElectorView, ShutdownOutcome};
pub(crate) use handover::Request as HandoverRequest;
pub use handover::{HandoverOutcome, Successor};
pub use leadership::Leadership;
pub use observer::{LeaderObserver, ObserverHandle};

use std::sync::Arc;

use kube::Client;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::api::LeaseApi;
use crate::candidate::{Candidate, Claim, Declared};
use crate::config::{ElectorConfig, Settings};
use crate::error::{ConfigError, ConfigProblem};
use crate::shared::Shared;
use crate::state::LeaderState;
use crate::watch::{Inbox, Scope, SharedWatch, Timing, ToMailbox, Watch};

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
    /// The shared watch (a hub's namespace watch) this elector joins;
    /// `None`: it watches its own Lease.
    hub: Option<Arc<dyn SharedWatch>>,
    /// Whether it may write to take the Lease, switched at run time (a
    /// sharded elector campaigns only for the shards assigned to it);
    /// `None`: always, as configured.
    campaign: Option<watch::Receiver<bool>>,
    /// In coordinated election, this process's claim on the candidate
    /// name (the identity) for this Lease; the candidate task keeps it.
    claim: Option<Claim>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("namespace", &self.namespace)
            .field("lease_name", &self.lease_name)
            .field("settings", &self.settings)
            .field("shared_watch", &self.hub.is_some())
            .finish_non_exhaustive()
    }
}

// === impl LeaderElector ===

impl LeaderElector {
    /// Validates `config` and resolves its defaults: the identity (`POD_NAME`
    /// or the hostname, plus a random suffix) and the namespace
    /// (`POD_NAMESPACE`, the service-account namespace file, or the client's
    /// default namespace).
    ///
    /// In coordinated election ([`ElectorConfig::coordinated`]), an
    /// identity that another elector of this process declares as the
    /// candidate of another Lease in the same namespace is refused (see
    /// [`ConfigProblem::CandidateNameInUse`](crate::error::ConfigProblem::CandidateNameInUse)).
    ///
    /// # Errors
    /// A [`ConfigError`] listing every invalid value.
    pub fn new(client: Client, config: ElectorConfig) -> Result<Self, ConfigError> {
        let (namespace, settings) = config.resolve(client.default_namespace())?;
        let claim = match &settings.coordination {
            Some(_) if settings.campaign => Some(
                Claim::take(&namespace, &settings.identity, &config.lease_name).map_err(
                    |lease| {
                        ConfigError::single(ConfigProblem::CandidateNameInUse {
                            identity: settings.identity.clone(),
                            namespace: namespace.clone(),
                            lease,
                        })
                    },
                )?,
            ),
            _ => None,
        };
        Ok(Self {
            client,
            namespace,
            lease_name: config.lease_name,
            settings: Arc::new(settings),
            hub: None,
            campaign: None,
            claim,
        })
    }

    /// Watches through `hub` instead of alone.
    pub(crate) fn in_hub(self, hub: Arc<dyn SharedWatch>) -> Self {
        Self {
            hub: Some(hub),
            ..self
        }
    }

    /// Campaigns only while `switch` says `true`: while it is off, the
    /// elector follows the Lease as an observer does (keeping the moment it
    /// observed each record, so that switching on judges expiry from it) and
    /// writes nothing to take it; a term it holds still renews until it
    /// ends or is handed over.
    pub(crate) fn campaign_while(self, switch: watch::Receiver<bool>) -> Self {
        Self {
            campaign: Some(switch),
            ..self
        }
    }

    /// The identity this elector writes as `holderIdentity`.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.settings.identity
    }

    /// The `LeaseCandidate` task of coordinated election, if configured.
    fn candidate(&mut self, span: &tracing::Span) -> Option<Candidate> {
        let versions = self.settings.coordination.clone()?;
        if !self.settings.campaign {
            return None;
        }
        Some(Candidate::spawn(
            self.client.clone(),
            self.claim.take(),
            Declared {
                namespace: self.namespace.clone(),
                lease_name: self.lease_name.clone(),
                identity: self.settings.identity.clone(),
                versions,
                request_timeout: self.settings.request_timeout,
                margin: self
                    .settings
                    .lease_duration
                    .saturating_sub(self.settings.renew_deadline),
                clock: Arc::clone(&self.settings.clock),
            },
            span.clone(),
        ))
    }

    /// The namespace of the Lease, as resolved from the configuration,
    /// `POD_NAMESPACE`, the service-account namespace file or the client's
    /// default namespace: what a program that runs work for this elector
    /// (the `kube-elector` command's child) is told.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
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
    pub fn spawn_with_token(mut self, token: &CancellationToken) -> ElectorHandle {
        let token = token.child_token();
        let span = tracing::info_span!(
            "leader_election",
            lease = %self.lease_name,
            namespace = %self.namespace,
            identity = %self.settings.identity,
        );
        let candidate = self.candidate(&span);
        let mut api = LeaseApi::new(self.client.clone(), &self.namespace, &self.lease_name)
            .annotated(&self.settings.annotations);
        if let Some(hub) = &self.hub {
            api = api.limited(hub.limit());
        }
        let (state_tx, state_rx) = watch::channel(LeaderState::initial());
        let shared = Arc::new(Shared::default());
        let (inbox, mailbox) = Inbox::new();
        let line = if let Some(hub) = &self.hub {
            Some(hub.join(
                &self.namespace,
                &self.lease_name,
                &self.settings.identity,
                self.settings.campaign,
                mailbox,
            ))
        } else {
            let watch = Watch::new(
                self.client,
                &self.namespace,
                Scope::Lease(self.lease_name.clone()),
                None,
                Timing {
                    retry: self.settings.retry_period,
                    request_timeout: self.settings.request_timeout,
                },
            );
            let sink = ToMailbox::new(mailbox, self.settings.retry_period);
            tokio::spawn(
                watch
                    .run(sink, token.child_token())
                    .instrument(span.clone()),
            );
            None
        };
        let telemetry =
            span.in_scope(|| telemetry::Telemetry::new(Arc::clone(&shared), &self.settings, &api));
        let runner = runner::Runner::new(
            api,
            telemetry,
            Arc::clone(&self.settings),
            Arc::clone(&shared),
            state_tx,
            token.clone(),
            runner::Feed {
                inbox,
                line,
                candidate,
                campaign: self.campaign,
            },
        );
        let task = tokio::spawn(runner.run().instrument(span));
        ElectorHandle {
            view: ElectorView {
                identity: Arc::from(self.settings.identity.as_str()),
                drain_timeout: self.settings.drain_timeout,
                overdue_work: self.settings.overdue_work,
                state: state_rx,
                shared,
            },
            lease_duration: self.settings.lease_duration,
            task,
            shutdown_on_drop: token.drop_guard(),
        }
    }
}
