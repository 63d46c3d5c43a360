//! `events.k8s.io/v1` Events: what kube-runtime's `Recorder` sends (a
//! create, then merge patches that bump a series), and reads for tests and
//! kubectl. Kept apart from the Lease store: Events are written, not watched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::faults::FaultTarget;
use crate::status::{self, ApiError};
use crate::store::{make_uid, merge_patch};

const GROUP: &str = "events.k8s.io";
const RESOURCE: &str = "events";

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
        let writes = matches!(request, Request::Create { .. } | Request::Patch { .. });
        if writes
            && inner.forbidden.iter().any(|t| {
                matches!(t, FaultTarget::All) || *t == FaultTarget::Client(client.to_owned())
            })
        {
            return Err(forbidden(client, &request));
        }
        match request {
            Request::List { namespace } => {
                let items: Vec<Value> = inner
                    .items
                    .iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
                    .map(|(_, item)| item.clone())
                    .collect();
                Ok((
                    200,
                    json!({
                        "kind": "EventList",
                        "apiVersion": "events.k8s.io/v1",
                        "metadata": { "resourceVersion": inner.version.to_string() },
                        "items": items,
                    }),
                ))
            }
            Request::Get { namespace, name } => inner
                .items
                .get(&(namespace.to_owned(), name.to_owned()))
                .map(|item| (200, item.clone()))
                .ok_or_else(|| not_found(name)),
            Request::Create { namespace, body } => {
                let mut event = checked(body, namespace)?;
                let name = event["metadata"]["name"].as_str().unwrap_or("").to_owned();
                let key = (namespace.to_owned(), name.clone());
                if inner.items.contains_key(&key) {
                    return Err(already_exists(&name));
                }
                inner.version += 1;
                let version = inner.version;
                let meta = &mut event["metadata"];
                meta["namespace"] = json!(namespace);
                meta["uid"] = json!(make_uid(version, version));
                meta["resourceVersion"] = json!(version.to_string());
                meta["creationTimestamp"] =
                    json!(Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
                inner.items.insert(key, event.clone());
                Ok((201, event))
            }
            Request::Patch {
                namespace,
                name,
                body,
            } => {
                let key = (namespace.to_owned(), name.to_owned());
                let Some(current) = inner.items.get(&key).cloned() else {
                    return Err(not_found(name));
                };
                let mut next = current.clone();
                merge_patch(&mut next, &body);
                // Server-filled fields are the server's.
                for field in ["uid", "creationTimestamp", "namespace", "name"] {
                    next["metadata"][field] = current["metadata"][field].clone();
                }
                let next = checked(next, namespace)?;
                inner.version += 1;
                let mut next = next;
                next["metadata"]["resourceVersion"] = json!(inner.version.to_string());
                inner.items.insert(key, next.clone());
                Ok((200, next))
            }
        }
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

fn details(name: &str) -> Value {
    json!({ "name": name, "group": GROUP, "kind": RESOURCE })
}

fn not_found(name: &str) -> ApiError {
    status::failure(
        404,
        "NotFound",
        format!("{RESOURCE}.{GROUP} \"{name}\" not found"),
        Some(details(name)),
    )
}

fn already_exists(name: &str) -> ApiError {
    status::failure(
        409,
        "AlreadyExists",
        format!("{RESOURCE}.{GROUP} \"{name}\" already exists"),
        Some(details(name)),
    )
}

fn invalid(name: &str, causes: &[(String, String)]) -> ApiError {
    let list: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
    let mut d = details(name);
    d["kind"] = json!("Event");
    d["causes"] = causes
        .iter()
        .map(|(field, message)| json!({ "reason": "FieldValueRequired", "message": message, "field": field }))
        .collect();
    status::failure(
        422,
        "Invalid",
        format!("Event.{GROUP} \"{name}\" is invalid: [{}]", list.join(", ")),
        Some(d),
    )
}

fn forbidden(user: &str, request: &Request<'_>) -> ApiError {
    let (verb, namespace) = match request {
        Request::Create { namespace, .. } => ("create", *namespace),
        Request::Patch { namespace, .. } => ("patch", *namespace),
        Request::List { namespace } => ("list", namespace.unwrap_or("")),
        Request::Get { namespace, .. } => ("get", *namespace),
    };
    status::failure(
        403,
        "Forbidden",
        format!(
            "{RESOURCE}.{GROUP} is forbidden: User \"{user}\" cannot {verb} resource \"{RESOURCE}\" in API group \"{GROUP}\" in the namespace \"{namespace}\""
        ),
        Some(json!({ "group": GROUP, "kind": RESOURCE })),
    )
}
