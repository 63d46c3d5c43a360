//! The HTTP side: the accept loop, the faults every request of a client
//! meets, and routing to the admin endpoint, the object paths of Leases and
//! `LeaseCandidate`s (`objects.rs`), the Event paths (`events.rs`) and
//! discovery.

mod events;
mod objects;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::faults::Flag;
use crate::request::parse_query;
use crate::resource::{Gates, Resource};
use crate::shared::Shared;
use crate::status;
use crate::wire::{Body, Dropped, error, page_not_found, respond};
use crate::{admin, discovery};

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

// === Routing ===

/// Where a path leads.
enum Route<'a> {
    /// The objects of a resource the server serves: all of them, those of
    /// a namespace, or one.
    Objects {
        resource: Resource,
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    },
    /// `/apis/events.k8s.io/v1/{rest}`, `rest` not empty.
    Events(&'a [&'a str]),
    /// Under a group version the server does not serve (or does not serve
    /// with its gates): `/apis/coordination.k8s.io/v1beta1/...` with the
    /// `CoordinatedLeaderElection` gate off.
    Unserved,
    /// Under `/apis/{group}` of a group the server does not serve at all.
    UnknownGroup,
    /// Discovery, or nothing.
    Other,
}

fn route<'a>(segments: &'a [&'a str], gates: Gates) -> Route<'a> {
    match segments {
        ["apis", "events.k8s.io", "v1", rest @ ..] if !rest.is_empty() => Route::Events(rest),
        ["apis", group, ..] if !matches!(*group, "coordination.k8s.io" | "events.k8s.io") => {
            Route::UnknownGroup
        }
        ["apis", "coordination.k8s.io", version, rest @ ..] => {
            let served: Vec<Resource> = Resource::ALL
                .into_iter()
                .filter(|r| r.version() == *version && r.served(gates))
                .collect();
            if served.is_empty() {
                return Route::Unserved;
            }
            let find = |plural: &str| served.iter().copied().find(|r| r.as_str() == plural);
            let (resource, namespace, name) = match rest {
                [plural] => (find(plural), None, None),
                ["namespaces", ns, plural] => (find(plural), Some(*ns), None),
                ["namespaces", ns, plural, name] => (find(plural), Some(*ns), Some(*name)),
                _ => (None, None, None),
            };
            match resource {
                Some(resource) => Route::Objects {
                    resource,
                    namespace,
                    name,
                },
                None => Route::Other,
            }
        }
        _ => Route::Other,
    }
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
    connection_faults(&shared, &client).await?;

    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match route(&segments, shared.gates) {
        Route::Events(rest) => {
            let method = req.method().clone();
            Ok(events::route(&shared, &client, &method, rest, req)
                .await
                .unwrap_or_else(|e| error(&e)))
        }
        Route::Objects {
            resource,
            namespace,
            name,
        } => objects::route(shared, client, resource, namespace, name, query, req).await,
        // kube-apiserver's group handler answers both with a Status.
        Route::Unserved => Ok(error(&status::no_route())),
        // Past every group, Go's http.NotFound ends the delegation chain.
        Route::UnknownGroup => Ok(page_not_found()),
        Route::Other => Ok(
            match discovery::document(req.method(), &segments, shared.gates) {
                Some(doc) => respond(200, &doc),
                None => error(&status::no_route()),
            },
        ),
    }
}

/// Refused, partitioned, hung and slow clients (and every client while the
/// server stops): dropped, held (then dropped, or let through) or delayed
/// before anything else happens.
async fn connection_faults(shared: &Shared, client: &str) -> Result<(), Dropped> {
    let faults = shared.faults.snapshot();
    if faults.refused(client) || faults.stopping.is_some() {
        return Err(Dropped);
    }
    if faults.partitioned(client) {
        hold_until(shared, client, Flag::Partitioned).await;
        return Err(Dropped);
    }
    if faults.hung(client) {
        hold_until(shared, client, Flag::Hung).await;
    }
    let latency = shared.faults.snapshot().latency(client);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    Ok(())
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
