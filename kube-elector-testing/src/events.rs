//! `events.k8s.io/v1` Events: what kube-runtime's `Recorder` sends (a
//! create, then merge patches that bump a series), and reads for tests and
//! kubectl. Kept apart from the Lease store: Events are written, not watched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};

use crate::faults::FaultTarget;
use crate::meta::{creation_timestamp, make_uid};
use crate::patch::merge_patch;
use crate::status::{self, ApiError, EVENTS};

/// The Events of one server.
#[derive(Debug, Default)]
pub(crate) struct Events {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    version: u64,
    items: BTreeMap<(String, String), Value>,
    /// Clients whose Event writes are refused with 403.
    forbidden: BTreeSet<FaultTarget>,
}

/// What a request to the Events API asks.
pub(crate) enum Request<'a> {
    List {
        namespace: Option<&'a str>,
    },
    Get {
        namespace: &'a str,
        name: &'a str,
    },
    Create {
        namespace: &'a str,
        body: Value,
    },
    Patch {
        namespace: &'a str,
        name: &'a str,
        body: Value,
    },
}

impl Events {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn forbid(&self, target: FaultTarget, forbidden: bool) {
        let mut inner = self.lock();
        if forbidden {
            inner.forbidden.insert(target);
        } else {
            inner.forbidden.remove(&target);
        }
    }

    /// Answers `request` from `client`: the HTTP code and body.
    pub(crate) fn handle(
        &self,
        client: &str,
        request: Request<'_>,
    ) -> Result<(u16, Value), ApiError> {
        let mut inner = self.lock();
        match request {
            Request::List { namespace } => Ok((200, inner.list(namespace))),
            Request::Get { namespace, name } => inner
                .items
                .get(&(namespace.to_owned(), name.to_owned()))
                .map(|item| (200, item.clone()))
                .ok_or_else(|| EVENTS.not_found(name)),
            Request::Create { namespace, body } => {
                inner.check_allowed(client, "create", namespace)?;
                inner.create(namespace, body).map(|event| (201, event))
            }
            Request::Patch {
                namespace,
                name,
                body,
            } => {
                inner.check_allowed(client, "patch", namespace)?;
                inner
                    .patch(namespace, name, &body)
                    .map(|event| (200, event))
            }
        }
    }
}

// === impl Inner ===

impl Inner {
    /// 403 for a write of a client whose Event writes are refused.
    fn check_allowed(&self, client: &str, verb: &str, namespace: &str) -> Result<(), ApiError> {
        let refused = self
            .forbidden
            .iter()
            .any(|t| matches!(t, FaultTarget::All) || *t == FaultTarget::Client(client.to_owned()));
        if refused {
            return Err(EVENTS.forbidden(client, verb, Some(namespace), None));
        }
        Ok(())
    }

    fn list(&self, namespace: Option<&str>) -> Value {
        let items: Vec<Value> = self
            .items
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, item)| item.clone())
            .collect();
        json!({
            "kind": "EventList",
            "apiVersion": "events.k8s.io/v1",
            "metadata": { "resourceVersion": self.version.to_string() },
            "items": items,
        })
    }

    fn create(&mut self, namespace: &str, body: Value) -> Result<Value, ApiError> {
        let mut event = checked(body, namespace)?;
        let name = event["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let key = (namespace.to_owned(), name.clone());
        if self.items.contains_key(&key) {
            return Err(EVENTS.already_exists(&name));
        }
        self.version += 1;
        let version = self.version;
        let meta = &mut event["metadata"];
        meta["namespace"] = json!(namespace);
        meta["uid"] = json!(make_uid(version, version));
        meta["resourceVersion"] = json!(version.to_string());
        meta["creationTimestamp"] = json!(creation_timestamp());
        self.items.insert(key, event.clone());
        Ok(event)
    }

    /// A merge patch, as kube-runtime's `Recorder` sends to bump a series.
    fn patch(&mut self, namespace: &str, name: &str, body: &Value) -> Result<Value, ApiError> {
        let key = (namespace.to_owned(), name.to_owned());
        let Some(current) = self.items.get(&key).cloned() else {
            return Err(EVENTS.not_found(name));
        };
        let mut next = current.clone();
        merge_patch(&mut next, body);
        // Server-filled fields are the server's.
        for field in ["uid", "creationTimestamp", "namespace", "name"] {
            next["metadata"][field] = current["metadata"][field].clone();
        }
        let mut next = checked(next, namespace)?;
        self.version += 1;
        next["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.items.insert(key, next.clone());
        Ok(next)
    }
}

/// The Event `body` as stored, or why kube-apiserver would refuse it.
fn checked(mut body: Value, namespace: &str) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(status::bad_request("the body is not a JSON object"));
    }
    body["kind"] = json!("Event");
    body["apiVersion"] = json!("events.k8s.io/v1");
    if !body["metadata"].is_object() {
        body["metadata"] = json!({});
    }
    let name = body["metadata"]["name"].as_str().unwrap_or("").to_owned();
    if let Some(ns) = body["metadata"]["namespace"].as_str()
        && ns != namespace
    {
        return Err(status::bad_request(format!(
            "the namespace of the provided object does not match the namespace sent on the request ({ns} != {namespace})"
        )));
    }
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push((
            "metadata.name".to_owned(),
            "Required value: name or generateName is required".to_owned(),
        ));
    }
    for field in [
        "eventTime",
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
    ] {
        if body[field].as_str().is_none_or(str::is_empty) {
            causes.push((field.to_owned(), "Required value".to_owned()));
        }
    }
    if body["type"]
        .as_str()
        .is_some_and(|t| t != "Normal" && t != "Warning")
    {
        causes.push((
            "type".to_owned(),
            "Unsupported value: must be Normal or Warning".to_owned(),
        ));
    }
    if causes.is_empty() {
        Ok(body)
    } else {
        Err(invalid(&name, &causes))
    }
}

/// 422 Invalid for an Event. Unlike kube-apiserver (and [`Names::invalid`]),
/// the causes are always in brackets and all `FieldValueRequired`, as this
/// server has always answered.
///
/// [`Names::invalid`]: crate::status::Names::invalid
fn invalid(name: &str, causes: &[(String, String)]) -> ApiError {
    let list: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
    let causes: Vec<Value> = causes
        .iter()
        .map(|(field, message)| json!({ "reason": "FieldValueRequired", "message": message, "field": field }))
        .collect();
    EVENTS.invalid_listed(name, &format!("[{}]", list.join(", ")), &causes)
}
