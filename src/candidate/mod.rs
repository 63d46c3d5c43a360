//! Coordinated leader election (KEP-4355): the `LeaseCandidate` an elector
//! declares itself in, kept renewed beside its election loop.
//!
//! A task of its own, so that the election loop never waits on it: it
//! learns once whether the API server serves `coordination.k8s.io/v1beta1`
//! (404: the plain election goes on, said once), creates the candidate,
//! renews it when the controller pings it (`pingTime` newer than
//! `renewTime`, seen through a watch of that one object) and every 5
//! minutes otherwise (client-go's cadence), withdraws it for a handover,
//! and deletes it when the elector stops. Every answer's `Date` header
//! tells how far the API server's clock is from this elector's; the
//! controller judges expiry on the server's clock, so a lag past the
//! safety margin is said in the logs.

mod claim;
mod lag;
mod object;
pub(crate) mod version;

pub(crate) use claim::Claim;
use lag::Lag;
pub(crate) use object::Declared;
use object::{declaration, pinged, resource};

use std::time::Duration;

use futures::TryStreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{DeleteParams, DynamicObject, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use crate::watch::Backoff;

/// How often a candidate renews without being pinged (client-go's).
const RENEW_EVERY: Duration = Duration::from_secs(300);

/// The group version that serves `LeaseCandidate`.
const GROUP_VERSION: &str = "coordination.k8s.io/v1beta1";

/// How long a watch of the candidate stays open.
const WATCH_TIMEOUT_SECS: u32 = 290;

/// Where the candidate stands, as the election loop reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Not known yet whether the API server serves `LeaseCandidate`.
    Unknown,
    /// It does not: the plain election runs.
    NotServed,
    /// Declared, and kept renewed.
    Registered,
    /// Withdrawn for a handover (the controller must not pick this elector).
    Withdrawn,
    /// Not declared: the `LeaseCandidate` of this name names another Lease
    /// (an elector of another process with this identity declared it). The
    /// plain election runs until that candidate is gone.
    NameTaken,
}

/// What the election loop asks of the candidate task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Registered,
    /// Withdrawn until then (or until asked to register again).
    WithdrawnUntil(Instant),
    /// Deleted, and the task ends.
    Gone,
}

/// The candidate task, as the election loop holds it.
#[derive(Debug)]
pub(crate) struct Candidate {
    want: watch::Sender<Want>,
    standing: watch::Receiver<Standing>,
    task: JoinHandle<()>,
}

impl Candidate {
    /// Starts the task; it keeps `claim` (this process's claim on the
    /// name) until it ends.
    pub(crate) fn spawn(
        client: Client,
        claim: Option<Claim>,
        declared: Declared,
        span: tracing::Span,
    ) -> Self {
        let (want, wants) = watch::channel(Want::Registered);
        let (standing_tx, standing) = watch::channel(Standing::Unknown);
        let task = Task {
            api: Api::namespaced_with(client.clone(), &declared.namespace, &resource()),
            client,
            lag: Lag::new(declared.margin),
            declared,
            wants,
            standing: standing_tx,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            taken_reported: false,
            _claim: claim,
        };
        Self {
            want,
            standing,
            task: tokio::spawn(tracing::Instrument::instrument(task.run(), span)),
        }
    }

    pub(crate) fn standing(&self) -> Standing {
        *self.standing.borrow()
    }

    /// Withdraws the candidate until `until` (or [`rejoin`](Self::rejoin)),
    /// and waits (at most `patience`) until it is deleted.
    pub(crate) async fn withdraw(&self, until: Instant, patience: Duration) {
        self.want.send_replace(Want::WithdrawnUntil(until));
        let mut standing = self.standing.clone();
        let _ = timeout(
            patience,
            standing.wait_for(|s| matches!(s, Standing::Withdrawn | Standing::NotServed)),
        )
        .await;
    }

    /// Declares the candidate again after a withdrawal.
    pub(crate) fn rejoin(&self) {
        self.want.send_if_modified(|want| {
            let withdrawn = matches!(want, Want::WithdrawnUntil(_));
            if withdrawn {
                *want = Want::Registered;
            }
            withdrawn
        });
    }

