//! `fieldSelector` and `labelSelector`, for LIST and WATCH.

use serde_json::Value;

use crate::request::ApiRequest;
use crate::status::{self, ApiError};

/// `fieldSelector` (the fields the resource's `GetAttrs` sets:
/// `metadata.name`, `metadata.namespace`, and for `LeaseCandidate`s
/// `spec.leaseName`; `=`, `==`, `!=`) and `labelSelector` (equality only).
#[derive(Debug, Default)]
pub(crate) struct Selector {
    pub(crate) fields: Vec<(String, bool, String)>,
    labels: Vec<(String, bool, String)>,
}

impl Selector {
    pub(crate) fn parse(request: &ApiRequest) -> Result<Self, ApiError> {
        let mut selector = Self::default();
        let field_labels = request.resource.field_labels();
        for (param, out) in [
            ("fieldSelector", &mut selector.fields),
            ("labelSelector", &mut selector.labels),
        ] {
            for term in request
                .param(param)
                .unwrap_or("")
                .split(',')
                .filter(|t| !t.is_empty())
            {
                let (key, equal, value) = if let Some((k, v)) = term.split_once("!=") {
                    (k, false, v)
                } else if let Some((k, v)) = term.split_once("==") {
                    (k, true, v)
                } else if let Some((k, v)) = term.split_once('=') {
                    (k, true, v)
                } else {
                    return Err(status::bad_request(format!("invalid selector: {term:?}")));
                };
                if param == "fieldSelector" && !field_labels.contains(&key) {
                    let known = field_labels
                        .iter()
                        .map(|label| format!("{label:?}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(status::bad_request(format!(
                        "{key:?} is not a known field selector: only {known}"
                    )));
                }
                out.push((key.trim().to_owned(), equal, value.trim().to_owned()));
            }
        }
        Ok(selector)
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        let fields_ok = self.fields.iter().all(|(key, equal, value)| {
            // A field the object lacks is "", as Go's field sets have it.
            let actual = key
                .split('.')
                .try_fold(object, |v, k| v.get(k))
                .and_then(Value::as_str)
                .unwrap_or("");
            (actual == value.as_str()) == *equal
        });
        let labels_ok = self.labels.iter().all(|(key, equal, value)| {
            (object["metadata"]["labels"][key].as_str() == Some(value.as_str())) == *equal
        });
        fields_ok && labels_ok
    }
}
