//! An embedded Kubernetes API server for `coordination.k8s.io/v1` Leases
//! (and, with coordinated leader election on, `coordination.k8s.io/v1beta1`
//! `LeaseCandidate`s), for tests of leader election (kube-elector's, and users' tests of their
//! leader-gated code). It does not depend on kube-elector: the fake does not
//! borrow from the code it judges.
//!
//! [`LeaseApiServer`] answers the Lease API the way kube-apiserver does, over
//! real HTTP on 127.0.0.1, so the real [`kube::Client`] (or `kubectl`, or a
//! client-go program) can be pointed at it: GET, LIST and WATCH (with field
//! and label selectors, `resourceVersion`, `timeoutSeconds`, bookmarks and
//! 410 for a version too old), POST, PUT, PATCH (JSON merge, strategic merge,
//! JSON patch, server-side apply with field ownership), DELETE; one global
//! increasing `resourceVersion`; 409/404/422/400 as Kubernetes `Status`
//! bodies; discovery for kubectl.
//!
//! Each client can have its own identity ([`LeaseApiServer::client_for`]),
//! carried as its bearer token (or, from clients that send no token over
//! plain HTTP, such as client-go, as the `Impersonate-User` header that a
//! kubeconfig user with `as:` sends; [`LeaseApiServer::write_kubeconfig`]
//! writes both), so that faults can be aimed at it:
//! latency, an error rate, refused connections, requests that hang until
//! released, partitions that heal, 403 for a verb; watches that deliver late,
//! deliver nothing or fail; write answers that are lost or late after the
//! write was applied; reads answered from an old snapshot. Requests are
//! counted by resource, client and verb ([`LeaseApiServer::requests`] for
//! Leases, [`LeaseApiServer::requests_for`] for any [`Resource`]).
//!
//! ```
//! use k8s_openapi::api::coordination::v1::Lease;
//! use kube_elector_testing::{FaultTarget, LeaseApiServer, Verb};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = LeaseApiServer::start().await?;
//! let leases: kube::Api<Lease> = kube::Api::namespaced(server.client_for("replica-1"), "default");
//! assert!(leases.get_opt("my-lock").await.unwrap().is_none());
//! assert_eq!(server.requests().get("replica-1", Verb::Get), 1);
//!
//! server.forbid(FaultTarget::Client("replica-1".into()), Verb::Get);
//! assert!(leases.get_opt("my-lock").await.is_err());
//! # Ok(())
//! # }
//! ```
//!
//! # Other processes
//! kubectl, client-go programs and harnesses in other languages reach the
//! server through a kubeconfig that names their identity:
//!
//! ```no_run
//! use std::path::Path;
//! use kube_elector_testing::LeaseApiServer;
//!
//! # async fn run() -> std::io::Result<()> {
//! let server = LeaseApiServer::start().await?;
//! server.write_kubeconfig(Path::new("embedded.kubeconfig"), "kubectl")?;
//! // KUBECONFIG=embedded.kubeconfig kubectl get leases -w
//! # Ok(())
//! # }
//! ```
//!
//! The `lease-apiserver` example serves it standalone:
//! `cargo run -p kube-elector-testing --example lease-apiserver -- --port 0`
//! (add `--coordinated-leader-election` for the feature gate below).
//!
//! # Coordinated leader election
//! By default the server behaves as kube-apiserver does with the
//! `CoordinatedLeaderElection` feature gate off, the default of Kubernetes
//! 1.33 to 1.37: it drops `spec.strategy` and `spec.preferredHolder` from
//! Leases without a word, on create, and on update unless the stored Lease
//! already had them. [`LeaseApiServerBuilder::coordinated_leader_election`]
//! turns the gate on: both fields are kept, and a `preferredHolder` without
//! a `strategy` is refused with 422 Invalid (`spec.preferredHolder`), as
//! kube-apiserver's validation refuses it.
//!
//! With the gate on, the server also serves `coordination.k8s.io/v1beta1`
//! `LeaseCandidate`s, as kube-apiserver does with the gate and that version
//! enabled, at `/apis/coordination.k8s.io/v1beta1/namespaces/{ns}/leasecandidates[/{name}]`:
//! the same verbs as Leases (GET, LIST and WATCH with `metadata.name` and
//! `metadata.namespace` field selectors, label selectors, resumes, bookmarks
//! and 410; POST; PUT at a named `resourceVersion`, 409 otherwise; every
//! patch and server-side apply; DELETE with preconditions), one
//! `resourceVersion` shared with Leases, the deprecation `Warning`
//! kube-apiserver sends, and v1beta1 in discovery. Validation is
//! kube-apiserver's: a name that is a `ConfigMap` key, `spec.leaseName`
//! (immutable), `spec.binaryVersion` and `spec.emulationVersion` as
//! semantic versions (emulation no newer; required for
//! `OldestEmulationVersion`), `spec.strategy` known or prefixed. With the
//! gate off, v1beta1 is not in discovery and every path under it answers 404
//! with kube-apiserver's `Status`. The server does not run kube-apiserver's
//! coordinated-leader-election controller: nothing pings candidates or
//! elects for them.
//!
//! ```
//! use k8s_openapi::api::coordination::v1beta1::LeaseCandidate;
//! use kube::api::PostParams;
//! use kube_elector_testing::{LeaseApiServer, Resource, Verb};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let server = LeaseApiServer::builder().coordinated_leader_election(true).start().await?;
//! let candidates: kube::Api<LeaseCandidate> =
//!     kube::Api::namespaced(server.client_for("replica-1"), "default");
//! let candidate: LeaseCandidate = serde_json::from_value(serde_json::json!({
//!     "metadata": { "name": "replica-1" },
//!     "spec": {
//!         "leaseName": "my-lock", "binaryVersion": "1.37.0",
//!         "emulationVersion": "1.37.0", "strategy": "OldestEmulationVersion",
//!     },
//! }))?;
//! candidates.create(&PostParams::default(), &candidate).await?;
//! let counts = server.requests_for(Resource::LeaseCandidates);
//! assert_eq!(counts.get("replica-1", Verb::Create), 1);
//! assert_eq!(server.requests().total(), 0, "no Lease request");
//! # Ok(())
//! # }
//! ```
//!
//! ```
//! use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
//! use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
//! use kube::api::PostParams;
//! use kube_elector_testing::LeaseApiServer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let lease = Lease {
//!     metadata: ObjectMeta { name: Some("my-lock".into()), ..ObjectMeta::default() },
//!     spec: Some(LeaseSpec {
//!         strategy: Some("OldestEmulationVersion".into()),
//!         ..LeaseSpec::default()
//!     }),
//! };
//! let off = LeaseApiServer::start().await?;
//! let leases: kube::Api<Lease> = kube::Api::namespaced(off.client(), "default");
//! let created = leases.create(&PostParams::default(), &lease).await?;
//! assert_eq!(created.spec.unwrap().strategy, None);
//!
//! let on = LeaseApiServer::builder().coordinated_leader_election(true).start().await?;
//! let leases: kube::Api<Lease> = kube::Api::namespaced(on.client(), "default");
//! let created = leases.create(&PostParams::default(), &lease).await?;
//! assert_eq!(created.spec.unwrap().strategy.as_deref(), Some("OldestEmulationVersion"));
//! # Ok(())
//! # }
//! ```
//!
//! # The admin endpoint
//! Processes that cannot call these methods reach the same controls over
//! HTTP on the same port:
//! - `GET /_testing/requests`: `{"total": N, "requests": [{"client", "verb", "count"}]}`
//!   for Leases (`?resource=leasecandidates`: for `LeaseCandidate`s);
//! - `POST /_testing/reset`: sets the counters to zero;
//! - `POST /_testing/faults` with a JSON body `{"target": "all" | "<client>",
//!   "latency_ms": N, "error_rate": F, "refuse": B, "hang": B, "partition": B,
//!   "forbid": ["watch", ...], "allow": [...], "watch_delay_ms": N,
//!   "watch_black_hole": B, "watch_error": B, "lose_write_answers": B,
//!   "write_answer_delay_ms": N, "stale_reads": B, "names_only": B,
//!   "resource": "leases" | "leasecandidates"}` (absent keys change
//!   nothing; a zero duration clears; `resource`, Leases by default, is
//!   what `forbid` and `allow` apply to), or `{"clear": true}`; and the
//!   server as a whole: `{"stop_gracefully_ms": N}`, `{"restart": true}`.

