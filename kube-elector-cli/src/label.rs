//! `serve --label-pod`: the leader's Pod carries `kube-elector.io/leader:
//! "true"`, for a Service that routes to the leader.
//!
//! Which Pods belong to the election: every replica labels its own Pod
//! `kube-elector.io/election: <lease>` when it first leads (in the same
//! patch as the leader label), so the Pods that may carry the leader label
//! are those with both. A new leader first removes the leader label from
//! every other such Pod, then labels its own, so that as the API server
//! sees it at most one Pod of the election carries it (a partitioned or
//! crashed leader cannot remove its own; its successor does). On losing
//! the term or shutting down, a replica removes its own label (best
//! effort). This is advisory routing, not fencing: a request routed
//! through a Service may still reach an old leader while the endpoints
//! catch up, so the workload must still check leadership (the fencing
//! token) before a write that must come from the leader.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};

/// The label the leader's Pod carries.
pub(crate) const LEADER: &str = "kube-elector.io/leader";
/// The label naming the election (the Lease) a Pod takes part in.
pub(crate) const ELECTION: &str = "kube-elector.io/election";

/// One write of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Remove the leader label from another Pod.
    Unlabel(String),
    /// Label this replica's own Pod.
    Label(String),
}

/// The writes that make `me` the only labelled Pod: every other Pod that
/// carries the leader label loses it first, then `me` gets it (skipped if
/// it already carries it and nobody else does).
pub(crate) fn plan(me: &str, labelled: &[(String, BTreeMap<String, String>)]) -> Vec<Step> {
    let mut steps: Vec<Step> = labelled
        .iter()
        .filter(|(name, labels)| {
            name != me && labels.get(LEADER).map(String::as_str) == Some("true")
        })
        .map(|(name, _)| Step::Unlabel(name.clone()))
        .collect();
    let mine_labelled = labelled
        .iter()
        .any(|(name, labels)| name == me && labels.get(LEADER).map(String::as_str) == Some("true"));
    if !steps.is_empty() || !mine_labelled {
        steps.push(Step::Label(me.to_owned()));
    }
    steps
}

/// Labels Pods of one election in one namespace.
#[derive(Clone, Debug)]
pub(crate) struct PodLabels {
    pub(crate) pods: kube::Api<Pod>,
    pub(crate) pod_name: String,
    pub(crate) election: String,
}

impl PodLabels {
    /// Makes this replica's Pod the only one labelled (see [`plan`]).
    pub(crate) async fn lead(&self) -> Result<(), kube::Error> {
        let selector = format!("{LEADER}=true,{ELECTION}={}", self.election);
        let listed = self
            .pods
            .list_metadata(&ListParams::default().labels(&selector))
            .await?;
        let labelled: Vec<_> = listed
            .items
            .into_iter()
            .filter_map(|pod| Some((pod.metadata.name?, pod.metadata.labels.unwrap_or_default())))
            .collect();
        for step in plan(&self.pod_name, &labelled) {
            match step {
                Step::Unlabel(name) => {
                    tracing::info!(pod = %name, "removing the leader label from another Pod");
                    self.set(&name, None).await?;
                }
                Step::Label(name) => {
                    tracing::info!(pod = %name, "labelling this Pod as the leader");
                    self.set(&name, Some("true")).await?;
                }
            }
        }
        Ok(())
    }

    /// Removes this replica's own label.
    pub(crate) async fn step_down(&self) -> Result<(), kube::Error> {
        self.set(&self.pod_name, None).await
    }

    async fn set(&self, pod: &str, leader: Option<&str>) -> Result<(), kube::Error> {
        let patch = serde_json::json!({
            "metadata": { "labels": { LEADER: leader, ELECTION: self.election } }
        });
        let answer = self
            .pods
            .patch_metadata(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        match answer {
            // A Pod that is gone carries no label.
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            other => other.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, leader: bool) -> (String, BTreeMap<String, String>) {
        let mut labels = BTreeMap::from([(ELECTION.to_owned(), "l".to_owned())]);
        if leader {
            labels.insert(LEADER.to_owned(), "true".to_owned());
        }
        (name.to_owned(), labels)
    }

    #[test]
    fn a_new_leader_unlabels_every_other_pod_before_it_labels_its_own() {
        let steps = plan("c", &[pod("a", true), pod("b", true), pod("c", false)]);
        assert_eq!(
            steps,
            [
                Step::Unlabel("a".into()),
                Step::Unlabel("b".into()),
                Step::Label("c".into())
            ]
        );
    }

    #[test]
    fn a_leader_never_unlabels_itself_and_relabels_only_when_needed() {
        assert_eq!(plan("a", &[pod("a", true)]), []);
        assert_eq!(plan("a", &[]), [Step::Label("a".into())]);
        assert_eq!(
            plan("a", &[pod("a", true), pod("b", true)]),
            [Step::Unlabel("b".into()), Step::Label("a".into())]
        );
    }

    #[test]
    fn pods_without_the_leader_label_are_left_alone() {
        assert_eq!(
            plan("a", &[pod("b", false), pod("c", false)]),
            [Step::Label("a".into())]
        );
    }
}
