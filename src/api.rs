//! The requests an elector sends: each one bounded by a timeout, every write
//! conditional on the `resourceVersion` it was based on.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ListParams, ObjectList, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::error::{Error, LeaseOperation};

/// How long one watch request may stay open (as kube-runtime's watcher).
const WATCH_TIMEOUT_SECS: u32 = 290;

/// How many Leases one page of a namespace's list carries.
const LIST_PAGE: u32 = 500;

/// One Lease, addressed by namespace and name.
#[derive(Clone)]
pub(crate) struct LeaseApi {
    api: Api<Lease>,
    namespace: String,
    name: String,
    /// Shared by the electors of a hub: how many of their requests may be
    /// in flight at once (each is a connection over HTTP/1).
    limit: Option<Arc<Semaphore>>,
    /// Set on the Lease by every create and replace.
    annotations: Arc<[(String, String)]>,
    /// Merged into the Lease's labels by every create and replace.
    labels: Arc<[(String, String)]>,
    /// Added to the Lease's owner references (by uid) by every create and
    /// replace.
    owners: Arc<[OwnerReference]>,
}

impl std::fmt::Debug for LeaseApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeaseApi({}/{})", self.namespace, self.name)
    }
}

impl LeaseApi {
    pub(crate) fn new(client: Client, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            limit: None,
            annotations: Arc::new([]),
            labels: Arc::new([]),
            owners: Arc::new([]),
        }
    }

    /// The Leases of `namespace` as a whole, for its list and watch; its
    /// errors name them `{namespace}/*`.
    pub(crate) fn every_lease(client: Client, namespace: &str) -> Self {
        Self::new(client, namespace, "*")
    }

    /// Sets `annotations` on the Lease with every create and replace.
    pub(crate) fn annotated(self, annotations: &[(String, String)]) -> Self {
        Self {
            annotations: annotations.into(),
            ..self
        }
    }

    /// Merges `labels` into the Lease's labels and adds `owners` to its
    /// owner references with every create and replace.
    pub(crate) fn labelled(self, labels: &[(String, String)], owners: &[OwnerReference]) -> Self {
        Self {
            labels: labels.into(),
            owners: owners.into(),
            ..self
        }
    }

    /// Sets this Lease's own annotations and labels on `metadata`, and adds
    /// its owner references: the keys and owners this elector sets win,
    /// every other label, annotation and owner is kept (client-go's
    /// `LeaseLock` merges its labels so).
    fn annotate(&self, metadata: &mut ObjectMeta) {
        for (pairs, map) in [
            (&self.annotations, &mut metadata.annotations),
            (&self.labels, &mut metadata.labels),
        ] {
            if pairs.is_empty() {
                continue;
            }
            let map = map.get_or_insert_with(Default::default);
            for (key, value) in pairs.iter() {
                map.insert(key.clone(), value.clone());
            }
        }
        if !self.owners.is_empty() {
            let refs = metadata.owner_references.get_or_insert_with(Vec::new);
            for owner in self.owners.iter() {
                if !refs.iter().any(|r| r.uid == owner.uid) {
                    refs.push(owner.clone());
                }
            }
        }
    }

    /// Sends at most as many requests at once as `limit` has permits
    /// (waiting for one counts within each request's timeout).
    pub(crate) fn limited(self, limit: Arc<Semaphore>) -> Self {
        Self {
            limit: Some(limit),
            ..self
        }
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The client the requests go through.
    #[cfg(feature = "recorder")]
    pub(crate) fn client(&self) -> Client {
        self.api.clone().into_client()
    }

    /// Reads the Lease; `None` when it does not exist.
    pub(crate) async fn get(&self, timeout: Duration) -> Result<Option<Lease>, Error> {
        self.bounded(LeaseOperation::Get, timeout, || {
            Box::pin(self.api.get_opt(&self.name))
        })
        .await
    }

    /// Lists the one Lease by field selector, for the `resourceVersion` a
    /// watch starts from (which a plain GET of a missing object lacks).
    pub(crate) async fn list(&self, timeout: Duration) -> Result<(Option<Lease>, String), Error> {
        let params = ListParams::default().fields(&self.field_selector());
        let list = self
            .bounded(LeaseOperation::Watch, timeout, || {
                Box::pin(self.api.list(&params))
            })
            .await?;
        let version = list.metadata.resource_version.unwrap_or_default();
        Ok((list.items.into_iter().next(), version))
    }

    /// Watches the one Lease from `version`.
    pub(crate) async fn watch(
        &self,
        version: &str,
        timeout: Duration,
    ) -> Result<impl Stream<Item = Result<WatchEvent<Lease>, kube::Error>> + use<>, Error> {
        let params = WatchParams::default()
            .fields(&self.field_selector())
            .timeout(WATCH_TIMEOUT_SECS);
        self.bounded(LeaseOperation::Watch, timeout, || {
            Box::pin(self.api.watch(&params, version))
        })
        .await
    }

    /// One page (up to `LIST_PAGE` Leases) of every Lease in the namespace,
    /// for a watch of the whole namespace; `continue_from` is the previous
    /// page's continue token.
    pub(crate) async fn list_namespace(
        &self,
        continue_from: Option<&str>,
        timeout: Duration,
    ) -> Result<ObjectList<Lease>, Error> {
        let mut params = ListParams::default().limit(LIST_PAGE);
        if let Some(token) = continue_from {
            params = params.continue_token(token);
        }
        self.bounded(LeaseOperation::Watch, timeout, || {
            Box::pin(self.api.list(&params))
        })
        .await
    }

    /// Watches every Lease in the namespace from `version`.
    pub(crate) async fn watch_namespace(
        &self,
        version: &str,
        timeout: Duration,
    ) -> Result<impl Stream<Item = Result<WatchEvent<Lease>, kube::Error>> + use<>, Error> {
        let params = WatchParams::default().timeout(WATCH_TIMEOUT_SECS);
        self.bounded(LeaseOperation::Watch, timeout, || {
            Box::pin(self.api.watch(&params, version))
        })
        .await
    }

    /// Creates the Lease with `spec`. A Lease that exists already is a
    /// [`Error::Conflict`].
    pub(crate) async fn create(&self, spec: LeaseSpec, timeout: Duration) -> Result<Lease, Error> {
        let post = PostParams::default();
        let mut metadata = ObjectMeta {
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            ..ObjectMeta::default()
        };
        self.annotate(&mut metadata);
        let lease = Lease {
            metadata,
            spec: Some(spec),
        };
        self.bounded(LeaseOperation::Create, timeout, || {
            Box::pin(self.api.create(&post, &lease))
        })
        .await
    }

    /// Replaces the Lease with `lease`, conditional on its
    /// `resourceVersion` (the caller builds the object: the spec and the
    /// annotations it writes, see `successor::to_write`). A newer Lease, or
    /// none, is a [`Error::Conflict`]; so is an object without a
    /// `resourceVersion`, since writing it would not be conditional.
    pub(crate) async fn replace(
        &self,
        operation: LeaseOperation,
        mut lease: Lease,
        timeout: Duration,
    ) -> Result<Lease, Error> {
        if lease
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or("")
            .is_empty()
        {
            return Err(self.conflict(operation));
        }
        self.annotate(&mut lease.metadata);
        let post = PostParams::default();
        self.bounded(operation, timeout, || {
            Box::pin(self.api.replace(&self.name, &post, &lease))
        })
        .await
    }

    /// A watch that answered an `ERROR` event (other than 410 Gone): it
    /// failed, as a request that answered that status would have.
    pub(crate) fn watch_failed(&self, status: Box<kube::core::Status>) -> Error {
        Error::Api {
            operation: LeaseOperation::Watch,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source: kube::Error::Api(status),
        }
    }

    fn field_selector(&self) -> String {
        format!("metadata.name={}", self.name)
    }

    fn conflict(&self, operation: LeaseOperation) -> Error {
        Error::Conflict {
            operation,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// Runs one request under `timeout`, mapping its errors: 409 (Conflict or
    /// `AlreadyExists`) and a 404 on a write become [`Error::Conflict`], which
    /// callers answer by reading again.
    ///
    /// The request is made only once it may be sent (a hub's limit), and
    /// boxed: its future (about 3 KiB of kube's state) is on the heap only
    /// while it is in flight, not in every task future that may send one,
    /// nor in thousands of requests that wait for their turn.
    async fn bounded<'a, T>(
        &'a self,
        operation: LeaseOperation,
        timeout: Duration,
        request: impl FnOnce() -> futures::future::BoxFuture<'a, Result<T, kube::Error>>,
    ) -> Result<T, Error> {
        let span = tracing::debug_span!("lease_request", action = %operation, ?timeout);
        let request = async {
            // A closed semaphore never happens (no one closes it); then no limit.
            let _permit = match &self.limit {
                Some(limit) => limit.acquire().await.ok(),
                None => None,
            };
            request().await
        };
        match tokio::time::timeout(timeout, request)
            .instrument(span)
            .await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(kube::Error::Api(status)))
                if status.code == 409
                    || (status.code == 404
                        && !matches!(operation, LeaseOperation::Get | LeaseOperation::Watch)) =>
            {
                Err(self.conflict(operation))
            }
            Ok(Err(source)) => Err(Error::Api {
                operation,
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                source,
            }),
            Err(_elapsed) => Err(Error::Timeout {
                operation,
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                timeout,
            }),
        }
    }
}

/// Whether an error is the API server saying "forbidden" (RBAC without the verb).
pub(crate) fn is_forbidden(error: &Error) -> bool {
    matches!(error, Error::Api { source: kube::Error::Api(status), .. } if status.code == 403)
}
