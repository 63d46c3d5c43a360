//! Helpers of the coordinated-election tests (`tests/coordinated.rs` on any
//! server, `tests/real_coordinated.rs` on kube-apiserver with its controller).

use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube_elector::{ElectorConfig, ElectorHandle, LeaderElector};

use super::recorder::Recorder;
use super::{Target, wait_sees_leader};

/// Elections through the controller take a ping round (up to 5 s) and its
/// requeue interval (5 s): patience is longer than elsewhere.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Lease 6 s, renew deadline 4 s, retry 1 s: a margin of 2 s for the
/// clock lag the controller tolerates.
pub fn config(lease: &str, identity: &str, binary: &str, emulation: &str) -> ElectorConfig {
    ElectorConfig::new(lease)
        .namespace("default")
        .identity(identity)
        .lease_duration(Duration::from_secs(6))
        .renew_deadline(Duration::from_secs(4))
        .retry_period(Duration::from_secs(1))
        .coordinated(binary, emulation)
}

pub fn spawn(target: &Target, config: ElectorConfig, recorder: &Recorder) -> ElectorHandle {
    let handle = LeaderElector::new(target.client_for("candidates"), config)
        .expect("valid config")
        .spawn();
    recorder.watch(&handle);
    handle
}

pub fn candidates_api(target: &Target) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("coordination.k8s.io", "v1beta1", "LeaseCandidate"),
        "leasecandidates",
    );
    Api::namespaced_with(target.client_for("test"), target.namespace(), &resource)
}

pub async fn all_see(handles: &[ElectorHandle], leader: &str) {
    for handle in handles {
        wait_sees_leader(&mut handle.subscribe(), leader, PATIENCE).await;
    }
}

pub async fn shut_down(handles: Vec<ElectorHandle>) {
    for handle in handles {
        handle.shutdown().await.expect("a clean shutdown");
    }
}
