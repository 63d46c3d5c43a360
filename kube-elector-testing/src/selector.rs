//! `fieldSelector` and `labelSelector`, for LIST and WATCH.

use serde_json::Value;

use crate::http::LeaseRequest;
use crate::status::{self, ApiError};

/// `fieldSelector` (`metadata.name`, `metadata.namespace`; `=`, `==`, `!=`)
/// and `labelSelector` (equality only).
#[derive(Debug, Default)]
pub(crate) struct Selector {
    pub(crate) fields: Vec<(String, bool, String)>,
    labels: Vec<(String, bool, String)>,
}

impl Selector {
    pub(crate) fn parse(request: &LeaseRequest) -> Result<Self, ApiError> {
        let mut selector = Self::default();
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
                if param == "fieldSelector"
                    && !matches!(key, "metadata.name" | "metadata.namespace")
                {
                    return Err(status::bad_request(format!(
                        "field label not supported: {key}"
                    )));
                }
                out.push((key.trim().to_owned(), equal, value.trim().to_owned()));
            }
        }
        Ok(selector)
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        let fields_ok = self.fields.iter().all(|(key, equal, value)| {
            let actual = match key.as_str() {
                "metadata.name" => object["metadata"]["name"].as_str(),
                _ => object["metadata"]["namespace"].as_str(),
            };
            (actual == Some(value.as_str())) == *equal
        });
        let labels_ok = self.labels.iter().all(|(key, equal, value)| {
            (object["metadata"]["labels"][key].as_str() == Some(value.as_str())) == *equal
        });
        fields_ok && labels_ok
    }
}
