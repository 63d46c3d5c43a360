//! What kube-apiserver does to an object before it stores it: the
//! `PrepareForCreate` and `PrepareForUpdate` of its REST strategy for Leases
//! (`pkg/registry/coordination/lease/strategy.go`), then the validation of
//! each resource (`validate/`) and the normalization of its times.
//!
//! With the `CoordinatedLeaderElection` feature gate off (the default of
//! Kubernetes 1.33 to 1.37, where it is beta), `spec.strategy` and
//! `spec.preferredHolder` are silently dropped: on create always, on update
//! each unless the stored object already had it. With the gate on, both are
//! kept (and validated like every other field, in `validate/mod.rs`).

use serde_json::Value;

use crate::resource::{Gates, Resource};
use crate::status::ApiError;
use crate::validate;

/// The fields the gate guards, as the Lease spec spells them.
const GATED_FIELDS: [&str; 2] = ["strategy", "preferredHolder"];

impl Gates {
    /// A Lease about to be created (POST, create-on-PUT, apply to a missing
    /// object).
    pub(crate) fn prepare_for_create(self, object: &mut Value) {
        if self.coordinated_leader_election {
            return;
        }
        for field in GATED_FIELDS {
            remove_spec_field(object, field);
        }
    }

    /// A Lease about to replace `old` (PUT, patch, apply): a field is dropped
    /// only if `old` did not use it, so that turning the gate off keeps what
    /// Leases already hold.
    pub(crate) fn prepare_for_update(self, object: &mut Value, old: &Value) {
        if self.coordinated_leader_election {
            return;
        }
        for field in GATED_FIELDS {
            // Absent and `null` are both Go's nil pointer.
            if old["spec"][field].is_null() {
                remove_spec_field(object, field);
            }
        }
    }
}

// === Per resource ===

/// The strategy's `PrepareForCreate`: what the server drops from an
/// object of `resource` about to be created.
pub(crate) fn prepare_for_create(resource: Resource, gates: Gates, object: &mut Value) {
    match resource {
        Resource::Leases => gates.prepare_for_create(object),
        Resource::LeaseCandidates => {}
    }
}

/// The strategy's `PrepareForUpdate`: what the server drops from an
/// object of `resource` about to replace `old`.
pub(crate) fn prepare_for_update(
    resource: Resource,
    gates: Gates,
    object: &mut Value,
    old: &Value,
) {
    match resource {
        Resource::Leases => gates.prepare_for_update(object, old),
        Resource::LeaseCandidates => {}
    }
}

/// Validation of an object named `name` about to be created: 400 for
/// what does not decode, 422 listing every invalid field.
pub(crate) fn validate_create(
    resource: Resource,
    object: &Value,
    name: &str,
) -> Result<(), ApiError> {
    match resource {
        Resource::Leases => validate::lease(object, name),
        Resource::LeaseCandidates => validate::candidate::create(object, name),
    }
}

/// Validation of an object named `name` about to replace `old`.
pub(crate) fn validate_update(
    resource: Resource,
    object: &Value,
    old: &Value,
    name: &str,
) -> Result<(), ApiError> {
    match resource {
        Resource::Leases => validate::lease(object, name),
        Resource::LeaseCandidates => validate::candidate::update(object, old, name),
    }
}

/// Rewrites the `MicroTime`s of a valid object as kube-apiserver
/// serializes them.
pub(crate) fn normalize(resource: Resource, object: &mut Value) {
    let fields: &[&str] = match resource {
        Resource::Leases => &["acquireTime", "renewTime"],
        Resource::LeaseCandidates => &["pingTime", "renewTime"],
    };
    validate::normalize_times(object, fields);
}

fn remove_spec_field(object: &mut Value, field: &str) {
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OFF: Gates = Gates {
        coordinated_leader_election: false,
    };
    const ON: Gates = Gates {
        coordinated_leader_election: true,
    };

    fn lease(spec: &Value) -> Value {
        json!({"metadata": {"name": "l"}, "spec": spec})
    }

    #[test]
    fn gate_off_drops_both_fields_on_create_and_keeps_the_rest() {
        let mut object = lease(&json!({
            "holderIdentity": "a", "strategy": "OldestEmulationVersion", "preferredHolder": "b"
        }));
        OFF.prepare_for_create(&mut object);
        assert_eq!(object, lease(&json!({"holderIdentity": "a"})));
    }

    #[test]
    fn gate_on_keeps_both_fields_on_create_and_update() {
        let spec = json!({"strategy": "OldestEmulationVersion", "preferredHolder": "b"});
        let mut object = lease(&spec);
        ON.prepare_for_create(&mut object);
        assert_eq!(object, lease(&spec));
        ON.prepare_for_update(&mut object, &lease(&json!({})));
        assert_eq!(object, lease(&spec));
    }

    #[test]
    fn gate_off_update_drops_only_the_fields_the_old_object_did_not_use() {
        let new = || {
            lease(&json!({
                "holderIdentity": "a", "strategy": "example.com/mine", "preferredHolder": "c"
            }))
        };
        let mut object = new();
        OFF.prepare_for_update(&mut object, &lease(&json!({"holderIdentity": "a"})));
        assert_eq!(object, lease(&json!({"holderIdentity": "a"})));

        let mut object = new();
        let old = lease(&json!({"strategy": "OldestEmulationVersion", "preferredHolder": null}));
        OFF.prepare_for_update(&mut object, &old);
        assert_eq!(
            object,
            lease(&json!({"holderIdentity": "a", "strategy": "example.com/mine"}))
        );

        let mut object = new();
        let old = lease(&json!({"strategy": "OldestEmulationVersion", "preferredHolder": "b"}));
        OFF.prepare_for_update(&mut object, &old);
        assert_eq!(object, new(), "both were in use: both are kept");
    }

    #[test]
    fn a_lease_without_a_spec_is_left_alone() {
        let mut object = json!({"metadata": {"name": "l"}});
        OFF.prepare_for_create(&mut object);
        OFF.prepare_for_update(&mut object, &json!({}));
        assert_eq!(object, json!({"metadata": {"name": "l"}}));
    }
}
