//! The objects of every resource, their resourceVersions and the history
//! that watches replay.
//!
//! Objects are kept as JSON, so fields this server does not know (newer
//! Lease fields, anything a client adds) survive a round trip, as in etcd.
//! One `resourceVersion` counts the writes of every resource, as etcd's
//! revision does; what differs between resources (validation, the
//! strategy) is `Resource`'s.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::fields::{self, Operation};
use crate::meta::{creation_timestamp, make_uid, meta_mut, object_name, version_of};
use crate::patch::{self, PatchKind};
use crate::resource::{Gates, Resource};
use crate::status::{self, ApiError};
use crate::strategy;
use crate::validate::checked_object;

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
    pub(crate) resource: Resource,
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

/// Where an object is kept: its resource, namespace and name.
pub(crate) type Key = (Resource, String, String);

/// Objects by resource, namespace and name.
pub(crate) type Objects = BTreeMap<Key, Value>;

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
    by_name: std::collections::HashMap<(Resource, String), broadcast::Sender<Event>>,
}

/// The store of one server.
#[derive(Debug)]
pub(crate) struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Event>,
    /// What the server's feature gates drop from an object before it is
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

    /// What a kube-apiserver restarted on the same etcd starts from: the
    /// objects as they are, and a watch cache filled by a list at a newer
    /// revision (its own writes at start-up move etcd on), so that a watch
    /// resumed from any version seen before gets 410.
    pub(crate) fn restart(&self) {
        let mut inner = self.lock();
        inner.version += 1;
        inner.compacted = inner.version;
        inner.history.clear();
    }

    pub(crate) fn get(&self, resource: Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        get_in(&self.lock().objects, resource, ns, name)
    }

    /// Objects of `resource` in `ns` (all namespaces if `None`) that `keep`
    /// accepts, and the version of the list.
    pub(crate) fn list(
        &self,
        resource: Resource,
        ns: Option<&str>,
        keep: impl Fn(&Value) -> bool,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        (list_in(&inner.objects, resource, ns, keep), inner.version)
    }

    /// Every object, and the version they are at.
    pub(crate) fn objects(&self) -> (Objects, u64) {
        let inner = self.lock();
        (inner.objects.clone(), inner.version)
    }

    /// Events of `resource` after `from` (or, with `None`, ADDED events for
    /// what exists now), and a receiver of everything after them (of every
    /// resource, unless `name` narrows it to one object's name). 410 if
    /// `from` is older than the history kept.
    pub(crate) fn watch(
        &self,
        resource: Resource,
        ns: Option<&str>,
        name: Option<&str>,
        from: Option<u64>,
    ) -> Result<WatchStart, ApiError> {
        let mut inner = self.lock();
        let live = match name {
            Some(name) => inner
                .by_name
                .entry((resource, name.to_owned()))
                .or_insert_with(|| broadcast::Sender::new(16))
                .subscribe(),
            None => self.events.subscribe(),
        };
        let backlog = match from {
            None => inner
                .objects
                .iter()
                .filter(|((r, n, _), _)| *r == resource && ns.is_none_or(|ns| ns == n))
                .map(|((_, n, name), object)| Event {
                    resource,
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
                .filter(|e| e.resource == resource && e.version > v)
                .cloned()
                .collect(),
        };
        Ok(WatchStart { backlog, live })
    }

    pub(crate) fn create(
        &self,
        resource: Resource,
        ns: &str,
        body: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let names = resource.names();
        let mut object = checked_object(resource, body, ns)?;
        let name = object_name(&object).ok_or_else(|| {
            names.invalid(
                "",
                &[(
                    "metadata.name".into(),
                    "Required value: name or generateName is required".into(),
                )],
            )
        })?;
        strategy::prepare_for_create(resource, self.gates, &mut object);
        strategy::validate_create(resource, &object, &name)?;
        let mut inner = self.lock();
        let key = (resource, ns.to_owned(), name.clone());
        if inner.objects.contains_key(&key) {
            return Err(names.already_exists(&name));
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

    /// PUT. A missing object is created: Leases and `LeaseCandidate`s allow
    /// create-on-update, and kube-apiserver creates one whatever
    /// resourceVersion the body carries. An existing one is replaced only
    /// at the resourceVersion the body names (neither allows an
    /// unconditional update). The flag says whether it was created.
    pub(crate) fn update(
        &self,
        resource: Resource,
        ns: &str,
        name: &str,
        body: Value,
        manager: &str,
    ) -> Result<(Value, bool), ApiError> {
        let names = resource.names();
        let mut object = checked_object(resource, body, ns)?;
        if let Some(body_name) = object_name(&object)
            && body_name != name
        {
            return Err(status::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        meta_mut(&mut object).insert("name".into(), json!(name));
        let mut inner = self.lock();
        let key = (resource, ns.to_owned(), name.to_owned());
        // A uid in the body is a precondition, as in kube-apiserver: a PUT
        // carrying one never creates, and never lands on a re-created object.
        if let Some(uid) = object["metadata"]["uid"].as_str().filter(|u| !u.is_empty()) {
            let stored = inner
                .objects
                .get(&key)
                .and_then(|o| o["metadata"]["uid"].as_str())
                .unwrap_or("");
            if stored != uid {
                return Err(names.uid_precondition(ns, name, uid, stored));
            }
        }
        let Some(current) = inner.objects.get(&key) else {
            drop(inner);
            return match self.create(resource, ns, object, manager) {
                Ok(created) => Ok((created, true)),
                // Created by someone else in between: a conflict.
                Err(e) if e.code == 409 => Err(names.conflict(name)),
                Err(e) => Err(e),
            };
        };
        // As kube-apiserver: preconditions, then the strategy, then validation.
        if object["metadata"]["resourceVersion"]
            .as_str()
            .is_none_or(str::is_empty)
        {
            return Err(names.resource_version_required(name));
        }
        check_precondition(resource, current, &object, name)?;
        strategy::prepare_for_update(resource, self.gates, &mut object, current);
        strategy::validate_update(resource, &object, current, name)?;
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
        resource: Resource,
        ns: &str,
        name: &str,
        kind: PatchKind,
        patch: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let key = (resource, ns.to_owned(), name.to_owned());
        match kind {
            PatchKind::Apply { force } => self.apply(&key, patch, manager, force),
            PatchKind::Merge | PatchKind::StrategicMerge => {
                self.edit(&key, manager, |current| patch::merged(current, &patch))
            }
            PatchKind::Json => {
                self.edit(&key, manager, |current| patch::json_patch(current, &patch))
            }
        }
    }

    /// A patch that `edit` applies to the stored object, under the lock.
    fn edit(
        &self,
        key: &Key,
        manager: &str,
        edit: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let (resource, ns, name) = (key.0, key.1.as_str(), key.2.as_str());
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| resource.names().not_found(name))?;
        let mut patched = edit(&current)?;
        // A resourceVersion in the patch makes it conditional.
        check_precondition(resource, &current, &patched, name)?;
        if object_name(&patched).as_deref() != Some(name) {
            return Err(status::bad_request(
                "metadata.name cannot be changed by a patch",
            ));
        }
        meta_mut(&mut patched).insert("namespace".into(), json!(ns));
        strategy::prepare_for_update(resource, self.gates, &mut patched, &current);
        strategy::validate_update(resource, &patched, &current, name)?;
        let mut patched = carry_server_fields(&current, patched);
        fields::record_update(Some(&current), &mut patched, manager, Operation::Update);
        if unchanged(&current, &patched) {
            return Ok(current);
        }
        Ok(inner.commit(&self.events, key.clone(), Change::Modified, patched))
    }

    /// Server-side apply of `config`; creates the object if it is missing.
    fn apply(
        &self,
        key: &Key,
        config: Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        let (resource, ns, name) = (key.0, key.1.as_str(), key.2.as_str());
        let names = resource.names();
        let current = self.get(resource, ns, name).ok();
        let config = checked_object(resource, config, ns)?;
        if let Some(config_name) = object_name(&config)
            && config_name != name
        {
            return Err(status::bad_request(format!(
                "the name of the object ({config_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(current) = &current {
            check_precondition(resource, current, &config, name)?;
        }
        let applied = fields::apply(current.as_ref(), &config, manager, force)
            .map_err(|conflicts| names.apply_conflict(name, &conflicts))?;
        let mut applied = applied;
        meta_mut(&mut applied).insert("name".into(), json!(name));
        meta_mut(&mut applied).insert("namespace".into(), json!(ns));
        match current {
            None => {
                // Apply to a missing object creates it, as kube-apiserver
                // does (`create` prepares and validates it).
                let owned = applied["metadata"]["managedFields"].clone();
                let mut created = self.create(resource, ns, applied, manager)?;
                let mut inner = self.lock();
                meta_mut(&mut created).insert("managedFields".into(), owned);
                if let Some(stored) = inner.objects.get_mut(key) {
                    stored["metadata"]["managedFields"] =
                        created["metadata"]["managedFields"].clone();
                }
                Ok(created)
            }
            Some(current) => {
                strategy::prepare_for_update(resource, self.gates, &mut applied, &current);
                strategy::validate_update(resource, &applied, &current, name)?;
                let mut inner = self.lock();
                if inner.objects.get(key).map(version_of) != Some(version_of(&current)) {
                    return Err(names.conflict(name));
                }
                let applied = carry_server_fields(&current, applied);
                if unchanged(&current, &applied) {
                    return Ok(current);
                }
                Ok(inner.commit(&self.events, key.clone(), Change::Modified, applied))
            }
        }
    }

    pub(crate) fn delete(
        &self,
        resource: Resource,
        ns: &str,
        name: &str,
        precondition: Option<&str>,
    ) -> Result<Value, ApiError> {
        let names = resource.names();
        let mut inner = self.lock();
        let key = (resource, ns.to_owned(), name.to_owned());
        let current = inner
            .objects
            .get(&key)
            .ok_or_else(|| names.not_found(name))?;
        if let Some(rv) = precondition
            && current["metadata"]["resourceVersion"].as_str() != Some(rv)
        {
            return Err(names.conflict(name));
        }
        let uid = current["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        let object = current.clone();
        inner.commit(&self.events, key, Change::Deleted, object);
        Ok(names.deleted(name, &uid))
    }
}

impl Inner {
    /// Writes (or removes) an object at the next version and publishes the event.
    fn commit(
        &mut self,
        events: &broadcast::Sender<Event>,
        key: Key,
        change: Change,
        mut object: Value,
    ) -> Value {
        self.version += 1;
        strategy::normalize(key.0, &mut object);
        meta_mut(&mut object).insert("resourceVersion".into(), json!(self.version.to_string()));
        match change {
            Change::Deleted => {
                self.objects.remove(&key);
            }
            Change::Added | Change::Modified => {
                self.objects.insert(key.clone(), object.clone());
            }
        }
        let (resource, namespace, name) = key;
        let event = Event {
            resource,
            change,
            version: self.version,
            namespace,
            name,
            object: object.clone(),
        };
        self.history.push_back(event.clone());
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.compacted = self.compacted.max(old.version);
            }
        }
        let by_name = (event.resource, event.name.clone());
        if let Some(watchers) = self.by_name.get(&by_name) {
            if watchers.receiver_count() == 0 {
                self.by_name.remove(&by_name);
            } else {
                let _ = watchers.send(event.clone());
            }
        }
        // No receivers is fine: nobody watches.
        let _ = events.send(event);
        object
    }
}

/// The object of `resource` named `name` in `ns`, or 404.
pub(crate) fn get_in(
    objects: &Objects,
    resource: Resource,
    ns: &str,
    name: &str,
) -> Result<Value, ApiError> {
    objects
        .get(&(resource, ns.to_owned(), name.to_owned()))
        .cloned()
        .ok_or_else(|| resource.names().not_found(name))
}

/// The objects of `resource` in `ns` (all namespaces if `None`) that `keep`
/// accepts.
pub(crate) fn list_in(
    objects: &Objects,
    resource: Resource,
    ns: Option<&str>,
    keep: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    objects
        .iter()
        .filter(|((r, n, _), _)| *r == resource && ns.is_none_or(|ns| ns == n))
        .map(|(_, v)| v)
        .filter(|v| keep(v))
        .cloned()
        .collect()
}

/// 409 if `incoming` names a resourceVersion other than the current one.
fn check_precondition(
    resource: Resource,
    current: &Value,
    incoming: &Value,
    name: &str,
) -> Result<(), ApiError> {
    match incoming["metadata"]["resourceVersion"].as_str() {
        Some(rv)
            if !rv.is_empty() && Some(rv) != current["metadata"]["resourceVersion"].as_str() =>
        {
            Err(resource.names().conflict(name))
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

/// The objects as they were at one `resourceVersion`, for stale reads.
#[derive(Debug)]
pub(crate) struct Snapshot {
    objects: Objects,
    version: u64,
}

impl Snapshot {
    /// The store as it is now.
    pub(crate) fn of(store: &Store) -> Self {
        let (objects, version) = store.objects();
        Self { objects, version }
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// As [`Store::get`], at the snapshot's version.
    pub(crate) fn get(&self, resource: Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        get_in(&self.objects, resource, ns, name)
    }

    /// As [`Store::list`], at the snapshot's version.
    pub(crate) fn list(
        &self,
        resource: Resource,
        ns: Option<&str>,
        keep: impl Fn(&Value) -> bool,
    ) -> (Vec<Value>, u64) {
        (list_in(&self.objects, resource, ns, keep), self.version)
    }
}
