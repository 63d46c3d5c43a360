//! The object paths of every resource (`coordination.k8s.io/v1` Leases,
//! `coordination.k8s.io/v1beta1` `LeaseCandidate`s): which verb a request is,
//! the faults aimed at it, and the handler of each verb (watches are in
//! `watch.rs`). What differs between resources is `Resource`'s.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, USER_AGENT, WARNING};
use hyper::{Method, Request, Response};
use serde_json::{Value, json};

use crate::faults::{Flag, Verb};
use crate::patch::PatchKind;
use crate::request::ApiRequest;
use crate::resource::Resource;
use crate::selector::Selector;
use crate::shared::Shared;
use crate::status::{self, ApiError};
use crate::wire::{Body, Dropped, error, json_body, respond};
use crate::{answers, watch};

/// Answers a request for an object path: counted, then subject to the
/// error rate and to 403s, then handled; a write's answer may be lost or
/// late. Every answer about a deprecated resource carries its `Warning`.
pub(super) async fn route(
    shared: Arc<Shared>,
    client: String,
    resource: Resource,
    namespace: Option<&str>,
    name: Option<&str>,
    query: Vec<(String, String)>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Dropped> {
    let mut answer = answer(shared, client, resource, namespace, name, query, req).await?;
    if let Some(warning) = resource.warning() {
        answer
            .headers_mut()
            .insert(WARNING, HeaderValue::from_static(warning));
    }
    Ok(answer)
}

async fn answer(
    shared: Arc<Shared>,
    client: String,
    resource: Resource,
    namespace: Option<&str>,
    name: Option<&str>,
    query: Vec<(String, String)>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Dropped> {
    let watching = query
        .iter()
        .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    let Some(verb) = verb_of(req.method(), namespace.is_some(), name.is_some(), watching) else {
        return Ok(error(&status::method_not_allowed(req.method().as_str())));
    };
    shared.faults.count(&client, resource, verb);

    let rate = shared.faults.snapshot().error_rate(&client);
    if shared.faults.take_failure(&client, verb) || shared.faults.draw_error(rate) {
        // 500, not 503: kube's client retries 503 (and 429, 504) on its own,
        // which would hide the fault from the code under test.
        return Ok(error(&status::injected()));
    }
    let by_name = query
        .iter()
        .any(|(k, v)| k == "fieldSelector" && v.starts_with("metadata.name="));
    let names_only = matches!(verb, Verb::List | Verb::Watch)
        && !by_name
        && shared.faults.snapshot().flagged(Flag::NamesOnly, &client);
    if names_only || shared.faults.snapshot().forbidden(&client, resource, verb) {
        return Ok(error(&resource.names().forbidden(
            &client,
            verb.as_str(),
            namespace,
            name,
        )));
    }

    let request = ApiRequest {
        client: client.clone(),
        resource,
        verb,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
        query,
    };
    let answer = dispatch(&shared, request, req)
        .await
        .unwrap_or_else(|e| error(&e));
    if verb.is_write() {
        return answers::write_answer(&shared, &client, answer).await;
    }
    Ok(answer)
}

/// The verb of a request, or `None` for a method the path does not allow.
fn verb_of(method: &Method, namespaced: bool, named: bool, watching: bool) -> Option<Verb> {
    Some(match (method, named) {
        (&Method::GET, true) => Verb::Get,
        (&Method::GET, false) if watching => Verb::Watch,
        (&Method::GET, false) => Verb::List,
        (&Method::POST, false) if namespaced => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        _ => return None,
    })
}

async fn dispatch(
    shared: &Arc<Shared>,
    request: ApiRequest,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let store = &shared.store;
    let resource = request.resource;
    let ns = request.namespace.as_deref();
    match (request.verb, ns, request.name.as_deref()) {
        (Verb::Get, Some(_), Some(_)) | (Verb::List, _, None) => read(shared, &request),
        (Verb::Watch, ns, None) => watch::watch(shared, &request, ns),
        (Verb::Create, Some(ns), None) => {
            let manager = field_manager(&request, &req);
            let body = json_body(req, true).await?;
            Ok(respond(201, &store.create(resource, ns, body, &manager)?))
        }
        (Verb::Update, Some(ns), Some(name)) => {
            let manager = field_manager(&request, &req);
            let (ns, name) = (ns.to_owned(), name.to_owned());
            let body = json_body(req, true).await?;
            let (object, created) = store.update(resource, &ns, &name, body, &manager)?;
            Ok(respond(if created { 201 } else { 200 }, &object))
        }
        (Verb::Patch, Some(ns), Some(name)) => {
            let (kind, manager) = patch_options(&request, &req)?;
            let (ns, name) = (ns.to_owned(), name.to_owned());
            let body = json_body(req, false).await?;
            let status = if store.get(resource, &ns, &name).is_ok() {
                200
            } else {
                201
            };
            Ok(respond(
                status,
                &store.patch(resource, &ns, &name, kind, body, &manager)?,
            ))
        }
        (Verb::Delete, Some(ns), Some(name)) => {
            let (ns, name) = (ns.to_owned(), name.to_owned());
            let options = json_body(req, false).await.unwrap_or(Value::Null);
            let precondition = options["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_owned);
            Ok(respond(
                200,
                &store.delete(resource, &ns, &name, precondition.as_deref())?,
            ))
        }
        _ => Err(status::no_route()),
    }
}

/// The kind of a PATCH (from its content type) and its field manager; 415
/// for an unknown content type, 422 for `force` or a missing `fieldManager`
/// where kube-apiserver refuses them.
fn patch_options(
    request: &ApiRequest,
    req: &Request<Incoming>,
) -> Result<(PatchKind, String), ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    let force = request.param("force") == Some("true");
    let kind = match content_type.as_str() {
        "application/merge-patch+json" => PatchKind::Merge,
        "application/strategic-merge-patch+json" => PatchKind::StrategicMerge,
        "application/json-patch+json" => PatchKind::Json,
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            PatchKind::Apply { force }
        }
        other => return Err(status::unsupported_media_type(other)),
    };
    let manager = match (kind, request.param("fieldManager")) {
        (PatchKind::Apply { .. }, None | Some("")) => {
            return Err(status::invalid_named(
                "PatchOptions.meta.k8s.io",
                "",
                "fieldManager",
                "Required value: is required for apply patch",
            ));
        }
        _ => field_manager(request, req),
    };
    if kind != (PatchKind::Apply { force }) && force {
        return Err(status::invalid_named(
            "PatchOptions.meta.k8s.io",
            "",
            "force",
            "Forbidden: may not be specified for non-apply patch",
        ));
    }
    Ok((kind, manager))
}

fn field_manager(request: &ApiRequest, req: &Request<Incoming>) -> String {
    if let Some(manager) = request.param("fieldManager").filter(|m| !m.is_empty()) {
        return manager.to_owned();
    }
    // kube-apiserver derives it from the user agent, up to the first '/'.
    req.headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

/// GET and LIST, from the store or, for a client with stale reads, from
/// its snapshot.
fn read(shared: &Shared, request: &ApiRequest) -> Result<Response<Body>, ApiError> {
    let store = &shared.store;
    let resource = request.resource;
    let stale = shared.faults.snapshot().stale_reads(&request.client);
    match (
        request.verb,
        request.namespace.as_deref(),
        request.name.as_deref(),
    ) {
        (Verb::Get, Some(ns), Some(name)) => Ok(respond(
            200,
            &match &stale {
                Some(snapshot) => snapshot.get(resource, ns, name)?,
                None => store.get(resource, ns, name)?,
            },
        )),
        (Verb::List, ns, None) => {
            let filter = Selector::parse(request)?;
            let keep = |o: &Value| filter.matches(o);
            let (items, version) = match &stale {
                Some(snapshot) => snapshot.list(resource, ns, keep),
                None => store.list(resource, ns, keep),
            };
            let items: Vec<Value> = items.into_iter().map(strip_type).collect();
            Ok(respond(
                200,
                &json!({
                    "kind": format!("{}List", resource.kind()),
                    "apiVersion": resource.api_version(),
                    "metadata": { "resourceVersion": version.to_string() },
                    "items": items,
                }),
            ))
        }
        _ => Err(status::no_route()),
    }
}

/// Items of a list carry no `kind`/`apiVersion`, as kube-apiserver sends them.
fn strip_type(mut item: Value) -> Value {
    if let Some(map) = item.as_object_mut() {
        map.remove("kind");
        map.remove("apiVersion");
    }
    item
}
