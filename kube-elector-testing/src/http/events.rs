//! The `events.k8s.io/v1` paths (the Events themselves are in `events.rs`).

use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use crate::events::Request as EventRequest;
use crate::shared::Shared;
use crate::status::{self, ApiError};
use crate::wire::{Body, json_body, respond};

/// Answers a request for the path `/apis/events.k8s.io/v1/{rest}`.
pub(super) async fn route(
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
