//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! A field is a leaf path of the object (`spec.holderIdentity`,
//! `metadata.labels.app`). Every write records who set which fields; an
//! apply that would change a field another manager owns is a conflict unless
//! forced, as in kube-apiserver's structured-merge-diff (simplified: lists
//! are atomic, which is all a Lease has).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::{Map, Value, json};

type Path = Vec<String>;

/// The operation a manager's entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

type Owners = BTreeMap<(String, Operation), BTreeSet<Path>>;

/// Metadata the server owns; never counted as anybody's field.
const SERVER_FIELDS: [&str; 7] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "managedFields",
    "generation",
];

fn leaves(value: &Value) -> BTreeSet<Path> {
    fn walk(value: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    if path.is_empty() && (k == "apiVersion" || k == "kind") {
                        continue;
                    }
                    if path.len() == 1
                        && path[0] == "metadata"
                        && SERVER_FIELDS.contains(&k.as_str())
                    {
                        continue;
                    }
                    path.push(k.clone());
                    walk(v, path, out);
                    path.pop();
                }
            }
            _ if !path.is_empty() => {
                out.insert(path.clone());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

fn get<'a>(value: &'a Value, path: &Path) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

fn remove(value: &mut Value, path: &Path) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut v = value;
    for k in parents {
        match v.get_mut(k) {
            Some(next) => v = next,
            None => return,
        }
    }
    if let Some(map) = v.as_object_mut() {
        map.remove(last);
    }
}

/// `.spec.holderIdentity`, as conflict messages write a field.
fn display(path: &Path) -> String {
    path.iter().fold(String::new(), |mut s, k| {
        s.push('.');
        s.push_str(k);
        s
    })
}

fn parse_owners(object: Option<&Value>) -> Owners {
    let mut owners = Owners::new();
    let Some(entries) = object.and_then(|o| o["metadata"]["managedFields"].as_array()) else {
        return owners;
    };
    for entry in entries {
        let manager = entry["manager"].as_str().unwrap_or("").to_owned();
        let op = if entry["operation"] == "Apply" {
            Operation::Apply
        } else {
            Operation::Update
        };
        let mut set = BTreeSet::new();
        fields_v1_paths(&entry["fieldsV1"], &mut Vec::new(), &mut set);
        owners.entry((manager, op)).or_default().extend(set);
    }
    owners
}

fn fields_v1_paths(tree: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(map) = tree.as_object() else {
        return;
    };
    let children: Vec<_> = map.iter().filter(|(k, _)| k.starts_with("f:")).collect();
    if children.is_empty() && !path.is_empty() {
        out.insert(path.clone());
    }
    for (k, v) in children {
        path.push(k[2..].to_owned());
        fields_v1_paths(v, path, out);
        path.pop();
    }
}

fn to_fields_v1(paths: &BTreeSet<Path>) -> Value {
    fn insert(node: &mut Map<String, Value>, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let entry = node
            .entry(format!("f:{first}"))
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(map) = entry.as_object_mut()
            && !rest.is_empty()
        {
            // A map that holds owned children is marked with ".".
            map.entry(".").or_insert_with(|| json!({}));
            insert(map, rest);
        }
    }
    let mut root = Map::new();
    for path in paths {
        insert(&mut root, path);
    }
    Value::Object(root)
}

fn write_owners(object: &mut Value, owners: &Owners, touched: &BTreeSet<(String, Operation)>) {
    let previous = object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    // The version the fields were written at: the object's own (the
    // server always sets it before fields are recorded).
    let api_version = object["apiVersion"]
        .as_str()
        .unwrap_or("coordination.k8s.io/v1")
        .to_owned();
    let entries: Vec<Value> = owners
        .iter()
        .filter(|(_, paths)| !paths.is_empty())
        .map(|((manager, op), paths)| {
            let key = (manager.clone(), *op);
            let time = if touched.contains(&key) {
                json!(now)
            } else {
                previous
                    .iter()
                    .find(|e| e["manager"] == manager.as_str() && e["operation"] == op.as_str())
                    .map_or_else(|| json!(now), |e| e["time"].clone())
            };
            json!({
                "manager": manager,
                "operation": op.as_str(),
                "apiVersion": api_version,
                "time": time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(paths),
            })
        })
        .collect();
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
}

/// Records a create or update by `manager`: it takes the fields it changed
/// (all it set, on create) from whoever owned them.
pub(crate) fn record_update(
    current: Option<&Value>,
    next: &mut Value,
    manager: &str,
    op: Operation,
) {
    let mut owners = parse_owners(current);
    let changed: BTreeSet<Path> = match current {
        None => leaves(next),
        Some(current) => leaves(current)
            .union(&leaves(next))
            .filter(|p| get(current, p) != get(next, p))
            .cloned()
            .collect(),
    };
    for paths in owners.values_mut() {
        paths.retain(|p| !changed.contains(p));
    }
    let mine = owners.entry((manager.to_owned(), op)).or_default();
    mine.extend(changed.into_iter().filter(|p| get(next, p).is_some()));
    // What the client sent as managedFields is not its to decide.
    if let (Some(current), Some(meta)) = (current, next["metadata"].as_object_mut()) {
        match current["metadata"].get("managedFields") {
            Some(m) => meta.insert("managedFields".into(), m.clone()),
            None => meta.remove("managedFields"),
        };
    }
    let touched = BTreeSet::from([(manager.to_owned(), op)]);
    write_owners(next, &owners, &touched);
}

