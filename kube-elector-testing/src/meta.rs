//! Object metadata: names, versions, uids and timestamps, as the server
//! fills them in.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

pub(crate) fn version_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn object_name(object: &Value) -> Option<String> {
    object["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

/// The `metadata` of `object`, made an object if it was not one.
pub(crate) fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// A UUID-shaped identifier, unique per server (the counter) and across
/// servers (the start time).
pub(crate) fn make_uid(n: u64, version: u64) -> String {
    let t = Timestamp::now().as_nanosecond().unsigned_abs();
    let low = u64::try_from(t & u128::from(u64::MAX)).unwrap_or(0);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        low >> 32,
        low & 0xffff,
        n & 0xfff,
        version & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// Now, as `metadata.creationTimestamp` (whole seconds, UTC).
pub(crate) fn creation_timestamp() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
