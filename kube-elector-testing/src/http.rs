//! The HTTP side: routing, faults and request handlers (watch streams are in
//! `watch.rs`).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::events::{Events, Request as EventRequest};
use crate::faults::{FaultTarget, Faults, Flag, Verb};
use crate::selector::Selector;
use crate::status::{self, ApiError};
use crate::store::{PatchKind, Store};
use crate::{admin, answers, discovery, watch};

/// kube-apiserver's default limit on request bodies (3 MiB).
pub(crate) const MAX_BODY: usize = 3 * 1024 * 1024;

pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Everything one server owns.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) events: Events,
    pub(crate) faults: Faults,
    pub(crate) shutdown: CancellationToken,
}

/// The connection is dropped without an answer (a refused or partitioned client).
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _peer)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let token = shared.shutdown.clone();
            let service = service_fn(move |req| handle(Arc::clone(&shared), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = token.cancelled() => {}
            }
        });
    }
}

// === Requests ===

/// A parsed request to the Lease API.
#[derive(Debug)]
pub(crate) struct LeaseRequest {
    pub(crate) client: String,
    pub(crate) verb: Verb,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) query: Vec<(String, String)>,
}

impl LeaseRequest {
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn respond(code: u16, body: &Value) -> Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let mut response = Response::new(
        Full::new(bytes)
            .map_err(|e: Infallible| match e {})
            .boxed_unsync(),
    );
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        CONTENT_TYPE,
        "application/json".parse().expect("static header"),
    );
    response
}

