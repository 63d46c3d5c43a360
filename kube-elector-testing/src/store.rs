//! The objects, their resourceVersions and the history that watches replay.
//!
//! Objects are kept as JSON, so fields this server does not know (newer
//! Lease fields, anything a client adds) survive a round trip, as in etcd.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::fields::{self, Operation};
use crate::meta::{creation_timestamp, make_uid, meta_mut, object_name, version_of};
use crate::patch::{self, PatchKind};
use crate::status::{self, ApiError, LEASES};
use crate::strategy::Gates;
use crate::validate::{checked_object, normalize, validate};

/// How many past events a watch can resume from.
const HISTORY: usize = 10_000;

/// Kind of a change, as watch events name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Added,
    Modified,
    Deleted,
}

impl Change {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as a watch delivers it.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) change: Change,
    pub(crate) version: u64,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) object: Value,
}

/// What a watch starts with.
pub(crate) struct WatchStart {
    pub(crate) backlog: Vec<Event>,
    pub(crate) live: broadcast::Receiver<Event>,
}

/// Objects by namespace and name.
pub(crate) type Objects = BTreeMap<(String, String), Value>;

#[derive(Debug, Default)]
struct Inner {
    version: u64,
    objects: Objects,
    history: VecDeque<Event>,
    /// Events at or below this version are no longer in `history`.
    compacted: u64,
    uids: u64,
    /// Watchers of one name each (`fieldSelector=metadata.name=`, as every
    /// elector's watch is): an event wakes only them, not every watcher, as
    /// kube-apiserver's watch cache indexes them.
    by_name: std::collections::HashMap<String, broadcast::Sender<Event>>,
}

/// The Lease store of one server.
#[derive(Debug)]
pub(crate) struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Event>,
    /// What the server's feature gates drop from a Lease before it is
    /// validated.
    gates: Gates,
}