    /// Deletes the candidate and ends the task (waiting at most `patience`).
    pub(crate) async fn leave(self, patience: Duration) {
        self.want.send_replace(Want::Gone);
        let mut task = self.task;
        if timeout(patience, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// Why a request of the task failed (its cause kept, for the logs and for
/// telling a 404 apart).
#[derive(Debug)]
enum Failure {
    Api(kube::Error),
    Timeout(Duration),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api(kube::Error::Api(status)) => {
                write!(f, "{} {}: {}", status.code, status.reason, status.message)
            }
            Self::Api(error) => write!(f, "{error}"),
            Self::Timeout(limit) => write!(f, "no answer within {limit:?}"),
        }
    }
}

/// Why a step of the task ended early.
enum Interrupted {
    /// What the loop wants changed.
    Want,
    /// A request failed (said in the logs).
    Failed,
    /// The candidate of this name names another Lease (said in the logs).
    NameTaken,
}

struct Task {
    client: Client,
    api: Api<DynamicObject>,
    declared: Declared,
    wants: watch::Receiver<Want>,
    standing: watch::Sender<Standing>,
    /// Requests that failed in a row (the first is a warning), and the
    /// pause they call for: 1 s doubling to 60 s.
    backoff: Backoff,
    /// Whether a clock lag was said.
    lag: Lag,
    /// Whether the name's being taken by another Lease's candidate was
    /// said (at error), since this elector last declared itself.
    taken_reported: bool,
    /// This process's claim on the name, given up when the task ends.
    _claim: Option<Claim>,
}

impl Task {
    async fn run(mut self) {
        if !self.served().await {
            return;
        }
        loop {
            if self.wants.has_changed().is_err() {
                // The election loop is gone (its task ended): so is this.
                self.delete().await;
                return;
            }
            let want = *self.wants.borrow_and_update();
            match want {
                Want::Gone => {
                    self.delete().await;
                    return;
                }
                Want::WithdrawnUntil(until) if Instant::now() < until => {
                    self.delete().await;
                    self.standing.send_replace(Standing::Withdrawn);
                    tokio::select! {
                        _ = self.wants.changed() => {}
                        () = tokio::time::sleep_until(until) => {
                            tracing::debug!("nobody took the Lease within the handover's bound: declaring the candidate again");
                        }
                    }
                }
                Want::Registered | Want::WithdrawnUntil(_) => {
                    if let Err(Interrupted::Failed | Interrupted::NameTaken) =
                        self.register_and_keep().await
                    {
                        self.back_off().await;
                    }
                }
            }
        }
    }

    /// Whether the API server serves `LeaseCandidate`, asked until it
    /// answers (or the elector stops).
    async fn served(&mut self) -> bool {
        loop {
            match self.probe().await {
                Ok(true) => return true,
                Ok(false) => {
                    tracing::info!(
                        "the API server does not serve {GROUP_VERSION} LeaseCandidate (the \
                         CoordinatedLeaderElection feature gate is off): running the plain election"
                    );
                    self.standing.send_replace(Standing::NotServed);
                    return false;
                }
                Err(error) => self.failed("discover LeaseCandidate", &error),
            }
            let pause = sleep(self.backoff.pause());
            tokio::select! {
                () = pause => {}
                _ = self.wants.wait_for(|w| *w == Want::Gone) => return false,
            }
        }
    }

    /// Asks discovery whether `leasecandidates` is served, and measures the
    /// clock offset from the answer's `Date`.
    async fn probe(&mut self) -> Result<bool, String> {
        let request = http::Request::get(format!("/apis/{GROUP_VERSION}"))
            .body(kube::client::Body::empty())
            .map_err(|e| e.to_string())?;
        let sent = self.declared.clock.now();
        let response = timeout(self.declared.request_timeout, self.client.send(request))
            .await
            .map_err(|_| "no answer in time".to_owned())?
            .map_err(|e| e.to_string())?;
        let answered = self.declared.clock.now();
        if let Some(date) = response.headers().get(http::header::DATE) {
            self.lag
                .saw_date(date.to_str().unwrap_or_default(), sent, answered);
        }
        let status = response.status();
        if status == http::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        if !status.is_success() {
            return Err(format!("discovery answered {status}"));
        }
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let list: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        Ok(list["resources"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["name"] == "leasecandidates")))
    }

