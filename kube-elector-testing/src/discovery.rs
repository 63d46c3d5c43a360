//! Discovery documents, enough for kubectl to find Leases, `LeaseCandidate`s
//! (with the `CoordinatedLeaderElection` gate on) and Events.

use hyper::Method;
use serde_json::{Value, json};

use crate::resource::Gates;
use crate::resource::Resource;

const VERSION: &str = "v1.34.0";

/// The document for a discovery path, if it is one, as a server with
/// `gates` serves it: a group version it does not serve is not listed, and
/// its paths are none (so that they answer 404).
pub(crate) fn document(method: &Method, segments: &[&str], gates: Gates) -> Option<Value> {
    if method != Method::GET {
        return None;
    }
    let served = |version: &str| {
        Resource::ALL
            .into_iter()
            .filter(|r| r.version() == version && r.served(gates))
            .collect::<Vec<_>>()
    };
    let coordination = coordination_versions(gates);
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
            "groups": [group("coordination.k8s.io", &coordination), group("events.k8s.io", &["v1"])],
        }),
        ["apis", name @ ("coordination.k8s.io" | "events.k8s.io")] => {
            let versions: &[&str] = if *name == "coordination.k8s.io" {
                &coordination
            } else {
                &["v1"]
            };
            let mut group = group(name, versions);
            group["kind"] = json!("APIGroup");
            group["apiVersion"] = json!("v1");
            group
        }
        ["apis", "coordination.k8s.io", version] if !served(version).is_empty() => resources(
            &format!("coordination.k8s.io/{version}"),
            &served(version)
                .into_iter()
                .map(|resource| {
                    json!({
                        "name": resource.as_str(),
                        "singularName": resource.singular(),
                        "namespaced": true,
                        "kind": resource.kind(),
                        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                    })
                })
                .collect::<Vec<_>>(),
        ),
        ["apis", "events.k8s.io", "v1"] => resources(
            "events.k8s.io/v1",
            &[json!({
                "name": "events",
                "singularName": "event",
                "namespaced": true,
                "kind": "Event",
                "shortNames": ["ev"],
                "verbs": ["create", "get", "list", "patch"],
            })],
        ),
        ["openapi", "v3"] => {
            let paths: serde_json::Map<String, Value> = coordination
                .iter()
                .map(|version| {
                    (
                        format!("apis/coordination.k8s.io/{version}"),
                        json!({
                            "serverRelativeURL": format!("/openapi/v3/apis/coordination.k8s.io/{version}?hash=kube-elector-embedded")
                        }),
                    )
                })
                .collect();
            json!({ "paths": paths })
        }
        ["openapi", "v3", "apis", "coordination.k8s.io", version]
            if !served(version).is_empty() =>
        {
            openapi_v3(&served(version))
        }
        _ => return None,
    })
}

/// The versions of `coordination.k8s.io` a server with `gates` serves, the
/// preferred (v1) first.
fn coordination_versions(gates: Gates) -> Vec<&'static str> {
    let mut versions = vec!["v1"];
    for resource in Resource::ALL {
        if resource.served(gates) && !versions.contains(&resource.version()) {
            versions.push(resource.version());
        }
    }
    versions
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

/// An API group served at `versions` (the first preferred), as `/apis`
/// lists it.
fn group(name: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "groupVersion": format!("{name}/{v}"), "version": v }))
        .collect();
    json!({
        "name": name,
        "preferredVersion": versions[0],
        "versions": versions,
    })
}

/// The resources of a group version.
fn resources(group_version: &str, resources: &[Value]) -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

/// Just enough `OpenAPI` v3 for kubectl: the paths of `served` (the
/// resources of one group version), and the query parameters kubectl
/// checks for before it lets the server validate fields.
fn openapi_v3(served: &[Resource]) -> Value {
    let param = |name: &str| json!({ "name": name, "in": "query", "schema": { "type": "string", "uniqueItems": true } });
    let mut paths = serde_json::Map::new();
    for resource in served {
        let gvk = json!({ "group": "coordination.k8s.io", "version": resource.version(), "kind": resource.kind() });
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
        let base = format!(
            "/apis/coordination.k8s.io/{}/namespaces/{{namespace}}/{}",
            resource.version(),
            resource.as_str()
        );
        paths.insert(
            base.clone(),
            json!({ "get": operation("list"), "post": operation("post") }),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            json!({
                "get": operation("get"),
                "put": operation("put"),
                "patch": patch,
                "delete": operation("delete"),
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": VERSION },
        "paths": paths,
        "components": { "schemas": {} },
    })
}