impl Store {
    pub(crate) fn new(gates: Gates) -> Self {
        Self {
            inner: Mutex::default(),
            events: broadcast::Sender::new(1024),
            gates,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn version(&self) -> u64 {
        self.lock().version
    }

    pub(crate) fn get(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        get_in(&self.lock().objects, ns, name)
    }

    /// Objects in `ns` (all namespaces if `None`) that `keep` accepts, and
    /// the version of the list.
    pub(crate) fn list(
        &self,
        ns: Option<&str>,
        keep: impl Fn(&Value) -> bool,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        (list_in(&inner.objects, ns, keep), inner.version)
    }

    /// Every object, and the version they are at.
    pub(crate) fn objects(&self) -> (Objects, u64) {
        let inner = self.lock();
        (inner.objects.clone(), inner.version)
    }

    /// Events after `from` (or, with `None`, ADDED events for what exists
    /// now), and a receiver of everything after them. 410 if `from` is older
    /// than the history kept.
    pub(crate) fn watch(
        &self,
        ns: Option<&str>,
        name: Option<&str>,
        from: Option<u64>,
    ) -> Result<WatchStart, ApiError> {
        let mut inner = self.lock();
        let live = match name {
            Some(name) => inner
                .by_name
                .entry(name.to_owned())
                .or_insert_with(|| broadcast::Sender::new(16))
                .subscribe(),
            None => self.events.subscribe(),
        };
        let backlog = match from {
            None => inner
                .objects
                .iter()
                .filter(|((n, _), _)| ns.is_none_or(|ns| ns == n))
                .map(|((n, name), object)| Event {
                    change: Change::Added,
                    version: version_of(object),
                    namespace: n.clone(),
                    name: name.clone(),
                    object: object.clone(),
                })
                .collect(),
            Some(v) if v < inner.compacted => return Err(status::expired(v, inner.compacted)),
            Some(v) => inner
                .history
                .iter()
                .filter(|e| e.version > v)
                .cloned()
                .collect(),
        };
        Ok(WatchStart { backlog, live })
    }

    pub(crate) fn create(&self, ns: &str, body: Value, manager: &str) -> Result<Value, ApiError> {
        let mut object = checked_object(body, ns)?;
        let name = object_name(&object).ok_or_else(|| {
            LEASES.invalid(
                "",
                &[(
                    "metadata.name".into(),
                    "Required value: name or generateName is required".into(),
                )],
            )
        })?;
        self.gates.prepare_for_create(&mut object);
        validate(&object, &name)?;
        let mut inner = self.lock();
        let key = (ns.to_owned(), name.clone());
        if inner.objects.contains_key(&key) {
            return Err(LEASES.already_exists(&name));
        }
        inner.uids += 1;
        let uid = make_uid(inner.uids, inner.version);
        {
            let meta = meta_mut(&mut object);
            meta.remove("resourceVersion");
            meta.insert("namespace".into(), json!(ns));
            meta.insert("uid".into(), json!(uid));
            meta.insert("creationTimestamp".into(), json!(creation_timestamp()));
            meta.remove("deletionTimestamp");
            meta.remove("generation");
        }
        fields::record_update(None, &mut object, manager, Operation::Update);
        Ok(inner.commit(&self.events, key, Change::Added, object))
    }

    /// PUT. A missing Lease is created: Leases allow create-on-update, and
    /// kube-apiserver creates one whatever resourceVersion the body carries.
    /// The flag says whether it was created.
    pub(crate) fn update(
        &self,
        ns: &str,
        name: &str,
        body: Value,
        manager: &str,
    ) -> Result<(Value, bool), ApiError> {
        let mut object = checked_object(body, ns)?;
        if let Some(body_name) = object_name(&object)
            && body_name != name
        {
            return Err(status::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        meta_mut(&mut object).insert("name".into(), json!(name));
        let mut inner = self.lock();
        let key = (ns.to_owned(), name.to_owned());
        // A uid in the body is a precondition, as in kube-apiserver: a PUT
        // carrying one never creates, and never lands on a re-created object.
        if let Some(uid) = object["metadata"]["uid"].as_str().filter(|u| !u.is_empty()) {
            let stored = inner
                .objects
                .get(&key)
                .and_then(|o| o["metadata"]["uid"].as_str())
                .unwrap_or("");
            if stored != uid {
                return Err(LEASES.uid_precondition(ns, name, uid, stored));
            }
        }
        let Some(current) = inner.objects.get(&key) else {
            drop(inner);
            return match self.create(ns, object, manager) {
                Ok(created) => Ok((created, true)),
                // Created by someone else in between: a conflict.
                Err(e) if e.code == 409 => Err(LEASES.conflict(name)),
                Err(e) => Err(e),
            };
        };
        // As kube-apiserver: preconditions, then the strategy, then validation.
        check_precondition(current, &object, name)?;
        self.gates.prepare_for_update(&mut object, current);
        validate(&object, name)?;
        let mut object = carry_server_fields(current, object);
        fields::record_update(Some(current), &mut object, manager, Operation::Update);
        if unchanged(current, &object) {
            return Ok((current.clone(), false));
        }
        Ok((
            inner.commit(&self.events, key, Change::Modified, object),
            false,
        ))
    }

    /// PATCH: server-side apply, or a merge or JSON patch of the stored
    /// object.
    pub(crate) fn patch(
        &self,
        ns: &str,
        name: &str,
        kind: PatchKind,
        patch: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        match kind {
            PatchKind::Apply { force } => self.apply(ns, name, patch, manager, force),
            PatchKind::Merge | PatchKind::StrategicMerge => {
                self.edit(ns, name, manager, |current| patch::merged(current, &patch))
            }
            PatchKind::Json => self.edit(ns, name, manager, |current| {
                patch::json_patch(current, &patch)
            }),
        }
    }

    /// A patch that `edit` applies to the stored object, under the lock.
    fn edit(
        &self,
        ns: &str,
        name: &str,
        manager: &str,
        edit: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = (ns.to_owned(), name.to_owned());
        let current = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| LEASES.not_found(name))?;
        let mut patched = edit(&current)?;
        // A resourceVersion in the patch makes it conditional.
        check_precondition(&current, &patched, name)?;
        if object_name(&patched).as_deref() != Some(name) {
            return Err(status::bad_request(
                "metadata.name cannot be changed by a patch",
            ));
        }
        meta_mut(&mut patched).insert("namespace".into(), json!(ns));
        self.gates.prepare_for_update(&mut patched, &current);
        validate(&patched, name)?;
        let mut patched = carry_server_fields(&current, patched);
        fields::record_update(Some(&current), &mut patched, manager, Operation::Update);
        if unchanged(&current, &patched) {
            return Ok(current);
        }
        Ok(inner.commit(&self.events, key, Change::Modified, patched))
    }

    /// Server-side apply of `config`; creates the object if it is missing.
    fn apply(
        &self,
        ns: &str,
        name: &str,
        config: Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        let current = self.get(ns, name).ok();
        let config = checked_object(config, ns)?;
        if let Some(config_name) = object_name(&config)
            && config_name != name
        {
            return Err(status::bad_request(format!(
                "the name of the object ({config_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(current) = &current {
            check_precondition(current, &config, name)?;
        }
        let applied = fields::apply(current.as_ref(), &config, manager, force)
            .map_err(|conflicts| LEASES.apply_conflict(name, &conflicts))?;
        let mut applied = applied;
        meta_mut(&mut applied).insert("name".into(), json!(name));
        meta_mut(&mut applied).insert("namespace".into(), json!(ns));
        match current {
            None => {
                // Apply to a missing object creates it, as kube-apiserver
                // does (`create` prepares and validates it).
                let owned = applied["metadata"]["managedFields"].clone();
                let mut created = self.create(ns, applied, manager)?;
                let mut inner = self.lock();
                let key = (ns.to_owned(), name.to_owned());
                meta_mut(&mut created).insert("managedFields".into(), owned);
                if let Some(stored) = inner.objects.get_mut(&key) {
                    stored["metadata"]["managedFields"] =
                        created["metadata"]["managedFields"].clone();
                }
                Ok(created)
            }
            Some(current) => {
                self.gates.prepare_for_update(&mut applied, &current);
                validate(&applied, name)?;
                let mut inner = self.lock();
                let key = (ns.to_owned(), name.to_owned());
                if inner.objects.get(&key).map(version_of) != Some(version_of(&current)) {
                    return Err(LEASES.conflict(name));
                }
                let applied = carry_server_fields(&current, applied);
                if unchanged(&current, &applied) {
                    return Ok(current);
                }
                Ok(inner.commit(&self.events, key, Change::Modified, applied))
            }
        }
    }

    pub(crate) fn delete(
        &self,
        ns: &str,
        name: &str,
        precondition: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = (ns.to_owned(), name.to_owned());
        let current = inner
            .objects
            .get(&key)
            .ok_or_else(|| LEASES.not_found(name))?;
        if let Some(rv) = precondition
            && current["metadata"]["resourceVersion"].as_str() != Some(rv)
        {
            return Err(LEASES.conflict(name));
        }
        let uid = current["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        let object = current.clone();
        inner.commit(&self.events, key, Change::Deleted, object);
        Ok(LEASES.deleted(name, &uid))
    }
}

impl Inner {
    /// Writes (or removes) an object at the next version and publishes the event.
    fn commit(
        &mut self,
        events: &broadcast::Sender<Event>,
        key: (String, String),
        change: Change,
        mut object: Value,
    ) -> Value {
        self.version += 1;
        normalize(&mut object);
        meta_mut(&mut object).insert("resourceVersion".into(), json!(self.version.to_string()));
        match change {
            Change::Deleted => {
                self.objects.remove(&key);
            }
            Change::Added | Change::Modified => {
                self.objects.insert(key.clone(), object.clone());
            }
        }
        let event = Event {
            change,
            version: self.version,
            namespace: key.0,
            name: key.1,
            object: object.clone(),
        };
        self.history.push_back(event.clone());
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.version;
            }
        }
        if let Some(watchers) = self.by_name.get(&event.name) {
            if watchers.receiver_count() == 0 {
                self.by_name.remove(&event.name);
            } else {
                let _ = watchers.send(event.clone());
            }
        }
        // No receivers is fine: nobody watches.
        let _ = events.send(event);
        object
    }
}

/// The object `name` in `ns`, or 404.
pub(crate) fn get_in(objects: &Objects, ns: &str, name: &str) -> Result<Value, ApiError> {
    objects
        .get(&(ns.to_owned(), name.to_owned()))
        .cloned()
        .ok_or_else(|| LEASES.not_found(name))
}

/// The objects in `ns` (all namespaces if `None`) that `keep` accepts.
pub(crate) fn list_in(
    objects: &Objects,
    ns: Option<&str>,
    keep: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    objects
        .iter()
        .filter(|((n, _), _)| ns.is_none_or(|ns| ns == n))
        .map(|(_, v)| v)
        .filter(|v| keep(v))
        .cloned()
        .collect()
}

/// 409 if `incoming` names a resourceVersion other than the current one.
fn check_precondition(current: &Value, incoming: &Value, name: &str) -> Result<(), ApiError> {
    match incoming["metadata"]["resourceVersion"].as_str() {
        Some(rv)
            if !rv.is_empty() && Some(rv) != current["metadata"]["resourceVersion"].as_str() =>
        {
            Err(LEASES.conflict(name))
        }
        _ => Ok(()),
    }
}

/// Server-owned metadata comes from the stored object, whatever the client sent.
fn carry_server_fields(current: &Value, mut object: Value) -> Value {
    let meta = meta_mut(&mut object);
    for field in ["uid", "creationTimestamp", "namespace", "resourceVersion"] {
        match current["metadata"].get(field) {
            Some(v) => {
                meta.insert(field.into(), v.clone());
            }
            None => {
                meta.remove(field);
            }
        }
    }
    object
}

/// A write that changes nothing keeps the version (kube-apiserver skips the
/// etcd write too).
fn unchanged(current: &Value, next: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("managedFields");
            m.remove("resourceVersion");
        }
        v
    };
    strip(current) == strip(next)
}