    /// Declares the candidate (or renews the one found), then renews it on
    /// each ping and every 5 minutes, until what the loop wants changes.
    async fn register_and_keep(&mut self) -> Result<(), Interrupted> {
        let mut current = self.ensure().await?;
        self.standing.send_replace(Standing::Registered);
        loop {
            let version = current
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default();
            let params = WatchParams::default()
                .fields(&format!("metadata.name={}", self.declared.identity))
                .timeout(WATCH_TIMEOUT_SECS);
            let stream = match self.api.watch(&params, &version).await {
                Ok(stream) => stream,
                Err(error) => {
                    self.failed("watch the LeaseCandidate", &error);
                    return Err(Interrupted::Failed);
                }
            };
            let renew_at = sleep(RENEW_EVERY);
            tokio::pin!(stream, renew_at);
            loop {
                tokio::select! {
                    _ = self.wants.changed() => return Err(Interrupted::Want),
                    () = &mut renew_at => {
                        current = self.renew(&current).await?;
                        renew_at.as_mut().reset(Instant::now() + RENEW_EVERY);
                    }
                    event = stream.try_next() => match event {
                        Ok(Some(WatchEvent::Modified(object) | WatchEvent::Added(object))) => {
                            self.check_lease(&object)?;
                            if let Some(ping) = pinged(&object) {
                                tracing::debug!("pinged by the coordinating controller");
                                self.lag.saw_ping(ping, self.declared.clock.now());
                                current = self.renew_after(&object, Some(ping)).await?;
                            } else {
                                current = object;
                            }
                        }
                        Ok(Some(WatchEvent::Deleted(_))) => {
                            // Removed by someone else (or collected as
                            // expired): declared again.
                            current = self.ensure().await?;
                        }
                        Ok(Some(WatchEvent::Bookmark(_))) => {}
                        Ok(Some(WatchEvent::Error(_))) | Err(_) => {
                            current = self.ensure().await?;
                            break;
                        }
                        Ok(None) => break,
                    },
                }
            }
        }
    }

    /// The candidate, created if missing, renewed if found (unless it
    /// names another Lease).
    async fn ensure(&mut self) -> Result<DynamicObject, Interrupted> {
        let name = &self.declared.identity;
        match self.bounded(self.api.get_opt(name)).await {
            Ok(Some(found)) => {
                self.check_lease(&found)?;
                self.renew(&found).await
            }
            Ok(None) => {
                let object = self.declaration();
                match self
                    .bounded(self.api.create(&PostParams::default(), &object))
                    .await
                {
                    Ok(created) => {
                        self.answered();
                        self.taken_reported = false;
                        tracing::info!(
                            lease = %self.declared.lease_name,
                            "declared as a LeaseCandidate for coordinated election"
                        );
                        Ok(created)
                    }
                    Err(error) => {
                        self.failed("create the LeaseCandidate", &error);
                        Err(Interrupted::Failed)
                    }
                }
            }
            Err(error) => {
                self.failed("read the LeaseCandidate", &error);
                Err(Interrupted::Failed)
            }
        }
    }