mod admin;
mod answers;
mod builder;
mod discovery;
mod events;
mod faults;
mod fields;
mod http;
mod meta;
mod patch;
mod request;
mod resource;
mod selector;
mod shared;
mod status;
mod store;
mod strategy;
mod validate;
mod watch;
mod wire;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::DropGuard;

pub use builder::LeaseApiServerBuilder;
use faults::{Delay, Flag};
pub use faults::{FaultTarget, RequestCounts, Verb};
pub use resource::Resource;
use shared::Shared;
use store::Snapshot;

/// A running embedded Lease API server; dropping it stops the server.
#[must_use = "the server stops when dropped"]
#[derive(Debug)]
pub struct LeaseApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: DropGuard,
}

impl LeaseApiServer {
    /// Starts a server on 127.0.0.1 at a free port, with the defaults of
    /// [`LeaseApiServer::builder`].
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::builder().start().await
    }

    /// Starts a server on `addr`, with the defaults of
    /// [`LeaseApiServer::builder`].
    ///
    /// # Errors
    /// When `addr` cannot be bound.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        Self::builder().addr(addr).start().await
    }

    /// A server to set up before it starts: its address, and whether it
    /// behaves as a kube-apiserver with the `CoordinatedLeaderElection`
    /// feature gate on (by default it is off, as in Kubernetes 1.33 to 1.37).
    pub fn builder() -> LeaseApiServerBuilder {
        LeaseApiServerBuilder::default()
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client with identity `default`.
    #[must_use]
    pub fn client(&self) -> kube::Client {
        self.client_for("default")
    }

    /// A client whose requests the server attributes to `identity` (its
    /// bearer token), for faults and counters aimed at it.
    ///
    /// # Panics
    /// Never for a valid identity; an identity that is not a valid HTTP
    /// header value (a newline, say) cannot be carried.
    #[must_use]
    pub fn client_for(&self, identity: &str) -> kube::Client {
        kube::Client::try_from(self.kube_config_for(identity))
            .expect("a plain-HTTP client for the embedded server")
    }

    /// The `kube::Config` of [`LeaseApiServer::client_for`], with default
    /// namespace `default`.
    ///
    /// # Panics
    /// Never: the URL and the token are always valid.
    #[must_use]
    pub fn kube_config_for(&self, identity: &str) -> kube::Config {
        let mut config = kube::Config::new(self.url().parse().expect("a valid URL"));
        "default".clone_into(&mut config.default_namespace);
        config.auth_info = serde_json::from_value(serde_json::json!({ "token": identity }))
            .expect("an AuthInfo with a token");
        config.read_timeout = Some(Duration::from_secs(300));
        config
    }

    /// Writes a kubeconfig for `identity` (for kubectl, or a program in
    /// another language).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_kubeconfig(&self, path: &Path, identity: &str) -> std::io::Result<()> {
        let mut file = std::fs::File::create(path)?;
        write!(
            file,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-elector-embedded\n  cluster:\n    server: {url}\ncontexts:\n- name: kube-elector-embedded\n  context:\n    cluster: kube-elector-embedded\n    user: {id}\n    namespace: default\ncurrent-context: kube-elector-embedded\nusers:\n- name: {id}\n  user:\n    token: {id}\n    as: {id}\n",
            url = self.url(),
            id = yaml_string(identity),
        )
    }

    // === Faults ===

    /// Delays every request of `target` by `latency` (zero clears it).
    pub fn set_latency(&self, target: FaultTarget, latency: Duration) {
        self.shared
            .faults
            .set_delay(Delay::Request, target, latency);
    }

    /// Answers a fraction `rate` (0 to 1) of the requests of `target` with
    /// 500 and a Status body (not 503, which kube's client retries by itself). The draws are deterministic for a given
    /// order of requests.
    pub fn set_error_rate(&self, target: FaultTarget, rate: f64) {
        self.shared.faults.set_error_rate(target, rate);
    }

    /// Answers the next `n` requests of `verb` from `target` (of any
    /// resource) with 500 and a Status body, without applying them; other
    /// requests are answered as usual (zero clears it): a release that
    /// fails once, for instance, with `fail_next(target, Verb::Update, 1)`
    /// just before the shutdown.
    pub fn fail_next(&self, target: FaultTarget, verb: Verb, n: u32) {
        self.shared.faults.set_fail_next(target, verb, n);
    }

    /// Drops the connection of every request of `target` without an answer:
    /// the client sees a connection error, not an HTTP status. Its watches end.
    pub fn refuse_connections(&self, target: FaultTarget, refuse: bool) {
        self.shared.faults.set_flag(Flag::Refused, target, refuse);
    }

    /// Holds the requests of `target` unanswered until [`release`](Self::release),
    /// then processes them: late delivery. Watches deliver nothing meanwhile.
    pub fn hang(&self, target: FaultTarget) {
        self.shared.faults.set_flag(Flag::Hung, target, true);
    }

    /// Lets held requests of `target` through.
    pub fn release(&self, target: FaultTarget) {
        self.shared.faults.set_flag(Flag::Hung, target, false);
    }

    /// Cuts `target` off: its requests are held unanswered and never applied,
    /// its watches deliver nothing.
    pub fn partition(&self, target: FaultTarget) {
        self.shared.faults.set_flag(Flag::Partitioned, target, true);
    }

    /// Heals a partition: held requests and watches fail with a dropped
    /// connection (none was applied); new requests work.
    pub fn heal(&self, target: FaultTarget) {
        self.shared
            .faults
            .set_flag(Flag::Partitioned, target, false);
    }

    /// Answers `verb` on Leases from `target` with 403 Forbidden, as RBAC
    /// would (`LeaseCandidate`s: [`forbid_resource`](Self::forbid_resource)).
    pub fn forbid(&self, target: FaultTarget, verb: Verb) {
        self.forbid_resource(target, Resource::Leases, verb);
    }

    /// Lifts a [`forbid`](Self::forbid).
    pub fn allow(&self, target: FaultTarget, verb: Verb) {
        self.allow_resource(target, Resource::Leases, verb);
    }

    /// Answers `verb` on `resource` from `target` with 403 Forbidden, as
    /// an RBAC Role without that rule would: a client allowed Leases but
    /// not `leasecandidates`, say.
    pub fn forbid_resource(&self, target: FaultTarget, resource: Resource, verb: Verb) {
        self.shared
            .faults
            .set_forbidden(target, resource, verb, true);
    }

    /// Lifts a [`forbid_resource`](Self::forbid_resource).
    pub fn allow_resource(&self, target: FaultTarget, resource: Resource, verb: Verb) {
        self.shared
            .faults
            .set_forbidden(target, resource, verb, false);
    }

    /// Refuses `events.k8s.io` Event writes from `target` with 403 (or, with
    /// `forbidden: false`, accepts them again): an RBAC without `create` on
    /// events.
    pub fn forbid_events(&self, target: FaultTarget, forbidden: bool) {
        self.shared.events.forbid(target, forbidden);
    }

    /// Delivers the watch events (ADDED, MODIFIED, DELETED) and bookmarks of
    /// `target`'s watches `delay` late, in order: each is held until it
    /// reached the watch plus `delay` (zero clears it, and sends what was
    /// held). A watch that reaches its `timeoutSeconds` ends once what it
    /// held is sent.
    pub fn delay_watch(&self, target: FaultTarget, delay: Duration) {
        self.shared.faults.set_delay(Delay::Watch, target, delay);
    }

    /// Black-holes `target`'s watches, open ones and new ones (or, with
    /// `on: false`, lifts it): they stay connected but deliver nothing, no
    /// events, no bookmarks, not even their end at `timeoutSeconds`. When it
    /// is lifted they deliver, in order, what happened meanwhile, as a
    /// stalled TCP connection would, and end if their timeout has passed. A
    /// watch that falls more than 16384 events behind ends.
    pub fn black_hole_watch(&self, target: FaultTarget, on: bool) {
        self.shared
            .faults
            .set_flag(Flag::WatchBlackHole, target, on);
    }

    /// Breaks `target`'s watches as a broken watch cache would (or, with
    /// `on: false`, lifts it): every new watch gets 200 and then a single
    /// `ERROR` event carrying a 500 `InternalError` Status, and its stream
    /// ends; an open watch sends what it already received, then that
    /// `ERROR`, then ends.
    pub fn fail_watch(&self, target: FaultTarget, on: bool) {
        self.shared.faults.set_flag(Flag::WatchError, target, on);
    }

    /// Lets `target` list and watch Leases (and `LeaseCandidate`s) only by
    /// name (or, with `on: false`, lifts it): a list or watch without a `metadata.name=` field
    /// selector is answered 403 Forbidden, as kube-apiserver answers a
    /// client whose Role grants `list` and `watch` only with
    /// `resourceNames`.
    pub fn restrict_to_names(&self, target: FaultTarget, on: bool) {
        self.shared.faults.set_flag(Flag::NamesOnly, target, on);
    }

    /// Loses the answers to `target`'s writes of Leases and `LeaseCandidate`s
    /// (create, update, patch, delete), or with `on: false` delivers them
    /// again: each write is
    /// applied as usual (committed, `resourceVersion` raised, watch events
    /// sent) but its connection is then dropped without an answer, so the
    /// client sees a connection error. The answer is lost whatever it was,
    /// a 409 included.
    pub fn lose_write_answers(&self, target: FaultTarget, on: bool) {
        self.shared
            .faults
            .set_flag(Flag::LoseWriteAnswers, target, on);
    }

    /// Applies `target`'s writes (of any resource) at once but sends their
    /// answers `delay` later (zero clears it).
    pub fn delay_write_answers(&self, target: FaultTarget, delay: Duration) {
        self.shared
            .faults
            .set_delay(Delay::WriteAnswer, target, delay);
    }

    /// Answers `target`'s GET and LIST (of every resource) from a snapshot
    /// of the store taken now (or, with `on: false`, from the store again),
    /// as a lagging watch cache can serve an older `resourceVersion` than one
    /// it already served. Setting it again takes a new snapshot; when several snapshots
    /// apply to a client, the oldest answers. Writes and watches are
    /// unaffected: a write based on a stale read conflicts as usual.
    pub fn stale_reads(&self, target: FaultTarget, on: bool) {
        let snapshot = on.then(|| Snapshot::of(&self.shared.store));
        self.shared.faults.set_stale_reads(target, snapshot);
    }

    /// Begins a graceful stop, as kube-apiserver's on SIGTERM looks to its
    /// clients: from now on no request of any client is answered (each
    /// connection is dropped, idle kept-alive ones at their next request),
    /// while the watches already open stay open and deliver nothing, no
    /// events and no bookmarks, for `linger`; then they break as a lost
    /// connection does. kube-apiserver v1.37 kept them so for about 10 s. A
    /// watch that stays open is no sign that the server is there. Only
    /// [`restart`](Self::restart) ends the stop.
    pub fn stop_gracefully(&self, linger: Duration) {
        self.shared.stop_gracefully(linger);
    }

    /// Serves again, as a kube-apiserver restarted on the same etcd: the
    /// objects are as they were, watches still open from before end, and a
    /// watch resumed from any `resourceVersion` served before the restart
    /// gets `410 Expired` (the new watch cache starts from a list at a newer
    /// revision), so the client lists again. A restart without a stop is
    /// one after a crash.
    pub fn restart(&self) {
        self.shared.restart();
    }

    /// Lifts every fault (held requests of partitions fail, hung ones
    /// proceed, black-holed and delayed watches send what they held).
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    // === Counters ===

    /// The Lease requests answered so far, by client and verb.
    #[must_use]
    pub fn requests(&self) -> RequestCounts {
        self.requests_for(Resource::Leases)
    }

    /// The requests for `resource` answered so far, by client and verb:
    /// `requests_for(Resource::LeaseCandidates)` counts `LeaseCandidate`
    /// requests as [`requests`](Self::requests) counts Lease ones.
    #[must_use]
    pub fn requests_for(&self, resource: Resource) -> RequestCounts {
        self.shared.faults.counts(resource)
    }

    /// Sets the counters of every resource to zero.
    pub fn reset_counts(&self) {
        self.shared.faults.reset_counts();
    }

    // === Leases, for assertions ===

    /// Who holds Lease `namespace/name` now: `None` when it is missing or
    /// free (an empty or absent `holderIdentity`). Read from the store
    /// directly: no request, nothing counted.
    #[must_use]
    pub fn holder(&self, namespace: &str, name: &str) -> Option<String> {
        let lease = self
            .shared
            .store
            .get(Resource::Leases, namespace, name)
            .ok()?;
        lease["spec"]["holderIdentity"]
            .as_str()
            .filter(|holder| !holder.is_empty())
            .map(str::to_owned)
    }

    /// Waits until Lease `namespace/name` is held (by anyone other than
    /// `not`, if given) and returns the holder, or `None` after `patience`.
    /// It waits for the store's own change events, so it needs no polling
    /// and works under `#[tokio::test(start_paused = true)]` as well.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_for_holder(
        &self,
        namespace: &str,
        name: &str,
        not: Option<&str>,
        patience: Duration,
    ) -> Option<String> {
        let wanted = |holder: Option<String>| holder.filter(|h| Some(h.as_str()) != not);
        let wait = async {
            loop {
                // Subscribe before reading, so that no change falls between.
                let mut changes = self
                    .shared
                    .store
                    .watch(
                        Resource::Leases,
                        Some(namespace),
                        Some(name),
                        Some(u64::MAX),
                    )
                    .ok();
                if let Some(holder) = wanted(self.holder(namespace, name)) {
                    return holder;
                }
                match changes.as_mut() {
                    Some(changes) => {
                        let _ = changes.live.recv().await;
                    }
                    None => tokio::task::yield_now().await,
                }
            }
        };
        tokio::time::timeout(patience, wait).await.ok()
    }

    /// The newest `resourceVersion`.
    #[must_use]
    pub fn resource_version(&self) -> u64 {
        self.shared.store.version()
    }
}

fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}
