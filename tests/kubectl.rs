//! kubectl against the embedded server: list, get -o yaml, apply (client-side
//! and server-side), delete. Fails in CI (`CI` set) when kubectl is missing.

mod support;

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_elector_testing::LeaseApiServer;

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubectl {args:?} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

fn manifest(dir: &Path, name: &str, holder: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}-{holder}.yaml"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  holderIdentity: {holder}\n  leaseDurationSeconds: 15\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_gets_applies_and_deletes_leases() {
    if !kubectl_available() {
        assert!(std::env::var_os("CI").is_none(), "kubectl is missing in CI");
        return support::skipped("kubectl is not installed");
    }
    let server = LeaseApiServer::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("kube-elector-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    server
        .write_kubeconfig(&kubeconfig, "kubectl-user")
        .unwrap();
    let api: Api<Lease> = Api::namespaced(server.client_for("check"), "default");

    // Client-side apply creates, then updates.
    let kc = kubeconfig.clone();
    let first = manifest(&dir, "from-kubectl", "alice");
    let second = manifest(&dir, "from-kubectl", "bob");
    let out = tokio::task::spawn_blocking(move || {
        let created = kubectl(&kc, &["apply", "-f", first.to_str().unwrap()]);
        let updated = kubectl(&kc, &["apply", "-f", second.to_str().unwrap()]);
        (created, updated)
    })
    .await
    .unwrap();
    assert!(out.0.contains("created"), "{}", out.0);
    assert!(out.1.contains("configured"), "{}", out.1);
    let lease = api.get("from-kubectl").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("bob"));

    let kc = kubeconfig.clone();
    let third = manifest(&dir, "from-kubectl", "carol");
    let (list, yaml, ssa) = tokio::task::spawn_blocking(move || {
        let list = kubectl(&kc, &["get", "leases"]);
        let yaml = kubectl(&kc, &["get", "lease", "from-kubectl", "-o", "yaml"]);
        let ssa = kubectl(
            &kc,
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                third.to_str().unwrap(),
            ],
        );
        (list, yaml, ssa)
    })
    .await
    .unwrap();
    assert!(list.contains("from-kubectl"), "{list}");
    assert!(yaml.contains("holderIdentity: bob"), "{yaml}");
    assert!(yaml.contains("resourceVersion:"), "{yaml}");
    assert!(ssa.contains("serverside-applied"), "{ssa}");
    let lease = api.get("from-kubectl").await.unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("carol")
    );

    let kc = kubeconfig.clone();
    let deleted =
        tokio::task::spawn_blocking(move || kubectl(&kc, &["delete", "lease", "from-kubectl"]))
            .await
            .unwrap();
    assert!(deleted.contains("deleted"), "{deleted}");
    assert!(api.get_opt("from-kubectl").await.unwrap().is_none());
    std::fs::remove_dir_all(&dir).ok();
}
