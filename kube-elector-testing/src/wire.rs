//! What goes over the wire: response bodies, JSON answers, the request
//! bodies the server reads, and a connection dropped without an answer.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response, StatusCode};
use serde_json::Value;

use crate::status::{self, ApiError};

/// kube-apiserver's default limit on request bodies (3 MiB).
pub(crate) const MAX_BODY: usize = 3 * 1024 * 1024;

pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// The connection is dropped without an answer (a refused or partitioned client).
#[derive(Debug)]
pub(crate) struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

pub(crate) fn respond(code: u16, body: &Value) -> Response<Body> {
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

pub(crate) fn error(e: &ApiError) -> Response<Body> {
    respond(e.code, &e.body)
}

/// Go's `http.NotFound`, which ends kube-apiserver's delegation chain: what
/// it answers under a group it does not serve (no `Status` body).
pub(crate) fn page_not_found() -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(b"404 page not found\n"))
            .map_err(|e: Infallible| match e {})
            .boxed_unsync(),
    );
    *response.status_mut() = StatusCode::NOT_FOUND;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("static header"),
    );
    headers.insert(
        "x-content-type-options",
        "nosniff".parse().expect("static header"),
    );
    response
}

/// Reads a JSON body: at most [`MAX_BODY`] bytes; for POST and PUT only
/// `application/json` (kube-apiserver also takes YAML and protobuf, which no
/// client of this server sends).
pub(crate) async fn json_body(req: Request<Incoming>, check_type: bool) -> Result<Value, ApiError> {
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
