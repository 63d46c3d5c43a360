//! What kube-apiserver refuses in a `coordination.k8s.io/v1beta1`
//! `LeaseCandidate`: `ValidateLeaseCandidate` and
//! `ValidateLeaseCandidateUpdate` of `pkg/apis/coordination/validation`,
//! cause for cause and in the same order, with the same words.
//!
//! - `metadata.name`: a `ConfigMap` key (`IsConfigMapKey`), not a DNS
//!   subdomain: letters of either case, digits, '-', '_' and '.'.
//! - `spec.leaseName`: required; immutable on update.
//! - `spec.binaryVersion`: required, a semantic version (`1.37.0`, no `v`).
//! - `spec.emulationVersion`: optional, a semantic version no newer than
//!   `binaryVersion`; required (and not `0.0.0`) with strategy
//!   `OldestEmulationVersion`.
//! - `spec.strategy`: required; `OldestEmulationVersion` or a prefixed
//!   name (`example.com/mine`), as for a Lease's strategy.
//! - `spec.pingTime`, `spec.renewTime`: `MicroTime`s (a decode error, 400,
//!   if not).

use std::cmp::Ordering;

use serde_json::Value;

use super::{check_strings, check_times, coordinated_strategy, not_an_object};
use crate::resource::Resource;
use crate::status::{ApiError, LEASE_CANDIDATES};

const RESOURCE: Resource = Resource::LeaseCandidates;

/// Validation of a `LeaseCandidate` about to be created.
pub(crate) fn create(object: &Value, name: &str) -> Result<(), ApiError> {
    let spec = decoded_spec(object)?;
    let mut causes: Vec<(String, String)> = config_map_key(name)
        .into_iter()
        .map(|reason| {
            (
                "metadata.name".to_owned(),
                format!("Invalid value: {name:?}: {reason}"),
            )
        })
        .collect();
    spec_causes(spec, &mut causes);
    result(name, &causes)
}

/// Validation of a `LeaseCandidate` about to replace `old` (the name is not
/// validated again: it cannot change).
pub(crate) fn update(object: &Value, old: &Value, name: &str) -> Result<(), ApiError> {
    let spec = decoded_spec(object)?;
    let mut causes = Vec::new();
    spec_causes(spec, &mut causes);
    let lease_name = string(spec, "leaseName");
    if lease_name != string(&old["spec"], "leaseName") {
        causes.push((
            "spec.leaseName".to_owned(),
            format!("Invalid value: {lease_name:?}: field is immutable"),
        ));
    }
    result(name, &causes)
}

fn result(name: &str, causes: &[(String, String)]) -> Result<(), ApiError> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(LEASE_CANDIDATES.invalid(name, causes))
    }
}

/// The spec, once it is known to decode: 400 otherwise.
fn decoded_spec(object: &Value) -> Result<&Value, ApiError> {
    let spec = &object["spec"];
    if !spec.is_null() && !spec.is_object() {
        return Err(not_an_object(RESOURCE, spec));
    }
    check_strings(
        RESOURCE,
        spec,
        &["leaseName", "binaryVersion", "emulationVersion", "strategy"],
    )?;
    check_times(RESOURCE, spec, &["pingTime", "renewTime"])?;
    Ok(spec)
}

/// A string field as Go sees it: absent and `null` are "".
fn string<'a>(spec: &'a Value, field: &str) -> &'a str {
    spec[field].as_str().unwrap_or("")
}

/// `ValidateLeaseCandidateSpec`.
fn spec_causes(spec: &Value, causes: &mut Vec<(String, String)>) {
    let mut push = |field: &str, message: String| causes.push((format!("spec.{field}"), message));
    if string(spec, "leaseName").is_empty() {
        push("leaseName", "Required value".to_owned());
    }
    let emulation = string(spec, "emulationVersion");
    // A version that does not parse counts as 0.0.0 below, as in Go.
    let mut ev = SemVer::default();
    if !emulation.is_empty() {
        match SemVer::parse(emulation) {
            Some(v) => ev = v,
            None => push(
                "emulationVersion",
                format!("Invalid value: {emulation:?}: must be a valid semantic version"),
            ),
        }
    }
    let binary = string(spec, "binaryVersion");
    let mut bv = SemVer::default();
    if binary.is_empty() {
        push("binaryVersion", "Required value".to_owned());
    } else {
        match SemVer::parse(binary) {
            Some(v) => bv = v,
            None => push(
                "binaryVersion",
                format!("Invalid value: {binary:?}: must be a valid semantic version"),
            ),
        }
    }
    if !binary.is_empty() && !emulation.is_empty() && bv.cmp(&ev) == Ordering::Less {
        push(
            "binaryVersion",
            format!(
                "Invalid value: {binary:?}: must be greater than or equal to `emulationVersion`"
            ),
        );
    }
    let strategy = string(spec, "strategy");
    if strategy.is_empty() {
        push("strategy", "Required value".to_owned());
    } else {
        if strategy == "OldestEmulationVersion" && ev == SemVer::default() {
            push(
                "emulationVersion",
                "Required value: must be specified when `strategy` is 'OldestEmulationVersion'"
                    .to_owned(),
            );
        }
        coordinated_strategy(strategy, "spec.strategy", causes);
    }
}