fn error(e: &ApiError) -> Response<Body> {
    respond(e.code, &e.body)
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let client = client_of(&req);

    if let Some(rest) = path.strip_prefix("/_testing") {
        let method = req.method().clone();
        return Ok(admin::handle(&shared, &method, rest, req).await);
    }

    // Faults apply to every request of the client, discovery included.
    let faults = shared.faults.snapshot();
    if faults.refused(&client) {
        return Err(Dropped);
    }
    if faults.partitioned(&client) {
        hold_until(&shared, &client, Flag::Partitioned).await;
        return Err(Dropped);
    }
    if faults.hung(&client) {
        hold_until(&shared, &client, Flag::Hung).await;
    }
    let latency = shared.faults.snapshot().latency(&client);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let ["apis", "events.k8s.io", "v1", rest @ ..] = segments.as_slice()
        && !rest.is_empty()
    {
        let method = req.method().clone();
        return Ok(events_route(&shared, &client, &method, rest, req)
            .await
            .unwrap_or_else(|e| error(&e)));
    }
    let route = match segments.as_slice() {
        ["apis", "coordination.k8s.io", "v1", rest @ ..] => match rest {
            ["leases"] => Some((None, None)),
            ["namespaces", ns, "leases"] => Some((Some(*ns), None)),
            ["namespaces", ns, "leases", name] => Some((Some(*ns), Some(*name))),
            _ => None,
        },
        _ => None,
    };
    let Some((namespace, name)) = route else {
        return Ok(match discovery::document(req.method(), &segments) {
            Some(doc) => respond(200, &doc),
            None => error(&status::no_route()),
        });
    };
    let watching = query
        .iter()
        .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    let verb = match (req.method(), name.is_some()) {
        (&Method::GET, true) => Verb::Get,
        (&Method::GET, false) if watching => Verb::Watch,
        (&Method::GET, false) => Verb::List,
        (&Method::POST, false) if namespace.is_some() => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        (method, _) => return Ok(error(&status::method_not_allowed(method.as_str()))),
    };
    shared.faults.count(&client, verb);

    let rate = shared.faults.snapshot().error_rate(&client);
    if shared.faults.draw_error(rate) {
        // 500, not 503: kube's client retries 503 (and 429, 504) on its own,
        // which would hide the fault from the code under test.
        return Ok(error(&status::injected()));
    }
    if shared.faults.snapshot().forbidden(&client, verb) {
        return Ok(error(&status::forbidden(
            &client,
            verb.as_str(),
            namespace,
            name,
        )));
    }

    let request = LeaseRequest {
        client: client.clone(),
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

/// The `events.k8s.io/v1` paths (see `events.rs`).
async fn events_route(
    shared: &Shared,
    client: &str,
    method: &Method,
    rest: &[&str],
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let request = match (method, rest) {
        (&Method::GET, ["events"]) => EventRequest::List { namespace: None },
        (&Method::GET, ["namespaces", ns, "events"]) => EventRequest::List {
            namespace: Some(ns),
        },
        (&Method::POST, ["namespaces", ns, "events"]) => EventRequest::Create {
            namespace: ns,
            body: json_body(req, true).await?,
        },
        (&Method::GET, ["namespaces", ns, "events", name]) => EventRequest::Get {
            namespace: ns,
            name,
        },
        (&Method::PATCH, ["namespaces", ns, "events", name]) => EventRequest::Patch {
            namespace: ns,
            name,
            body: json_body(req, false).await?,
        },
        (_, ["events"] | ["namespaces", _, "events", ..]) => {
            return Err(status::method_not_allowed(method.as_str()));
        }
        _ => return Err(status::no_route()),
    };
    let (code, body) = shared.events.handle(client, request)?;
    Ok(respond(code, &body))
}

/// Holds a request while `flag` applies to `client` (or the server shuts down).
async fn hold_until(shared: &Shared, client: &str, flag: Flag) {
    let mut faults = shared.faults.subscribe();
    let lifted = faults.wait_for(|s| !s.flagged(flag, client));
    tokio::select! {
        _ = lifted => {}
        () = shared.shutdown.cancelled() => {}
    }
}

/// Who sent a request: its bearer token, else the user it impersonates
/// (client-go sends no bearer token over plain HTTP, but does send
/// `Impersonate-User` for a kubeconfig user with `as:`), else anonymous.
fn client_of(req: &Request<Incoming>) -> String {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    header(AUTHORIZATION.as_str())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| header("impersonate-user"))
        .unwrap_or("system:anonymous")
        .to_owned()
}

fn field_manager(request: &LeaseRequest, req: &Request<Incoming>) -> String {
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

async fn dispatch(
    shared: &Arc<Shared>,
    request: LeaseRequest,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let store = &shared.store;
    let ns = request.namespace.as_deref();
    match (request.verb, ns, request.name.as_deref()) {
        (Verb::Get, Some(_), Some(_)) | (Verb::List, _, None) => read(shared, &request),
        (Verb::Watch, ns, None) => watch::watch(shared, &request, ns),
        (Verb::Create, Some(ns), None) => {
            let manager = field_manager(&request, &req);
            let body = json_body(req, true).await?;
            Ok(respond(201, &store.create(ns, body, &manager)?))
        }
        (Verb::Update, Some(ns), Some(name)) => {
            let manager = field_manager(&request, &req);
            let (ns, name) = (ns.to_owned(), name.to_owned());
            let body = json_body(req, true).await?;
            let (object, created) = store.update(&ns, &name, body, &manager)?;
            Ok(respond(if created { 201 } else { 200 }, &object))
        }
        (Verb::Patch, Some(ns), Some(name)) => {
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
                _ => field_manager(&request, &req),
            };
            if kind != (PatchKind::Apply { force }) && force {
                return Err(status::invalid_named(
                    "PatchOptions.meta.k8s.io",
                    "",
                    "force",
                    "Forbidden: may not be specified for non-apply patch",
                ));
            }
            let (ns, name) = (ns.to_owned(), name.to_owned());
            let body = json_body(req, false).await?;
            let status = if store.get(&ns, &name).is_ok() {
                200
            } else {
                201
            };
            Ok(respond(
                status,
                &store.patch(&ns, &name, kind, body, &manager)?,
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
                &store.delete(&ns, &name, precondition.as_deref())?,
            ))
        }
        _ => Err(status::no_route()),
    }
}

/// GET and LIST, from the store or, for a client with stale reads, from
/// its snapshot.
fn read(shared: &Shared, request: &LeaseRequest) -> Result<Response<Body>, ApiError> {
    let store = &shared.store;
    let stale = shared.faults.snapshot().stale_reads(&request.client);
    match (
        request.verb,
        request.namespace.as_deref(),
        request.name.as_deref(),
    ) {
        (Verb::Get, Some(ns), Some(name)) => Ok(respond(
            200,
            &match &stale {
                Some(snapshot) => snapshot.get(ns, name)?,
                None => store.get(ns, name)?,
            },
        )),
        (Verb::List, ns, None) => {
            let filter = Selector::parse(request)?;
            let keep = |o: &Value| filter.matches(o);
            let (items, version) = match &stale {
                Some(snapshot) => snapshot.list(ns, keep),
                None => store.list(ns, keep),
            };
            let items: Vec<Value> = items.into_iter().map(strip_type).collect();
            Ok(respond(
                200,
                &json!({
                    "kind": "LeaseList",
                    "apiVersion": "coordination.k8s.io/v1",
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

/// Reads a JSON body: at most [`MAX_BODY`] bytes; for POST and PUT only
/// `application/json` (kube-apiserver also takes YAML and protobuf, which no
/// client of this server sends).
async fn json_body(req: Request<Incoming>, check_type: bool) -> Result<Value, ApiError> {
    if check_type {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media != "application/json" && !media.is_empty() {
            return Err(status::unsupported_body_type(&content_type));
        }
    }
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| status::too_large(MAX_BODY))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| {
        status::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

// === Queries ===

pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(b);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Used by the admin endpoint.
pub(crate) fn target_of(name: &str) -> FaultTarget {
    if name.is_empty() || name == "all" || name == "*" {
        FaultTarget::All
    } else {
        FaultTarget::Client(name.to_owned())
    }
}

pub(crate) fn json_response(code: u16, body: &Value) -> Response<Body> {
    respond(code, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_decoded() {
        assert_eq!(
            parse_query("fieldSelector=metadata.name%3Dfoo&watch=true&x"),
            vec![
                ("fieldSelector".to_owned(), "metadata.name=foo".to_owned()),
                ("watch".to_owned(), "true".to_owned()),
                ("x".to_owned(), String::new()),
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
    }
}
