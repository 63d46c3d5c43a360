//! Metadata the elector writes on its Lease besides the record: labels
//! (client-go's `LeaseLock.Labels`, controller-runtime's
//! `LeaderElectionLabels`) and owner references, and their validation.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::{ElectorConfig, dns1123_subdomain};
use crate::error::ConfigProblem;

/// Labels and owner references every write of an elector sets on its Lease.
#[derive(Clone, Debug, Default)]
pub(crate) struct LeaseMetadata {
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) owner_references: Vec<OwnerReference>,
}

impl ElectorConfig {
    /// A label every write of this elector sets on its Lease (with
    /// [`lease_labels`](Self::lease_labels) for several): the acquire that
    /// starts a term writes it, each renew (and the release) keeps it.
    ///
    /// Labels are merged, as client-go's `LeaseLock` merges its `Labels`:
    /// the keys set here are written with these values, every other label
    /// on the Lease (another holder's, or a user's) is left as it is. Two
    /// replicas that set one key to different values (each its own zone)
    /// leave the Lease with the current holder's. A label selector on the
    /// Lease's kind can so tell the election Lease from others, or find the
    /// Lease of a zone. Keys and values are checked as Kubernetes checks
    /// them when the elector is built; a bad one is a
    /// [`ConfigError`](crate::ConfigError).
    ///
    /// ```
    /// use kube_elector::ElectorConfig;
    ///
    /// let config = ElectorConfig::new("my-operator")
    ///     .lease_label("app.kubernetes.io/name", "my-operator")
    ///     .lease_label("topology.kubernetes.io/zone", "eu-west-1a");
    /// assert!(config.validate().is_ok());
    /// assert!(ElectorConfig::new("my-operator").lease_label("bad key", "x").validate().is_err());
    /// ```
    #[must_use]
    pub fn lease_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        let labels = &mut self.lease_metadata.labels;
        match labels.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => labels.push((key, value)),
        }
        self
    }

    /// Labels every write of this elector sets on its Lease; see
    /// [`lease_label`](Self::lease_label).
    #[must_use]
    pub fn lease_labels<K, V>(self, labels: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        labels
            .into_iter()
            .fold(self, |config, (k, v)| config.lease_label(k, v))
    }

    /// An owner reference every write of this elector sets on its Lease, so
    /// that the Lease is deleted with its owner (say the operator's
    /// Deployment). References are merged by `uid`: one already on the
    /// Lease is kept, this one added if missing. The owner must be in the
    /// Lease's namespace or cluster-scoped (Kubernetes' garbage collector
    /// ignores others); `apiVersion`, `kind`, `name` and `uid` must be set.
    #[must_use]
    pub fn owner_reference(mut self, owner: OwnerReference) -> Self {
        let owners = &mut self.lease_metadata.owner_references;
        owners.retain(|o| o.uid != owner.uid);
        owners.push(owner);
        self
    }
}

impl LeaseMetadata {
    /// Adds what is wrong with the labels and owner references to `problems`.
    pub(crate) fn validate(&self, problems: &mut Vec<ConfigProblem>) {
        for (key, value) in &self.labels {
            if let Err(reason) = label_key(key).and_then(|()| label_value(value)) {
                problems.push(ConfigProblem::InvalidLabel {
                    key: key.clone(),
                    value: value.clone(),
                    reason,
                });
            }
        }
        for owner in &self.owner_references {
            let missing: Vec<&str> = [
                ("apiVersion", &owner.api_version),
                ("kind", &owner.kind),
                ("name", &owner.name),
                ("uid", &owner.uid),
            ]
            .into_iter()
            .filter(|(_, value)| value.is_empty())
            .map(|(field, _)| field)
            .collect();
            if !missing.is_empty() {
                problems.push(ConfigProblem::InvalidOwnerReference {
                    owner: format!("{}/{} {}", owner.api_version, owner.kind, owner.name),
                    reason: format!("{} must not be empty", missing.join(", ")),
                });
            }
        }
    }
}

/// A label key: an optional DNS-1123 subdomain prefix and `/`, then a name
/// of at most 63 characters (Kubernetes' `IsQualifiedName`).
fn label_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            dns1123_subdomain(prefix).map_err(|reason| format!("key prefix {reason}"))?;
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Err("key name must not be empty".into());
    }
    qualified(name).map_err(|reason| format!("key name {reason}"))
}

/// A label value: empty, or a name of at most 63 characters.
fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    qualified(value).map_err(|reason| format!("value {reason}"))
}

/// At most 63 characters of `[A-Za-z0-9_.-]`, starting and ending with a
/// letter or digit.
fn qualified(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!("contains {c:?}"));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(s.chars().next()) || !alnum(s.chars().last()) {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(config: &ElectorConfig) -> Vec<ConfigProblem> {
        config
            .validate()
            .err()
            .map(|e| e.problems().to_vec())
            .unwrap_or_default()
    }

    #[test]
    fn label_keys_and_values_follow_kubernetes_syntax() {
        for (key, value) in [
            ("app", "x"),
            ("app.kubernetes.io/name", "my-operator"),
            ("topology.kubernetes.io/zone", "eu-west-1a"),
            ("a_b.c-d", ""),
            ("k", "A.b_C-9"),
        ] {
            let config = ElectorConfig::new("l").lease_label(key, value);
            assert!(problems(&config).is_empty(), "{key}={value} refused");
        }
        for (key, value) in [
            ("", "x"),
            ("bad key", "x"),
            ("/name", "x"),
            ("Example.com/name", "x"),
            ("example.com/", "x"),
            ("-app", "x"),
            ("app", "-x"),
            ("app", "a b"),
            ("app", &"x".repeat(64)),
            (&"k".repeat(64), "x"),
            ("a/b/c", "x"),
        ] {
            let config = ElectorConfig::new("l").lease_label(key, value);
            assert!(
                matches!(
                    problems(&config).as_slice(),
                    [ConfigProblem::InvalidLabel { .. }]
                ),
                "{key}={value} accepted: {:?}",
                problems(&config)
            );
        }
    }

    #[test]
    fn a_label_set_twice_keeps_the_last_value() {
        let config = ElectorConfig::new("l")
            .lease_label("zone", "a")
            .lease_labels([("zone", "b"), ("app", "c")]);
        assert_eq!(
            config.lease_metadata.labels,
            [("zone".into(), "b".into()), ("app".into(), "c".into())]
        );
    }

    #[test]
    fn an_owner_reference_needs_its_identifying_fields() {
        let owner = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "op".into(),
            uid: String::new(),
            ..OwnerReference::default()
        };
        let config = ElectorConfig::new("l").owner_reference(owner.clone());
        assert!(
            matches!(
                problems(&config).as_slice(),
                [ConfigProblem::InvalidOwnerReference { reason, .. }] if reason.contains("uid")
            ),
            "{:?}",
            problems(&config)
        );
        let config = ElectorConfig::new("l").owner_reference(OwnerReference {
            uid: "u-1".into(),
            ..owner
        });
        assert!(problems(&config).is_empty());
    }
}