/// Why `name` is not a `ConfigMap` key, in kube-apiserver's words
/// (`IsConfigMapKey`).
fn config_map_key(name: &str) -> Vec<&'static str> {
    let mut reasons = Vec::new();
    if name.len() > 253 {
        reasons.push("must be no more than 253 characters");
    }
    let well_formed = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !well_formed {
        reasons.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        );
    }
    match name {
        "." => reasons.push("must not be '.'"),
        ".." => reasons.push("must not be '..'"),
        _ if name.starts_with("..") => reasons.push("must not start with '..'"),
        _ => {}
    }
    reasons
}

/// A semantic version as `github.com/blang/semver/v4` parses and orders
/// it (what kube-apiserver validates with): `MAJOR.MINOR.PATCH`, no
/// leading zeroes, optional `-pre.release` and `+build` parts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SemVer {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<Pre>,
}

/// One dot-separated part of a pre-release.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pre {
    Number(u64),
    Text(String),
}

impl SemVer {
    fn parse(s: &str) -> Option<Self> {
        const ALPHANUMERIC: fn(u8) -> bool = |b| b.is_ascii_alphanumeric() || b == b'-';
        let number = |part: &str| -> Option<u64> {
            if part.len() > 1 && part.starts_with('0') {
                return None;
            }
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let mut parts = s.splitn(3, '.');
        let (major, minor, rest) = (parts.next()?, parts.next()?, parts.next()?);
        let (major, minor) = (number(major)?, number(minor)?);
        let (rest, build) = match rest.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (rest, None),
        };
        let (patch, pre) = match rest.split_once('-') {
            Some((patch, pre)) => (patch, Some(pre)),
            None => (rest, None),
        };
        let patch = number(patch)?;
        let mut version = Self {
            major,
            minor,
            patch,
            pre: Vec::new(),
        };
        for part in pre
            .map(|p| p.split('.').collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if part.is_empty() {
                return None;
            }
            if part.bytes().all(|b| b.is_ascii_digit()) {
                version.pre.push(Pre::Number(number(part)?));
            } else if part.bytes().all(ALPHANUMERIC) {
                version.pre.push(Pre::Text(part.to_owned()));
            } else {
                return None;
            }
        }
        for part in build
            .map(|b| b.split('.').collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if part.is_empty() || !part.bytes().all(ALPHANUMERIC) {
                return None;
            }
        }
        Some(version)
    }
}

