//! PATCH bodies other than server-side apply (which is `fields.rs`): RFC
//! 7386 JSON merge patches, strategic merge patches (the same for Leases)
//! and RFC 6902 JSON patches.

use serde_json::{Value, json};

use crate::status::{self, ApiError};

/// How a patch body is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Merge,
    StrategicMerge,
    Json,
    Apply { force: bool },
}

/// `current` with the merge patch `patch` applied; 400 unless the patch is
/// an object.
pub(crate) fn merged(current: &Value, patch: &Value) -> Result<Value, ApiError> {
    if !patch.is_object() {
        return Err(status::bad_request("the patch must be a JSON object"));
    }
    let mut target = current.clone();
    merge_patch(&mut target, patch);
    Ok(target)
}

/// RFC 7386 JSON merge patch (strategic merge patch is the same for Leases,
/// which have no merge-keyed lists of their own).
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().expect("just made an object");
    for (key, value) in patch {
        if key.starts_with('$') {
            continue; // strategic merge directives: nothing to do for Leases
        }
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// RFC 6902 JSON patch: add, remove, replace, test, copy, move.
pub(crate) fn json_patch(current: &Value, patch: &Value) -> Result<Value, ApiError> {
    let Value::Array(ops) = patch else {
        return Err(status::bad_request(
            "a JSON patch must be an array of operations",
        ));
    };
    let mut doc = current.clone();
    for op in ops {
        let kind = op["op"].as_str().unwrap_or("");
        let target = op["path"]
            .as_str()
            .ok_or_else(|| status::bad_request("JSON patch operation without a path"))?;
        match kind {
            "add" | "replace" => {
                let value = op
                    .get("value")
                    .cloned()
                    .ok_or_else(|| status::bad_request("missing value"))?;
                if kind == "replace" && doc.pointer(target).is_none() {
                    return Err(status::invalid_patch(&format!(
                        "replace operation does not apply: doc is missing key: {target}"
                    )));
                }
                set_pointer(&mut doc, target, value)?;
            }
            "remove" => {
                remove_pointer(&mut doc, target)?;
            }
            "test" => {
                if doc.pointer(target) != op.get("value") {
                    return Err(status::invalid_patch(&format!(
                        "testing value {target} failed"
                    )));
                }
            }
            "copy" | "move" => {
                let from = op["from"]
                    .as_str()
                    .ok_or_else(|| status::bad_request("missing from"))?;
                let value = doc
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| status::invalid_patch(&format!("missing path {from}")))?;
                if kind == "move" {
                    remove_pointer(&mut doc, from)?;
                }
                set_pointer(&mut doc, target, value)?;
            }
            other => {
                return Err(status::bad_request(format!(
                    "unexpected JSON patch operation {other:?}"
                )));
            }
        }
    }
    Ok(doc)
}

fn split_pointer(path: &str) -> Result<(String, String), ApiError> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| status::bad_request(format!("invalid JSON pointer {path:?}")))?;
    Ok((
        parent.to_owned(),
        last.replace("~1", "/").replace("~0", "~"),
    ))
}

fn set_pointer(doc: &mut Value, path: &str, value: Value) -> Result<(), ApiError> {
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            if last == "-" {
                items.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| status::invalid_patch("bad array index"))?;
            if i > items.len() {
                return Err(status::invalid_patch("array index out of bounds"));
            }
            items.insert(i, value);
            Ok(())
        }
        _ => Err(status::invalid_patch(&format!(
            "doc is missing path: {path}"
        ))),
    }
}

fn remove_pointer(doc: &mut Value, path: &str) -> Result<(), ApiError> {
    let (parent, last) = split_pointer(path)?;
    let removed = match doc.pointer_mut(&parent) {
        Some(Value::Object(map)) => map.remove(&last).is_some(),
        Some(Value::Array(items)) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    };
    if removed {
        Ok(())
    } else {
        Err(status::invalid_patch(&format!(
            "remove operation does not apply: doc is missing path: {path}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "d": 3});
        merge_patch(&mut doc, &json!({"a": {"b": null, "e": 4}, "d": [1]}));
        assert_eq!(doc, json!({"a": {"c": 2, "e": 4}, "d": [1]}));
    }

    #[test]
    fn json_patch_applies_operations_in_order() {
        let doc = json!({"spec": {"holderIdentity": "a"}});
        let patched = json_patch(
            &doc,
            &json!([
                {"op": "test", "path": "/spec/holderIdentity", "value": "a"},
                {"op": "replace", "path": "/spec/holderIdentity", "value": "b"},
                {"op": "add", "path": "/spec/leaseTransitions", "value": 3}
            ]),
        )
        .unwrap();
        assert_eq!(
            patched,
            json!({"spec": {"holderIdentity": "b", "leaseTransitions": 3}})
        );
        assert!(
            json_patch(
                &doc,
                &json!([{"op": "test", "path": "/spec/holderIdentity", "value": "x"}])
            )
            .is_err()
        );
    }
}
