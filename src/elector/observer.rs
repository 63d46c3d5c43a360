//! Following who leads without campaigning.

use std::sync::Arc;

use kube::Client;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{ElectorHandle, LeaderElector};
use crate::config::ObserverConfig;
use crate::error::ConfigError;
use crate::error::Error;
use crate::state::{LeaderEvents, LeaderState};

/// Follows who leads a Lease without ever campaigning: for a process that
/// routes requests to the leader, or shows it in a UI.
///
/// It watches the Lease as an elector's follower does and judges expiry by
/// the same rules (a holder whose record has not changed for its duration,
/// counted from the moment this observer saw it, leads no more), and it
/// sends no write at all: only a list and a watch (or, when watching fails,
/// a read every retry period).
///
/// ```no_run
/// use kube_elector::observer::{LeaderObserver, ObserverConfig};
///
/// # async fn run() -> anyhow::Result<()> {
/// let client = kube::Client::try_default().await?;
/// let observer = LeaderObserver::new(client, ObserverConfig::new("my-operator"))?.spawn();
/// observer.ready().await; // the first read: `None` now means nobody leads
/// let mut leader = observer.subscribe();
/// loop {
///     println!("the leader is {:?}", leader.borrow_and_update().leader);
///     leader.changed().await?;
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct LeaderObserver {
    elector: LeaderElector,
}

impl LeaderObserver {
    /// Validates `config` and resolves the namespace as
    /// [`LeaderElector::new`] does.
    ///
    /// # Errors
    /// A [`ConfigError`] listing every invalid value.
    pub fn new(client: Client, config: ObserverConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let config = config.into_elector();
        let (namespace, mut settings) = config.resolve(client.default_namespace())?;
        settings.campaign = false;
        settings.release_on_cancel = false;
        Ok(Self {
            elector: LeaderElector {
                client,
                namespace,
                lease_name: config.lease_name,
                settings: Arc::new(settings),
                hub: None,
                campaign: None,
                claim: None,
            },
        })
    }

    /// Watches through `hub` instead of alone.
    pub(crate) fn in_hub(self, hub: Arc<dyn crate::watch::SharedWatch>) -> Self {
        Self {
            elector: self.elector.in_hub(hub),
        }
    }

    /// Starts following, until the handle is dropped or shut down.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn(self) -> ObserverHandle {
        self.spawn_with_token(&CancellationToken::new())
    }

    /// Starts following, until `token` (or a parent of it) is cancelled.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn_with_token(self, token: &CancellationToken) -> ObserverHandle {
        ObserverHandle {
            inner: self.elector.spawn_with_token(token),
        }
    }
}

/// The handle of a running [`LeaderObserver`]. Dropping it stops the
/// observer.
#[must_use = "dropping the handle stops the observer"]
#[derive(Debug)]
pub struct ObserverHandle {
    inner: ElectorHandle,
}

impl ObserverHandle {
    /// Who leads now, as last observed (`None`: nobody, or not known yet;
    /// [`has_read`](Self::has_read) tells the two apart).
    #[must_use]
    pub fn leader(&self) -> Option<String> {
        self.inner.state().leader
    }

    /// Whether the observer has read the Lease (or learnt that it does not
    /// exist) at least once: until then, a `leader` of `None` means "not
    /// known yet", not "nobody leads".
    #[must_use]
    pub fn has_read(&self) -> bool {
        self.inner.view.shared.has_observed()
    }

    /// Waits until the observer has read the Lease (or learnt that it does
    /// not exist) once, at once if it has: from then on
    /// [`leader`](Self::leader) and [`subscribe`](Self::subscribe) say who
    /// leads, `None` meaning nobody.
    ///
    /// It waits as long as the API server cannot be reached: add a timeout
    /// of your own (`tokio::time::timeout`). The state of that first read
    /// is published a moment after `ready` may complete: a receiver from
    /// [`subscribe`](Self::subscribe) sees it as a change if it was not
    /// there yet.
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits.
    pub async fn ready(&self) {
        self.inner.view.shared.first_read().await;
    }

    /// A receiver of the state, woken on each change of leader. Its `term`
    /// is always `None`: an observer never leads.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<LeaderState> {
        self.inner.subscribe()
    }

    /// The changes of leader as a [`Stream`](futures::Stream) of
    /// [`NewLeader`](crate::LeaderEvent::NewLeader) events, starting with
    /// the current leader, if known (see [`LeaderEvents`]).
    pub fn events(&self) -> LeaderEvents {
        self.inner.events()
    }

    /// Stops the observer and waits for it.
    ///
    /// # Errors
    /// The observer's task ended abnormally ([`Error::Task`]).
    ///
    /// # Cancel safety
    /// The observer stops whether or not the future is polled to the end.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.inner.shutdown().await.map(drop)
    }
}
