//! The objects, their resourceVersions and the history that watches replay.
//!
//! Objects are kept as JSON, so fields this server does not know (newer
//! Lease fields, anything a client adds) survive a round trip, as in etcd.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::fields::{self, Operation};
use crate::status::{self, ApiError};

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

#[derive(Debug, Default)]
struct Inner {
    version: u64,
    objects: BTreeMap<(String, String), Value>,
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
}

impl Default for Store {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            events: broadcast::Sender::new(1024),
        }
    }
}

/// How a patch body is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Merge,
    StrategicMerge,
    Json,
    Apply { force: bool },
}

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn version(&self) -> u64 {
        self.lock().version
    }

    pub(crate) fn get(&self, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.lock()
            .objects
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| status::not_found(name))
    }

    /// Objects in `ns` (all namespaces if `None`) that `keep` accepts, and
    /// the version of the list.
    pub(crate) fn list(
        &self,
        ns: Option<&str>,
        keep: impl Fn(&Value) -> bool,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|((n, _), _)| ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v)
            .filter(|v| keep(v))
            .cloned()
            .collect();
        (items, inner.version)
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
            status::invalid(
                "",
                &[(
                    "metadata.name".into(),
                    "Required value: name or generateName is required".into(),
                )],
            )
        })?;
        validate(&object, &name)?;
        let mut inner = self.lock();
        let key = (ns.to_owned(), name.clone());
        if inner.objects.contains_key(&key) {
            return Err(status::already_exists(&name));
        }
        inner.uids += 1;
        let uid = make_uid(inner.uids, inner.version);
        {
            let meta = meta_mut(&mut object);
            meta.remove("resourceVersion");
            meta.insert("namespace".into(), json!(ns));
            meta.insert("uid".into(), json!(uid));
            meta.insert(
                "creationTimestamp".into(),
                json!(Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            );
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
        validate(&object, name)?;
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
                return Err(status::uid_precondition(ns, name, uid, stored));
            }
        }
        let Some(current) = inner.objects.get(&key) else {
            drop(inner);
            return match self.create(ns, object, manager) {
                Ok(created) => Ok((created, true)),
                // Created by someone else in between: a conflict.
                Err(e) if e.code == 409 => Err(status::conflict(name)),
                Err(e) => Err(e),
            };
        };
        check_precondition(current, &object, name)?;
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

    pub(crate) fn patch(
        &self,
        ns: &str,
        name: &str,
        kind: PatchKind,
        patch: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let key = (ns.to_owned(), name.to_owned());
        let current = inner.objects.get(&key).cloned();
        if let PatchKind::Apply { force } = kind {
            drop(inner);
            return self.apply(ns, name, current, patch, manager, force);
        }
        let current = current.ok_or_else(|| status::not_found(name))?;
        let mut patched = match kind {
            PatchKind::Merge | PatchKind::StrategicMerge => {
                if !patch.is_object() {
                    return Err(status::bad_request("the patch must be a JSON object"));
                }
                let mut target = current.clone();
                merge_patch(&mut target, &patch);
                target
            }
            PatchKind::Json => json_patch(&current, &patch)?,
            PatchKind::Apply { .. } => unreachable_apply(),
        };
        // A resourceVersion in the patch makes it conditional.
        check_precondition(&current, &patched, name)?;
        if object_name(&patched).as_deref() != Some(name) {
            return Err(status::bad_request(
                "metadata.name cannot be changed by a patch",
            ));
        }
        meta_mut(&mut patched).insert("namespace".into(), json!(ns));
        validate(&patched, name)?;
        let mut patched = carry_server_fields(&current, patched);
        fields::record_update(Some(&current), &mut patched, manager, Operation::Update);
        if unchanged(&current, &patched) {
            return Ok(current);
        }
        Ok(inner.commit(&self.events, key, Change::Modified, patched))
    }

    fn apply(
        &self,
        ns: &str,
        name: &str,
        current: Option<Value>,
        config: Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
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
            .map_err(|conflicts| status::apply_conflict(name, &conflicts))?;
        let mut applied = applied;
        meta_mut(&mut applied).insert("name".into(), json!(name));
        meta_mut(&mut applied).insert("namespace".into(), json!(ns));
        validate(&applied, name)?;
        match current {
            None => {
                // Apply to a missing object creates it, as kube-apiserver does.
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
                let mut inner = self.lock();
                let key = (ns.to_owned(), name.to_owned());
                if inner.objects.get(&key).map(version_of) != Some(version_of(&current)) {
                    return Err(status::conflict(name));
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
            .ok_or_else(|| status::not_found(name))?;
        if let Some(rv) = precondition
            && current["metadata"]["resourceVersion"].as_str() != Some(rv)
        {
            return Err(status::conflict(name));
        }
        let uid = current["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        let object = current.clone();
        inner.commit(&self.events, key, Change::Deleted, object);
        Ok(status::deleted(name, &uid))
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

fn unreachable_apply() -> Value {
    Value::Null
}

pub(crate) fn version_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn object_name(object: &Value) -> Option<String> {
    object["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// A UUID-shaped identifier, unique per server (the counter) and across
/// servers (the start time).
pub(crate) fn make_uid(n: u64, version: u64) -> String {
    let t = Timestamp::now().as_nanosecond().unsigned_abs();
    let low = u64::try_from(t & u128::from(u64::MAX)).unwrap_or(0);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        low >> 32,
        low & 0xffff,
        n & 0xfff,
        version & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// Checks the envelope: a JSON object of kind Lease in the path's namespace.
fn checked_object(body: Value, ns: &str) -> Result<Value, ApiError> {
    let Value::Object(_) = &body else {
        return Err(status::bad_request(
            "Object 'Kind' is missing in the request body: not a JSON object",
        ));
    };
    match body.get("kind").and_then(Value::as_str) {
        None | Some("Lease") => {}
        Some(other) => {
            return Err(status::bad_request(format!(
                "the kind of the object ({other}) does not match the resource (Lease)"
            )));
        }
    }
    match body.get("apiVersion").and_then(Value::as_str) {
        None | Some("coordination.k8s.io/v1") => {}
        Some(other) => {
            return Err(status::bad_request(format!(
                "the API version in the data ({other}) does not match the expected API version (coordination.k8s.io/v1)"
            )));
        }
    }
    if let Some(obj_ns) = body["metadata"]["namespace"].as_str()
        && !obj_ns.is_empty()
        && obj_ns != ns
    {
        return Err(status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let mut body = body;
    body["apiVersion"] = json!("coordination.k8s.io/v1");
    body["kind"] = json!("Lease");
    Ok(body)
}

/// 409 if `incoming` names a resourceVersion other than the current one.
fn check_precondition(current: &Value, incoming: &Value, name: &str) -> Result<(), ApiError> {
    match incoming["metadata"]["resourceVersion"].as_str() {
        Some(rv)
            if !rv.is_empty() && Some(rv) != current["metadata"]["resourceVersion"].as_str() =>
        {
            Err(status::conflict(name))
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

// === Validation ===

/// Validates a Lease the way kube-apiserver decodes and validates it, and
/// normalizes its `MicroTime`s to six fractional digits.
fn validate(object: &Value, name: &str) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    if let Err(reason) = dns1123_subdomain(name) {
        causes.push((
            "metadata.name".to_owned(),
            format!("Invalid value: {name:?}: {reason}"),
        ));
    }
    let spec = &object["spec"];
    if !spec.is_null() && !spec.is_object() {
        return Err(decode_error("spec must be an object"));
    }
    for (field, min) in [("leaseDurationSeconds", 1), ("leaseTransitions", 0)] {
        match &spec[field] {
            Value::Null => {}
            Value::Number(n) => match n.as_i64().and_then(|v| i32::try_from(v).ok()) {
                Some(v) if v < min => {
                    let rule = if min == 1 {
                        "must be greater than 0"
                    } else {
                        "must be greater than or equal to 0"
                    };
                    causes.push((
                        format!("spec.{field}"),
                        format!("Invalid value: {v}: {rule}"),
                    ));
                }
                Some(_) => {}
                None => return Err(decode_error(&format!("spec.{field}: {n} is not an int32"))),
            },
            other => {
                return Err(decode_error(&format!(
                    "spec.{field}: cannot unmarshal {} into an int32",
                    type_name(other)
                )));
            }
        }
    }
    for field in ["acquireTime", "renewTime"] {
        match &spec[field] {
            Value::Null => {}
            Value::String(s) => {
                if s.parse::<Timestamp>().is_err() {
                    return Err(decode_error(&format!(
                        "parsing time {s:?} as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse {s:?}"
                    )));
                }
            }
            other => {
                return Err(decode_error(&format!(
                    "spec.{field}: cannot unmarshal {} into a time",
                    type_name(other)
                )));
            }
        }
    }
    for field in ["holderIdentity", "strategy", "preferredHolder"] {
        if !(spec[field].is_null() || spec[field].is_string()) {
            return Err(decode_error(&format!(
                "spec.{field}: cannot unmarshal {} into a string",
                type_name(&spec[field])
            )));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(status::invalid(name, &causes))
    }
}

/// A DNS-1123 subdomain, as kube-apiserver requires for the names of Leases
/// (the server's own check, worded as the elector's config check words it).
fn dns1123_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    name.split('.').try_for_each(|part| {
        label_chars(part).map_err(|e| {
            format!(
                "{e} (a lowercase RFC 1123 subdomain: labels of a-z, 0-9 and '-', separated by '.')"
            )
        })
    })
}

fn label_chars(label: &str) -> Result<(), String> {
    let bytes = label.as_bytes();
    if bytes.is_empty() {
        return Err("must not have an empty part".into());
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!("contains {c:?}"));
    }
    if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

fn decode_error(detail: &str) -> ApiError {
    status::bad_request(format!(
        "Lease in version \"v1\" cannot be handled as a Lease: {detail}"
    ))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Rewrites the `MicroTime`s of a valid Lease as kube-apiserver serializes them.
pub(crate) fn normalize(object: &mut Value) {
    for field in ["acquireTime", "renewTime"] {
        if let Some(s) = object["spec"][field].as_str()
            && let Ok(t) = s.parse::<Timestamp>()
        {
            object["spec"][field] = json!(micro_time(t));
        }
    }
}

/// A `MicroTime` as Kubernetes writes it: UTC, six fractional digits.
pub(crate) fn micro_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

// === Patches ===

/// RFC 7386 JSON merge patch (strategic merge patch is the same for Leases,
/// which have no merge-keyed lists of their own).
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().expect("just made an object");
    for (key, value) in patch {
        if key.starts_with('$') {
            continue; // strategic merge directives: nothing to do for Leases
        }
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// RFC 6902 JSON patch: add, remove, replace, test, copy, move.
fn json_patch(current: &Value, patch: &Value) -> Result<Value, ApiError> {
    let Value::Array(ops) = patch else {
        return Err(status::bad_request(
            "a JSON patch must be an array of operations",
        ));
    };
    let mut doc = current.clone();
    for op in ops {
        let kind = op["op"].as_str().unwrap_or("");
        let target = op["path"]
            .as_str()
            .ok_or_else(|| status::bad_request("JSON patch operation without a path"))?;
        match kind {
            "add" | "replace" => {
                let value = op
                    .get("value")
                    .cloned()
                    .ok_or_else(|| status::bad_request("missing value"))?;
                if kind == "replace" && doc.pointer(target).is_none() {
                    return Err(status::invalid_patch(&format!(
                        "replace operation does not apply: doc is missing key: {target}"
                    )));
                }
                set_pointer(&mut doc, target, value)?;
            }
            "remove" => {
                remove_pointer(&mut doc, target)?;
            }
            "test" => {
                if doc.pointer(target) != op.get("value") {
                    return Err(status::invalid_patch(&format!(
                        "testing value {target} failed"
                    )));
                }
            }
            "copy" | "move" => {
                let from = op["from"]
                    .as_str()
                    .ok_or_else(|| status::bad_request("missing from"))?;
                let value = doc
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| status::invalid_patch(&format!("missing path {from}")))?;
                if kind == "move" {
                    remove_pointer(&mut doc, from)?;
                }
                set_pointer(&mut doc, target, value)?;
            }
            other => {
                return Err(status::bad_request(format!(
                    "unexpected JSON patch operation {other:?}"
                )));
            }
        }
    }
    Ok(doc)
}

fn split_pointer(path: &str) -> Result<(String, String), ApiError> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| status::bad_request(format!("invalid JSON pointer {path:?}")))?;
    Ok((
        parent.to_owned(),
        last.replace("~1", "/").replace("~0", "~"),
    ))
}

fn set_pointer(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            if last == "-" {
                items.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| status::invalid_patch("bad array index"))?;
            if i > items.len() {
                return Err(status::invalid_patch("array index out of bounds"));
            }
            items.insert(i, value);
            Ok(())
        }
        _ => Err(status::invalid_patch(&format!(
            "doc is missing path: {path}"
        ))),
    }
}

fn remove_pointer(doc: &mut Value, path: &str) -> Result<(), ApiError> {
    let (parent, last) = split_pointer(path)?;
    let removed = match doc.pointer_mut(&parent) {
        Some(Value::Object(map)) => map.remove(&last).is_some(),
        Some(Value::Array(items)) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    };
    if removed {
        Ok(())
    } else {
        Err(status::invalid_patch(&format!(
            "remove operation does not apply: doc is missing path: {path}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "d": 3});
        merge_patch(&mut doc, &json!({"a": {"b": null, "e": 4}, "d": [1]}));
        assert_eq!(doc, json!({"a": {"c": 2, "e": 4}, "d": [1]}));
    }

    #[test]
    fn json_patch_applies_operations_in_order() {
        let doc = json!({"spec": {"holderIdentity": "a"}});
        let patched = json_patch(
            &doc,
            &json!([
                {"op": "test", "path": "/spec/holderIdentity", "value": "a"},
                {"op": "replace", "path": "/spec/holderIdentity", "value": "b"},
                {"op": "add", "path": "/spec/leaseTransitions", "value": 3}
            ]),
        )
        .unwrap();
        assert_eq!(
            patched,
            json!({"spec": {"holderIdentity": "b", "leaseTransitions": 3}})
        );
        assert!(
            json_patch(
                &doc,
                &json!([{"op": "test", "path": "/spec/holderIdentity", "value": "x"}])
            )
            .is_err()
        );
    }

    #[test]
    fn validation_refuses_what_kube_apiserver_refuses() {
        let lease = |spec: Value| json!({"metadata": {"name": "l"}, "spec": spec});
        assert!(validate(&lease(json!({"leaseDurationSeconds": 1})), "l").is_ok());
        assert_eq!(
            validate(&lease(json!({"leaseDurationSeconds": 0})), "l")
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            validate(&lease(json!({"leaseTransitions": -1})), "l")
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            validate(&lease(json!({"renewTime": "garbage"})), "l")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            validate(&lease(json!({"holderIdentity": 5})), "l")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            validate(&lease(json!({})), "Bad_Name").unwrap_err().code,
            422
        );
    }

    #[test]
    fn names_must_be_dns_1123_subdomains() {
        assert!(dns1123_subdomain("kube-controller-manager").is_ok());
        assert!(dns1123_subdomain("a.b-c.d").is_ok());
        assert!(dns1123_subdomain("").is_err());
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_subdomain("a-").is_err());
        assert!(dns1123_subdomain("-a").is_err());
        assert!(dns1123_subdomain("A").is_err());
        assert!(dns1123_subdomain(&"a".repeat(253)).is_ok());
        assert!(dns1123_subdomain(&"a".repeat(254)).is_err());
    }

    #[test]
    fn micro_times_have_six_fractional_digits() {
        let t: Timestamp = "2026-11-24T14:00:00Z".parse().unwrap();
        assert_eq!(micro_time(t), "2026-11-24T14:00:00.000000Z");
    }
}
