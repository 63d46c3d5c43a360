//! What kube-apiserver refuses in an object: the envelope (kind,
//! apiVersion, namespace), what does not decode (400) and what does not
//! validate (422); and how it writes the `MicroTime`s it accepts. Leases
//! here, `LeaseCandidate`s in `candidate.rs`.
//!
//! The checks are this server's own, not the elector's: the fake must not
//! borrow from the code it judges.

pub(crate) mod candidate;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::resource::Resource;
use crate::status::{self, ApiError, LEASES};

/// Checks the envelope: a JSON object of the resource's kind and version,
/// in the path's namespace.
pub(crate) fn checked_object(resource: Resource, body: Value, ns: &str) -> Result<Value, ApiError> {
    let Value::Object(_) = &body else {
        return Err(status::bad_request(
            "Object 'Kind' is missing in the request body: not a JSON object",
        ));
    };
    let kind = resource.kind();
    let api_version = resource.api_version();
    match body.get("kind").and_then(Value::as_str) {
        None => {}
        Some(k) if k == kind => {}
        Some(other) => {
            return Err(status::bad_request(format!(
                "the kind of the object ({other}) does not match the resource ({kind})"
            )));
        }
    }
    match body.get("apiVersion").and_then(Value::as_str) {
        None => {}
        Some(v) if v == api_version => {}
        Some(other) => {
            return Err(status::bad_request(format!(
                "the API version in the data ({other}) does not match the expected API version ({api_version})"
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
    body["apiVersion"] = json!(api_version);
    body["kind"] = json!(kind);
    Ok(body)
}

/// Validates a Lease named `name` the way kube-apiserver decodes and
/// validates it: 400 for what does not decode, 422 listing every invalid
/// field otherwise.
pub(crate) fn lease(object: &Value, name: &str) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    if let Err(reason) = dns1123_subdomain(name) {
        causes.push((
            "metadata.name".to_owned(),
            format!("Invalid value: {name:?}: {reason}"),
        ));
    }
    let spec = &object["spec"];
    if !spec.is_null() && !spec.is_object() {
        return Err(not_an_object(Resource::Leases, spec));
    }
    check_int32s(spec, &mut causes)?;
    check_times(Resource::Leases, spec, &["acquireTime", "renewTime"])?;
    check_strings(
        Resource::Leases,
        spec,
        &["holderIdentity", "strategy", "preferredHolder"],
    )?;
    check_coordination(spec, &mut causes);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(LEASES.invalid(name, &causes))
    }
}

/// `leaseDurationSeconds` (> 0) and `leaseTransitions` (>= 0): out of range
/// is a cause, not an int32 a decode error.
fn check_int32s(spec: &Value, causes: &mut Vec<(String, String)>) -> Result<(), ApiError> {
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
                None => {
                    return Err(decode_error(
                        Resource::Leases,
                        &format!("spec.{field}: {n} is not an int32"),
                    ));
                }
            },
            other => {
                return Err(decode_error(
                    Resource::Leases,
                    &format!(
                        "json: cannot unmarshal {} into Go struct field LeaseSpec.spec.{field} of type int32",
                        type_name(other)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `fields` of `spec` (`acquireTime`, `renewTime`) must decode as
/// `MicroTime`s.
pub(crate) fn check_times(
    resource: Resource,
    spec: &Value,
    fields: &[&str],
) -> Result<(), ApiError> {
    for &field in fields {
        match &spec[field] {
            Value::Null => {}
            Value::String(s) => {
                if !is_micro_time(s) {
                    return Err(decode_error(
                        resource,
                        &format!(
                            "parsing time {s:?} as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse {s:?}"
                        ),
                    ));
                }
            }
            other => {
                return Err(decode_error(
                    resource,
                    &format!(
                        "json: cannot unmarshal {} into Go struct field {}Spec.spec.{field} of type string",
                        type_name(other),
                        resource.kind()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Whether `s` parses as Go's `time.Parse(RFC3339Micro, s)` parses a
/// `MicroTime`: `2006-01-02T15:04:05.000000Z07:00`, exactly six fractional
/// digits, then `Z` or a `+hh:mm` offset.
fn is_micro_time(s: &str) -> bool {
    let bytes = s.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd.dddddd";
    if bytes.len() < shape.len() + 1 {
        return false;
    }
    let (stamp, zone) = bytes.split_at(shape.len());
    let shaped = stamp.iter().zip(shape).all(|(b, want)| match want {
        b'd' => b.is_ascii_digit(),
        want => b == want,
    });
    let zoned = match zone {
        b"Z" => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()),
        _ => false,
    };
    shaped && zoned && s.parse::<Timestamp>().is_ok()
}

/// `fields` of `spec` must decode as strings (`null` is Go's empty value).
pub(crate) fn check_strings(
    resource: Resource,
    spec: &Value,
    fields: &[&str],
) -> Result<(), ApiError> {
    for &field in fields {
        if !(spec[field].is_null() || spec[field].is_string()) {
            return Err(decode_error(
                resource,
                &format!(
                    "json: cannot unmarshal {} into Go struct field {}Spec.spec.{field} of type string",
                    type_name(&spec[field]),
                    resource.kind()
                ),
            ));
        }
    }
    Ok(())
}

/// The strategies Kubernetes itself defines; others must be qualified names
/// with a prefix (`example.com/mine`).
const KNOWN_STRATEGIES: [&str; 1] = ["OldestEmulationVersion"];

/// `strategy` and `preferredHolder`, as kube-apiserver validates them
/// whatever its feature gates (with `CoordinatedLeaderElection` off, they
/// were dropped before: `strategy.rs`). The strategy's field path names
/// `strategy` twice, as kube-apiserver's does.
fn check_coordination(spec: &Value, causes: &mut Vec<(String, String)>) {
    let strategy = spec["strategy"].as_str();
    if let Some(strategy) = strategy {
        coordinated_strategy(strategy, "spec.strategy", causes);
    }
    let preferred = spec["preferredHolder"].as_str();
    if preferred.is_some_and(|p| !p.is_empty()) && strategy.is_none_or(str::is_empty) {
        causes.push((
            "spec.preferredHolder".to_owned(),
            "Forbidden: may only be specified if `strategy` is defined".to_owned(),
        ));
    }
}

/// kube-apiserver's `ValidateCoordinatedLeaseStrategy`, for Leases and
/// `LeaseCandidate`s alike: a strategy Kubernetes defines, or a qualified
/// name with a prefix. The causes name `{path}.strategy`.
pub(crate) fn coordinated_strategy(strategy: &str, path: &str, causes: &mut Vec<(String, String)>) {
    let field = format!("{path}.strategy");
    if strategy.contains('/') {
        for reason in qualified_name(strategy) {
            causes.push((
                field.clone(),
                format!("Invalid value: {strategy:?}: {reason}"),
            ));
        }
    } else if !KNOWN_STRATEGIES.contains(&strategy) {
        let supported = KNOWN_STRATEGIES.map(|s| format!("{s:?}")).join(", ");
        causes.push((
            field,
            format!("Unsupported value: {strategy:?}: supported values: {supported}"),
        ));
    }
}

/// Why `value` (which has a '/') is not a qualified name, in
/// kube-apiserver's words: an optional DNS-1123 subdomain prefix and '/',
/// then a name of at most 63 alphanumerics, '-', '_' or '.', starting and
/// ending with an alphanumeric.
fn qualified_name(value: &str) -> Vec<String> {
    const NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
    const NAME_REGEX: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
    let examples = format!(
        "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '{NAME_REGEX}')"
    );
    let mut reasons = Vec::new();
    let (prefix, name) = match value.split('/').collect::<Vec<_>>()[..] {
        [name] => (None, name),
        [prefix, name] => (Some(prefix), name),
        _ => {
            return vec![format!(
                "a valid label key {NAME_RULE} {examples} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    match prefix {
        Some("") => reasons.push("prefix part must be non-empty".to_owned()),
        Some(prefix) => {
            if prefix.len() > 253 {
                reasons.push("prefix part must be no more than 253 bytes".to_owned());
            }
            if !is_dns1123_subdomain(prefix) {
                reasons.push(
                    "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                        .to_owned(),
                );
            }
        }
        None => {}
    }
    if name.is_empty() {
        reasons.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        reasons.push("name part must be no more than 63 bytes".to_owned());
    }
    let bytes = name.as_bytes();
    let alphanumeric = |b: &u8| b.is_ascii_alphanumeric();
    let well_formed = bytes.first().is_some_and(alphanumeric)
        && bytes.last().is_some_and(alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !well_formed {
        reasons.push(format!("name part {NAME_RULE} {examples}"));
    }
    reasons
}

/// The shape of a DNS-1123 subdomain (its length is checked apart).
fn is_dns1123_subdomain(value: &str) -> bool {
    value.split('.').all(|label| label_chars(label).is_ok())
}

/// A DNS-1123 subdomain, as kube-apiserver requires for the names of Leases.
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

/// 400 for a spec that is not a JSON object, in Go's words.
pub(crate) fn not_an_object(resource: Resource, spec: &Value) -> ApiError {
    let kind = resource.kind();
    decode_error(
        resource,
        &format!(
            "json: cannot unmarshal {} into Go struct field {kind}.spec of type {}.{kind}Spec",
            type_name(spec),
            resource.version()
        ),
    )
}

/// 400 for a body that does not decode as the resource's kind.
pub(crate) fn decode_error(resource: Resource, detail: &str) -> ApiError {
    let kind = resource.kind();
    let version = resource.version();
    status::bad_request(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: {detail}"
    ))
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Rewrites the `MicroTime`s `fields` of a valid object's spec as
/// kube-apiserver serializes them.
pub(crate) fn normalize_times(object: &mut Value, fields: &[&str]) {
    for &field in fields {
        if let Some(s) = object["spec"][field].as_str()
            && let Ok(t) = s.parse::<Timestamp>()
        {
            object["spec"][field] = json!(micro_time(t));
        }
    }
}

/// A `MicroTime` as Kubernetes writes it: UTC, six fractional digits.
fn micro_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::lease as validate;
    use super::*;

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
    fn a_preferred_holder_needs_a_strategy_and_a_strategy_must_be_known_or_prefixed() {
        let causes = |spec: Value| {
            let object = json!({"metadata": {"name": "l"}, "spec": spec});
            validate(&object, "l")
                .err()
                .map(|e| e.body["details"]["causes"].clone())
        };
        assert_eq!(
            causes(json!({"strategy": "OldestEmulationVersion", "preferredHolder": "b"})),
            None
        );
        assert_eq!(
            causes(json!({"strategy": "example.com/mine", "preferredHolder": "b"})),
            None
        );
        assert_eq!(
            causes(json!({"preferredHolder": ""})),
            None,
            "an empty holder is no holder"
        );
        assert_eq!(
            causes(json!({"preferredHolder": "b"})),
            Some(json!([{
                "reason": "FieldValueForbidden",
                "message": "Forbidden: may only be specified if `strategy` is defined",
                "field": "spec.preferredHolder",
            }]))
        );
        assert_eq!(
            causes(json!({"strategy": "Newest"})),
            Some(json!([{
                "reason": "FieldValueNotSupported",
                "message": "Unsupported value: \"Newest\": supported values: \"OldestEmulationVersion\"",
                "field": "spec.strategy.strategy",
            }]))
        );
        let fields = |spec: Value| -> Vec<String> {
            causes(spec)
                .and_then(|c| c.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    format!(
                        "{}: {}",
                        c["field"].as_str().unwrap(),
                        c["message"].as_str().unwrap()
                    )
                })
                .collect()
        };
        // An empty strategy is an unsupported one, and defines nothing.
        assert_eq!(
            fields(json!({"strategy": "", "preferredHolder": "b"})).len(),
            2
        );
        assert_eq!(fields(json!({"strategy": "Example.com/x"})).len(), 1);
        assert!(
            fields(json!({"strategy": "a/b/c"}))[0].contains("a valid label key must consist of")
        );
        assert_eq!(
            fields(json!({"strategy": "/x"})),
            ["spec.strategy.strategy: Invalid value: \"/x\": prefix part must be non-empty"]
        );
        assert_eq!(
            fields(json!({"strategy": "example.com/"})).len(),
            2,
            "empty name, and its shape"
        );
        assert_eq!(
            fields(json!({"strategy": format!("example.com/{}", "x".repeat(64))})).len(),
            1
        );
        assert_eq!(fields(json!({"strategy": "example.com/-x"})).len(), 1);
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
    fn micro_times_parse_only_in_go_s_layout() {
        assert!(is_micro_time("2026-11-24T14:00:00.123456Z"));
        assert!(is_micro_time("2026-11-24T14:00:00.123456+02:00"));
        for bad in [
            "2026-11-24T14:00:00Z",
            "2026-11-24T14:00:00.123Z",
            "2026-11-24T14:00:00.123456789Z",
            "2026-13-24T14:00:00.123456Z",
            "2026-11-24 14:00:00.123456Z",
            "not a time",
        ] {
            assert!(!is_micro_time(bad), "{bad}");
        }
    }

    #[test]
    fn micro_times_have_six_fractional_digits() {
        let t: Timestamp = "2026-11-24T14:00:00Z".parse().unwrap();
        assert_eq!(micro_time(t), "2026-11-24T14:00:00.000000Z");
    }
}
