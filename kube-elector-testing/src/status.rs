//! Kubernetes `Status` bodies, shaped as kube-apiserver shapes them.
//!
//! Errors about an object are methods of the [`Names`] of the resource it
//! belongs to ([`LEASES`], [`LEASE_CANDIDATES`], [`EVENTS`]), so that each
//! message names its group and resource as kube-apiserver does; errors about
//! a request are functions.

use serde_json::{Value, json};

/// An API error: the HTTP code and the `Status` body.
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) body: Value,
}

/// A resource as kube-apiserver names it in `Status` messages and details.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Names {
    pub(crate) group: &'static str,
    /// The plural, as in paths: `leases`.
    pub(crate) plural: &'static str,
    pub(crate) kind: &'static str,
}

/// `coordination.k8s.io/v1` Leases.
pub(crate) const LEASES: Names = Names {
    group: "coordination.k8s.io",
    plural: "leases",
    kind: "Lease",
};

/// `coordination.k8s.io/v1beta1` `LeaseCandidate`s.
pub(crate) const LEASE_CANDIDATES: Names = Names {
    group: "coordination.k8s.io",
    plural: "leasecandidates",
    kind: "LeaseCandidate",
};

/// `events.k8s.io/v1` Events.
pub(crate) const EVENTS: Names = Names {
    group: "events.k8s.io",
    plural: "events",
    kind: "Event",
};

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

// === impl Names ===

impl Names {
    /// The `details` of a Status about one object (kube-apiserver puts the
    /// plural in `kind`).
    fn details(self, name: &str) -> Value {
        json!({ "name": name, "group": self.group, "kind": self.plural })
    }

    pub(crate) fn not_found(self, name: &str) -> ApiError {
        failure(
            404,
            "NotFound",
            format!("{}.{} \"{name}\" not found", self.plural, self.group),
            Some(self.details(name)),
        )
    }

    pub(crate) fn already_exists(self, name: &str) -> ApiError {
        failure(
            409,
            "AlreadyExists",
            format!("{}.{} \"{name}\" already exists", self.plural, self.group),
            Some(self.details(name)),
        )
    }

    pub(crate) fn conflict(self, name: &str) -> ApiError {
        failure(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {}.{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                self.plural, self.group
            ),
            Some(self.details(name)),
        )
    }

    /// 409 for a write whose body names a uid the stored object does not
    /// have, worded as kube-apiserver's storage layer words it.
    pub(crate) fn uid_precondition(
        self,
        ns: &str,
        name: &str,
        wanted: &str,
        stored: &str,
    ) -> ApiError {
        let Self { group, plural, .. } = self;
        failure(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {plural}.{group} \"{name}\": StorageError: invalid object, Code: 4, Key: /registry/{plural}/{ns}/{name}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {wanted}, UID in object meta: {stored}"
            ),
            Some(self.details(name)),
        )
    }

    /// A server-side apply conflict: `(manager, field path)` per conflicting field.
    pub(crate) fn apply_conflict(self, name: &str, conflicts: &[(String, String)]) -> ApiError {
        let listed = conflicts
            .iter()
            .map(|(manager, field)| format!("conflict with \"{manager}\": {field}"))
            .collect::<Vec<_>>()
            .join("\n- ");
        let message = match conflicts.len() {
            1 => format!("Apply failed with 1 conflict: {listed}"),
            count => format!("Apply failed with {count} conflicts:\n- {listed}"),
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
        let mut details = self.details(name);
        details["causes"] = Value::Array(causes);
        failure(409, "Conflict", message, Some(details))
    }

    /// 422 Invalid: `(field, message)` per cause, as field validation words
    /// them (one cause alone, several in brackets).
    pub(crate) fn invalid(self, name: &str, causes: &[(String, String)]) -> ApiError {
        let listed = causes
            .iter()
            .map(|(field, msg)| format!("{field}: {msg}"))
            .collect::<Vec<_>>();
        let listed = if listed.len() == 1 {
            listed[0].clone()
        } else {
            format!("[{}]", listed.join(", "))
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|(field, msg)| {
                let reason = if msg.starts_with("Required value") {
                    "FieldValueRequired"
                } else if msg.starts_with("Forbidden") {
                    "FieldValueForbidden"
                } else if msg.starts_with("Unsupported value") {
                    "FieldValueNotSupported"
                } else {
                    "FieldValueInvalid"
                };
                json!({ "reason": reason, "message": msg, "field": field })
            })
            .collect();
        self.invalid_listed(name, &listed, &causes)
    }

    /// 422 Invalid with the message's list of causes and the `causes` of its
    /// details as given.
    pub(crate) fn invalid_listed(self, name: &str, listed: &str, causes: &[Value]) -> ApiError {
        failure(
            422,
            "Invalid",
            format!(
                "{}.{} \"{name}\" is invalid: {listed}",
                self.kind, self.group
            ),
            Some(json!({ "name": name, "group": self.group, "kind": self.kind, "causes": causes })),
        )
    }

    /// 422 for a PUT without a `resourceVersion` of an object that exists:
    /// kube-apiserver allows no unconditional update of Leases or
    /// `LeaseCandidate`s. It names the resource where the kind would be, as
    /// kube-apiserver's registry does.
    pub(crate) fn resource_version_required(self, name: &str) -> ApiError {
        let Self { group, plural, .. } = self;
        let message = "Invalid value: 0: must be specified for an update";
        failure(
            422,
            "Invalid",
            format!("{plural}.{group} \"{name}\" is invalid: metadata.resourceVersion: {message}"),
            Some(json!({
                "name": name,
                "group": group,
                "kind": plural,
                "causes": [{
                    "reason": "FieldValueInvalid",
                    "message": message,
                    "field": "metadata.resourceVersion",
                }],
            })),
        )
    }

    /// 403 as RBAC answers it, for one object (`name`) or a collection, in
    /// a namespace or at the cluster scope.
    pub(crate) fn forbidden(
        self,
        user: &str,
        verb: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> ApiError {
        let Self { group, plural, .. } = self;
        let resource = match name {
            Some(name) => format!("{plural}.{group} \"{name}\""),
            None => format!("{plural}.{group}"),
        };
        let scope = match namespace {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".to_owned(),
        };
        let mut details = json!({ "group": group, "kind": plural });
        if let Some(name) = name {
            details["name"] = json!(name);
        }
        failure(
            403,
            "Forbidden",
            format!(
                "{resource} is forbidden: User \"{user}\" cannot {verb} resource \"{plural}\" in API group \"{group}\"{scope}"
            ),
            Some(details),
        )
    }

    /// A Status of success, as DELETE answers for objects deleted at once.
    pub(crate) fn deleted(self, name: &str, uid: &str) -> Value {
        let mut details = self.details(name);
        details["uid"] = json!(uid);
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        })
    }
}

// === Errors about a request ===

/// 404 for a path under a group the server serves but no resource it
/// serves: an unknown resource, or a group version not served (with the
/// gates the server has), as kube-apiserver answers both.
pub(crate) fn no_route() -> ApiError {
    failure(
        404,
        "NotFound",
        "the server could not find the requested resource".into(),
        Some(json!({})),
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
