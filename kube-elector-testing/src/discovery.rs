//! Discovery documents, enough for kubectl to find Leases (and Events).

use hyper::Method;
use serde_json::{Value, json};

const VERSION: &str = "v1.34.0";

/// The document for a discovery path, if it is one.
pub(crate) fn document(method: &Method, segments: &[&str]) -> Option<Value> {
    if method != Method::GET {
        return None;
    }
    Some(match segments {
        ["version"] => version(),
        ["api"] => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1" }],
        }),
        ["api", "v1"] => json!({
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [],
        }),
        ["apis"] => json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [group("coordination.k8s.io"), group("events.k8s.io")],
        }),
        ["apis", name @ ("coordination.k8s.io" | "events.k8s.io")] => {
            let mut group = group(name);
            group["kind"] = json!("APIGroup");
            group["apiVersion"] = json!("v1");
            group
        }
        ["apis", "coordination.k8s.io", "v1"] => resources(
            "coordination.k8s.io/v1",
            &json!({
                "name": "leases",
                "singularName": "lease",
                "namespaced": true,
                "kind": "Lease",
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }),
        ),
        ["apis", "events.k8s.io", "v1"] => resources(
            "events.k8s.io/v1",
            &json!({
                "name": "events",
                "singularName": "event",
                "namespaced": true,
                "kind": "Event",
                "shortNames": ["ev"],
                "verbs": ["create", "get", "list", "patch"],
            }),
        ),
        ["openapi", "v3"] => json!({
            "paths": {
                "apis/coordination.k8s.io/v1": {
                    "serverRelativeURL": "/openapi/v3/apis/coordination.k8s.io/v1?hash=kube-elector-embedded"
                }
            }
        }),
        ["openapi", "v3", "apis", "coordination.k8s.io", "v1"] => openapi_v3(),
        _ => return None,
    })
}

/// `/version`.
fn version() -> Value {
    json!({
        "major": "1",
        "minor": "34",
        "gitVersion": format!("{VERSION}+kube-elector-embedded"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "n/a",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

/// An API group served at version v1 only, as `/apis` lists it.
fn group(name: &str) -> Value {
    let version = json!({ "groupVersion": format!("{name}/v1"), "version": "v1" });
    json!({
        "name": name,
        "versions": [version],
        "preferredVersion": version,
    })
}

/// The resources of a group version: here, one each.
fn resources(group_version: &str, resource: &Value) -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [resource],
    })
}

/// Just enough `OpenAPI` v3 for kubectl: the Lease paths, and the query
/// parameters kubectl checks for before it lets the server validate fields.
fn openapi_v3() -> Value {
    let gvk = json!({ "group": "coordination.k8s.io", "version": "v1", "kind": "Lease" });
    let param = |name: &str| json!({ "name": name, "in": "query", "schema": { "type": "string", "uniqueItems": true } });
    let params = json!([
        param("dryRun"),
        param("fieldManager"),
        param("fieldValidation")
    ]);
    let operation = |action: &str| {
        json!({
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "responses": { "200": { "description": "OK" } },
        })
    };
    let mut patch = operation("patch");
    patch["parameters"] = json!([
        param("dryRun"),
        param("fieldManager"),
        param("fieldValidation"),
        param("force")
    ]);
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": VERSION },
        "paths": {
            "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases": {
                "get": operation("list"),
                "post": operation("post"),
            },
            "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}": {
                "get": operation("get"),
                "put": operation("put"),
                "patch": patch,
                "delete": operation("delete"),
            },
        },
        "components": { "schemas": {} },
    })
}
