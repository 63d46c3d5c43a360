//! Kubernetes `Status` bodies, shaped as kube-apiserver shapes them.

use serde_json::{Value, json};

pub(crate) const GROUP: &str = "coordination.k8s.io";
pub(crate) const RESOURCE: &str = "leases";

/// An API error: the HTTP code and the `Status` body.
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) body: Value,
}

#[allow(clippy::needless_pass_by_value)] // every caller builds the message for it
pub(crate) fn failure(
    code: u16,
    reason: &str,
    message: String,
    details: Option<Value>,
) -> ApiError {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    ApiError { code, body }
}

fn details(name: &str) -> Value {
    json!({ "name": name, "group": GROUP, "kind": RESOURCE })
}

pub(crate) fn not_found(name: &str) -> ApiError {
    failure(
        404,
        "NotFound",
        format!("{RESOURCE}.{GROUP} \"{name}\" not found"),
        Some(details(name)),
    )
}

pub(crate) fn no_route() -> ApiError {
    failure(
        404,
        "NotFound",
        "the server could not find the requested resource".into(),
        Some(
            json!({ "causes": [{ "reason": "UnexpectedServerResponse", "message": "404 page not found" }] }),
        ),
    )
}

/// 409 for a write whose body names a uid the stored object does not have,
/// worded as kube-apiserver's storage layer words it.
pub(crate) fn uid_precondition(ns: &str, name: &str, wanted: &str, stored: &str) -> ApiError {
    failure(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {RESOURCE}.{GROUP} \"{name}\": StorageError: invalid object, Code: 4, Key: /registry/{RESOURCE}/{ns}/{name}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {wanted}, UID in object meta: {stored}"
        ),
        Some(details(name)),
    )
}

pub(crate) fn already_exists(name: &str) -> ApiError {
    failure(
        409,
        "AlreadyExists",
        format!("{RESOURCE}.{GROUP} \"{name}\" already exists"),
        Some(details(name)),
    )
}

pub(crate) fn conflict(name: &str) -> ApiError {
    failure(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {RESOURCE}.{GROUP} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
        ),
        Some(details(name)),
    )
}

/// A server-side apply conflict: `(manager, field path)` per conflicting field.
pub(crate) fn apply_conflict(name: &str, conflicts: &[(String, String)]) -> ApiError {
    let (count, noun) = (
        conflicts.len(),
        if conflicts.len() == 1 {
            "conflict"
        } else {
            "conflicts"
        },
    );
    let listed = conflicts
        .iter()
        .map(|(manager, field)| format!("conflict with \"{manager}\": {field}"))
        .collect::<Vec<_>>()
        .join("\n- ");
    let message = if count == 1 {
        format!("Apply failed with 1 conflict: {listed}")
    } else {
        format!("Apply failed with {count} {noun}:\n- {listed}")
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(manager, field)| {
            json!({
                "reason": "FieldManagerConflict",
                "message": format!("conflict with \"{manager}\""),
                "field": field,
            })
        })
        .collect();
    let mut d = details(name);
    d["causes"] = Value::Array(causes);
    failure(409, "Conflict", message, Some(d))
}

/// 422 Invalid: `(field, message)` per cause, as field validation words them.
pub(crate) fn invalid(name: &str, causes: &[(String, String)]) -> ApiError {
    let listed = causes
        .iter()
        .map(|(field, msg)| format!("{field}: {msg}"))
        .collect::<Vec<_>>();
    let message = if listed.len() == 1 {
        format!("Lease.{GROUP} \"{name}\" is invalid: {}", listed[0])
    } else {
        format!(
            "Lease.{GROUP} \"{name}\" is invalid: [{}]",
            listed.join(", ")
        )
    };
    let causes: Vec<Value> = causes
        .iter()
        .map(|(field, msg)| {
            let reason = if msg.starts_with("Required value") {
                "FieldValueRequired"
            } else {
                "FieldValueInvalid"
            };
            json!({ "reason": reason, "message": msg, "field": field })
        })
        .collect();
    failure(
        422,
        "Invalid",
        message,
        Some(json!({ "name": name, "group": GROUP, "kind": "Lease", "causes": causes })),
    )
}

pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
    failure(400, "BadRequest", message.into(), None)
}

pub(crate) fn unsupported_media_type(content_type: &str) -> ApiError {
    failure(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
        ),
        None,
    )
}

pub(crate) fn too_large(limit: usize) -> ApiError {
    failure(
        413,
        "RequestEntityTooLarge",
        format!("Request entity too large: limit is {limit}"),
        None,
    )
}

pub(crate) fn method_not_allowed(method: &str) -> ApiError {
    failure(
        405,
        "MethodNotAllowed",
        format!("the server does not allow this method on the requested resource ({method})"),
        None,
    )
}

pub(crate) fn forbidden(
    user: &str,
    verb: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> ApiError {
    let resource = match name {
        Some(name) => format!("{RESOURCE}.{GROUP} \"{name}\""),
        None => format!("{RESOURCE}.{GROUP}"),
    };
    let scope = match namespace {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".to_owned(),
    };
    let mut d = json!({ "group": GROUP, "kind": RESOURCE });
    if let Some(name) = name {
        d["name"] = json!(name);
    }
    failure(
        403,
        "Forbidden",
        format!(
            "{resource} is forbidden: User \"{user}\" cannot {verb} resource \"{RESOURCE}\" in API group \"{GROUP}\"{scope}"
        ),
        Some(d),
    )
}

pub(crate) fn injected() -> ApiError {
    failure(
        500,
        "InternalError",
        "Internal error occurred: injected fault".into(),
        Some(json!({ "causes": [{ "message": "injected fault" }] })),
    )
}

/// The ERROR a broken watch cache sends inside a watch stream.
pub(crate) fn watch_failed() -> ApiError {
    failure(
        500,
        "InternalError",
        "Internal error occurred: injected watch failure".into(),
        Some(json!({ "causes": [{ "message": "injected watch failure" }] })),
    )
}

pub(crate) fn expired(requested: u64, oldest: u64) -> ApiError {
    failure(
        410,
        "Expired",
        format!("too old resource version: {requested} ({oldest})"),
        None,
    )
}

/// A Status of success, as DELETE answers for objects deleted at once.
pub(crate) fn deleted(name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": { "name": name, "group": GROUP, "kind": RESOURCE, "uid": uid },
    })
}

/// 422 for a JSON patch that does not apply.
pub(crate) fn invalid_patch(message: &str) -> ApiError {
    failure(422, "Invalid", message.to_owned(), None)
}

/// 422 Invalid for an object other than a Lease (request options).
pub(crate) fn invalid_named(kind: &str, name: &str, field: &str, message: &str) -> ApiError {
    failure(
        422,
        "Invalid",
        format!("{kind} \"{name}\" is invalid: {field}: {message}"),
        Some(json!({
            "name": name,
            "kind": kind,
            "causes": [{ "reason": "FieldValueRequired", "message": message, "field": field }],
        })),
    )
}

/// 415 for a POST or PUT body that is not JSON.
pub(crate) fn unsupported_body_type(content_type: &str) -> ApiError {
    failure(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"
        ),
        None,
    )
}