impl Ord for Pre {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Number(a), Self::Number(b)) => a.cmp(b),
            (Self::Number(_), Self::Text(_)) => Ordering::Less,
            (Self::Text(_), Self::Number(_)) => Ordering::Greater,
            (Self::Text(a), Self::Text(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Pre {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SemVer {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                // A release is newer than its pre-releases.
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn candidate(spec: &Value) -> Value {
        json!({"metadata": {"name": "c"}, "spec": spec})
    }

    fn valid() -> Value {
        json!({
            "leaseName": "l", "binaryVersion": "1.37.0",
            "emulationVersion": "1.36.0", "strategy": "OldestEmulationVersion",
        })
    }

    /// `field: message` of each cause, in order.
    fn causes(spec: &Value) -> Vec<String> {
        create(&candidate(spec), "c")
            .err()
            .map(|e| {
                e.body["details"]["causes"]
                    .as_array()
                    .cloned()
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
            })
            .unwrap_or_default()
    }

    fn with(field: &str, value: Value) -> Value {
        let mut spec = valid();
        spec[field] = value;
        spec
    }

    #[test]
    fn a_full_spec_is_valid_and_an_empty_one_lacks_everything() {
        assert!(causes(&valid()).is_empty());
        assert_eq!(
            causes(&json!({})),
            [
                "spec.leaseName: Required value",
                "spec.binaryVersion: Required value",
                "spec.strategy: Required value",
            ]
        );
        assert_eq!(causes(&Value::Null).len(), 3, "no spec is an empty one");
    }

    #[test]
    fn versions_are_semantic_and_emulation_is_not_newer_than_binary() {
        assert_eq!(
            causes(&with("binaryVersion", json!("v1.37.0"))),
            [
                "spec.binaryVersion: Invalid value: \"v1.37.0\": must be a valid semantic version",
                // As in Go: a version that does not parse is 0.0.0 there.
                "spec.binaryVersion: Invalid value: \"v1.37.0\": must be greater than or equal to `emulationVersion`",
            ]
        );
        assert_eq!(
            causes(&with("emulationVersion", json!("1.36"))),
            [
                "spec.emulationVersion: Invalid value: \"1.36\": must be a valid semantic version",
                "spec.emulationVersion: Required value: must be specified when `strategy` is 'OldestEmulationVersion'",
            ]
        );
        assert_eq!(
            causes(&with("emulationVersion", json!("1.38.0"))),
            [
                "spec.binaryVersion: Invalid value: \"1.37.0\": must be greater than or equal to `emulationVersion`"
            ]
        );
        assert!(causes(&with("emulationVersion", json!("1.37.0"))).is_empty());
        assert!(causes(&with("emulationVersion", json!("1.37.0-alpha.1"))).is_empty());
        let mut spec = with("emulationVersion", json!("1.37.0"));
        spec["binaryVersion"] = json!("1.37.0-rc.1");
        assert_eq!(
            causes(&spec).len(),
            1,
            "a pre-release is older than its release"
        );
        assert!(causes(&with("binaryVersion", json!("1.37.0+build.5"))).is_empty());
    }

    #[test]
    fn emulation_version_may_be_empty_only_with_another_strategy() {
        let mut spec = with("emulationVersion", json!(""));
        assert_eq!(
            causes(&spec),
            [
                "spec.emulationVersion: Required value: must be specified when `strategy` is 'OldestEmulationVersion'"
            ]
        );
        spec["strategy"] = json!("example.com/mine");
        assert!(causes(&spec).is_empty());
        assert_eq!(causes(&with("emulationVersion", json!("0.0.0"))).len(), 1);
    }

    #[test]
    fn strategies_are_known_or_prefixed() {
        assert_eq!(
            causes(&with("strategy", json!("Newest"))),
            [
                "spec.strategy.strategy: Unsupported value: \"Newest\": supported values: \"OldestEmulationVersion\""
            ]
        );
        assert!(causes(&with("strategy", json!("example.com/mine"))).is_empty());
        assert_eq!(causes(&with("strategy", json!("/mine"))).len(), 1);
    }

    #[test]
    fn names_are_config_map_keys() {
        assert!(config_map_key("Kube_Controller.manager-1").is_empty());
        assert_eq!(config_map_key("a/b").len(), 1);
        assert_eq!(config_map_key(".."), ["must not be '..'"]);
        assert_eq!(config_map_key("..a"), ["must not start with '..'"]);
        assert_eq!(config_map_key(&"a".repeat(254)).len(), 1);
        let err = create(&candidate(&valid()), "a b").unwrap_err();
        assert_eq!(err.body["details"]["causes"][0]["field"], "metadata.name");
    }

    #[test]
    fn lease_name_is_immutable_and_wrong_types_do_not_decode() {
        let old = candidate(&valid());
        let new = candidate(&with("leaseName", json!("other")));
        let err = update(&new, &old, "c").unwrap_err();
        assert_eq!(
            err.body["details"]["causes"][0]["message"],
            "Invalid value: \"other\": field is immutable"
        );
        assert!(update(&old, &old, "c").is_ok());
        assert_eq!(
            create(&candidate(&with("leaseName", json!(5))), "c")
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            create(&candidate(&with("renewTime", json!("soon"))), "c")
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn semantic_versions_parse_and_order_as_blang_semver() {
        for bad in [
            "",
            "1",
            "1.2",
            "01.2.3",
            "1.2.3-",
            "1.2.3-01",
            "1.2.3+",
            "1.2.x",
            "1.2.3-a_b",
        ] {
            assert_eq!(SemVer::parse(bad), None, "{bad}");
        }
        let v = |s| SemVer::parse(s).unwrap();
        assert!(v("1.2.3") < v("1.10.0"));
        assert!(v("1.2.3-alpha") < v("1.2.3"));
        assert!(v("1.2.3-1") < v("1.2.3-alpha"));
        assert!(v("1.2.3-alpha") < v("1.2.3-alpha.1"));
        assert_eq!(v("1.2.3+a").cmp(&v("1.2.3+b")), Ordering::Equal);
    }
}