    /// Fails with `NameTaken` (said once at error, until this elector
    /// declares itself again) when `object` (the candidate of this name)
    /// names another Lease: another elector with this identity, in another
    /// process, declared it. It is left alone: kube-apiserver keeps
    /// `leaseName` immutable, and overwriting it would take the other
    /// Lease's candidate away. Meanwhile this elector is not declared (the
    /// plain election runs), and it looks again after a back-off.
    fn check_lease(&mut self, object: &DynamicObject) -> Result<(), Interrupted> {
        let named = object.data["spec"]["leaseName"]
            .as_str()
            .unwrap_or_default();
        if named == self.declared.lease_name {
            return Ok(());
        }
        self.standing.send_replace(Standing::NameTaken);
        if self.taken_reported {
            tracing::debug!(other = %named, "the LeaseCandidate still names another Lease");
        } else {
            self.taken_reported = true;
            tracing::error!(
                other = %named,
                candidate = %self.declared.identity,
                "the LeaseCandidate {} names the Lease {named:?}, not this one: another elector \
                 with this identity is the candidate of another Lease (the coordinating controller \
                 writes the candidate's name as the holder, so one identity cannot stand for two \
                 Leases); leaving it alone, running the plain election, and declaring this elector \
                 once that candidate is gone. Give each Lease's elector an identity of its own",
                self.declared.identity
            );
        }
        // Looked at again after the back-off, which grows as failures do.
        self.backoff.fail();
        Err(Interrupted::NameTaken)
    }

    /// Renews `found` (conditional on its version): `renewTime` = now, the
    /// declared versions restored.
    async fn renew(&mut self, found: &DynamicObject) -> Result<DynamicObject, Interrupted> {
        self.renew_after(found, None).await
    }

    /// Renews `found`, answering `ping`: the controller counts the answer
    /// only if `renewTime` is not before `pingTime` (its own clock), so a
    /// clock that lags writes the ping's time instead of its own (and is
    /// said to lag: see `Lag::saw_ping`). Otherwise the answer would never
    /// count, and each renew would look like a ping not yet answered.
    async fn renew_after(
        &mut self,
        found: &DynamicObject,
        ping: Option<Timestamp>,
    ) -> Result<DynamicObject, Interrupted> {
        let mut object = self.declaration();
        if let Some(ping) = ping
            && let Some(renew) = object.data["spec"]["renewTime"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok())
            && renew < ping
        {
            object.data["spec"]["renewTime"] = serde_json::json!(MicroTime(ping));
        }
        object.metadata = found.metadata.clone();
        object.metadata.managed_fields = None;
        match self
            .bounded(
                self.api
                    .replace(&self.declared.identity, &PostParams::default(), &object),
            )
            .await
        {
            Ok(renewed) => {
                self.answered();
                Ok(renewed)
            }
            Err(error) => {
                self.failed("renew the LeaseCandidate", &error);
                Err(Interrupted::Failed)
            }
        }
    }

    async fn delete(&mut self) {
        if *self.standing.borrow() != Standing::Registered {
            return;
        }
        match self
            .bounded(
                self.api
                    .delete(&self.declared.identity, &DeleteParams::default()),
            )
            .await
        {
            Ok(_) => tracing::debug!("deleted the LeaseCandidate"),
            Err(Failure::Api(kube::Error::Api(status))) if status.code == 404 => {}
            Err(error) => self.failed("delete the LeaseCandidate", &error),
        }
    }

    fn declaration(&self) -> DynamicObject {
        declaration(&self.declared)
    }

    async fn bounded<T>(
        &self,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, Failure> {
        match timeout(self.declared.request_timeout, request).await {
            Ok(answer) => answer.map_err(Failure::Api),
            Err(_) => Err(Failure::Timeout(self.declared.request_timeout)),
        }
    }

    fn answered(&mut self) {
        if self.backoff.failing() {
            tracing::info!("the LeaseCandidate is kept again");
            self.backoff.reset();
        }
    }

    fn failed(&mut self, what: &str, error: &dyn std::fmt::Display) {
        if self.backoff.fail() {
            tracing::warn!(
                %error,
                "could not {what}: retrying (the election itself goes on; further failures in a \
                 row are logged at debug)"
            );
        } else {
            tracing::debug!(%error, "could not {what} again");
        }
    }

    /// Waits before the next attempt, as long as the failures in a row
    /// call for.
    async fn back_off(&self) {
        sleep(self.backoff.pause()).await;
    }
}