/// Server-side apply of `config` by `manager`. Returns the new object, or
/// the conflicts `(manager, field)` when another manager owns a field that
/// `config` would change and `force` is not set.
pub(crate) fn apply(
    current: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, Vec<(String, String)>> {
    let mut owners = parse_owners(current);
    let wanted = leaves(config);
    let empty = json!({});
    let base = current.unwrap_or(&empty);
    let conflicts = conflicts(&owners, manager, &wanted, base, config);
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut result = base.clone();
    // Fields this manager applied before but no longer does are removed,
    // unless someone else owns them too.
    let key = (manager.to_owned(), Operation::Apply);
    let before = owners.get(&key).cloned().unwrap_or_default();
    for p in before.difference(&wanted) {
        let shared = owners
            .iter()
            .any(|(k, paths)| *k != key && paths.contains(p));
        if !shared {
            remove(&mut result, p);
        }
    }
    for p in &wanted {
        if let Some(v) = get(config, p) {
            set(&mut result, p, v.clone());
        }
    }
    for (k, paths) in &mut owners {
        if k.0 == manager {
            continue;
        }
        // Changed fields move to the applier; unchanged ones are shared.
        paths.retain(|p| !(wanted.contains(p) && get(base, p) != get(&result, p)));
    }
    owners.insert(key.clone(), wanted);
    for field in ["apiVersion", "kind"] {
        if let Some(v) = config.get(field) {
            result[field] = v.clone();
        }
    }
    if let Some(meta) = result["metadata"].as_object_mut()
        && let Some(m) = current.and_then(|c| c["metadata"].get("managedFields"))
    {
        meta.insert("managedFields".into(), m.clone());
    }
    write_owners(&mut result, &owners, &BTreeSet::from([key]));
    Ok(result)
}

/// The fields, as `(manager, field)`, that `config` would change in `base`
/// although a manager other than `manager` owns them; sorted, once each.
fn conflicts(
    owners: &Owners,
    manager: &str,
    wanted: &BTreeSet<Path>,
    base: &Value,
    config: &Value,
) -> Vec<(String, String)> {
    let mut conflicts = Vec::new();
    for ((other, _), paths) in owners {
        if other == manager {
            continue;
        }
        for p in paths.intersection(wanted) {
            if get(base, p) != get(config, p) {
                conflicts.push((other.clone(), display(p)));
            }
        }
    }
    conflicts.sort();
    conflicts.dedup();
    conflicts
}

fn set(value: &mut Value, path: &Path, leaf: Value) {
    let mut v = value;
    for k in path {
        if !v.is_object() {
            *v = json!({});
        }
        v = v
            .as_object_mut()
            .expect("just made an object")
            .entry(k.clone())
            .or_insert(Value::Null);
    }
    *v = leaf;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str) -> Value {
        json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": holder, "leaseDurationSeconds": 10}})
    }

    #[test]
    fn apply_conflicts_with_another_managers_changed_field_unless_forced() {
        let first = apply(None, &lease("a"), "alice", false).unwrap();
        assert!(
            apply(Some(&first), &lease("a"), "bob", false).is_ok(),
            "same value: shared"
        );
        let err = apply(Some(&first), &lease("b"), "bob", false).unwrap_err();
        assert_eq!(
            err,
            vec![("alice".to_owned(), ".spec.holderIdentity".to_owned())]
        );
        let forced = apply(Some(&first), &lease("b"), "bob", true).unwrap();
        assert_eq!(forced["spec"]["holderIdentity"], "b");
        // Now bob owns it: alice conflicts.
        assert!(apply(Some(&forced), &lease("a"), "alice", false).is_err());
    }

    #[test]
    fn updates_take_ownership_of_the_fields_they_change() {
        let first = apply(None, &lease("a"), "alice", false).unwrap();
        let mut next = first.clone();
        next["spec"]["holderIdentity"] = json!("c");
        record_update(Some(&first), &mut next, "kubectl-edit", Operation::Update);
        let owners = parse_owners(Some(&next));
        let holder: Path = vec!["spec".into(), "holderIdentity".into()];
        assert!(owners[&("kubectl-edit".into(), Operation::Update)].contains(&holder));
        assert!(!owners[&("alice".into(), Operation::Apply)].contains(&holder));
    }

    #[test]
    fn fields_v1_round_trips() {
        let paths: BTreeSet<Path> = [
            vec!["spec".into(), "holderIdentity".into()],
            vec!["metadata".into(), "labels".into(), "app".into()],
        ]
        .into();
        let tree = to_fields_v1(&paths);
        let mut back = BTreeSet::new();
        fields_v1_paths(&tree, &mut Vec::new(), &mut back);
        assert_eq!(back, paths);
    }
}
