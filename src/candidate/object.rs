//! The `LeaseCandidate` object as kube-elector declares it (from what
//! the task is told: `Declared`), and what a watched one says (a ping).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use crate::clock::WallClock;
use crate::config::Coordination;

/// The strategy kube-elector declares: the one kube-apiserver's controller
/// implements.
const STRATEGY: &str = "OldestEmulationVersion";

/// What the task needs to know.
#[derive(Debug)]
pub(crate) struct Declared {
    pub(crate) namespace: String,
    pub(crate) lease_name: String,
    pub(crate) identity: String,
    pub(crate) versions: Coordination,
    pub(crate) request_timeout: Duration,
    /// `lease − renew deadline`: the clock lag the controller tolerates.
    pub(crate) margin: Duration,
    pub(crate) clock: Arc<dyn WallClock>,
}

/// `coordination.k8s.io/v1beta1` `LeaseCandidate`, as a dynamic resource.
pub(super) fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("coordination.k8s.io", "v1beta1", "LeaseCandidate"),
        "leasecandidates",
    )
}

/// The candidate as `declared`, renewed now.
pub(super) fn declaration(declared: &Declared) -> DynamicObject {
    let mut object =
        DynamicObject::new(&declared.identity, &resource()).within(&declared.namespace);
    let now = MicroTime(micros(declared.clock.now()));
    object.data = serde_json::json!({
        "spec": {
            "leaseName": declared.lease_name,
            "binaryVersion": declared.versions.binary_version,
            "emulationVersion": declared.versions.emulation_version,
            "strategy": STRATEGY,
            "renewTime": now,
        }
    });
    object
}

/// When the controller pinged the candidate, if it did since it last
/// renewed.
pub(super) fn pinged(object: &DynamicObject) -> Option<Timestamp> {
    let spec = &object.data["spec"];
    let time = |field: &str| {
        spec[field]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok())
    };
    match (time("pingTime"), time("renewTime")) {
        (Some(ping), Some(renew)) if ping > renew => Some(ping),
        (Some(ping), None) => Some(ping),
        _ => None,
    }
}

/// `t` cut to whole microseconds, as a `MicroTime` is stored.
fn micros(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_newer_than_the_renew_asks_for_one() {
        let object = |ping: Option<&str>, renew: Option<&str>| {
            let mut o = DynamicObject::new("c", &resource());
            o.data = serde_json::json!({ "spec": { "pingTime": ping, "renewTime": renew } });
            o
        };
        let (early, late) = (
            Some("2026-12-02T00:00:00.000000Z"),
            Some("2026-12-02T00:00:05.000000Z"),
        );
        let late_ping = late.map(|t| t.parse::<Timestamp>().unwrap());
        assert_eq!(pinged(&object(late, early)), late_ping);
        assert_eq!(pinged(&object(early, late)), None);
        assert_eq!(pinged(&object(None, late)), None);
        assert_eq!(pinged(&object(late, None)), late_ping);
    }

    #[test]
    fn the_declaration_is_what_kube_apiserver_accepts() {
        let declared = Declared {
            namespace: "ns".into(),
            lease_name: "lease".into(),
            identity: "me".into(),
            versions: Coordination {
                binary_version: "1.34.0".into(),
                emulation_version: "1.33.0".into(),
            },
            request_timeout: Duration::from_secs(1),
            margin: Duration::from_secs(5),
            clock: Arc::new(crate::clock::SystemClock),
        };
        let spec = serde_json::json!({
            "leaseName": "lease",
            "binaryVersion": "1.34.0",
            "emulationVersion": "1.33.0",
            "strategy": "OldestEmulationVersion",
        });
        let object = declaration(&declared);
        assert_eq!(object.metadata.name.as_deref(), Some("me"));
        assert_eq!(object.metadata.namespace.as_deref(), Some("ns"));
        for field in ["leaseName", "binaryVersion", "emulationVersion", "strategy"] {
            assert_eq!(object.data["spec"][field], spec[field], "{field}");
        }
        assert!(object.data["spec"]["renewTime"].is_string());
    }
}
