//! The README's quick start (examples/quickstart.rs) as real processes
//! against the embedded server: it says when it campaigns, leads, stops and
//! releases; the first leads; a real SIGTERM makes it hand over, the second
//! takes over, and both exit 0. Against a dead server it says why it cannot
//! reach it. And the README's block is the example, word for word.

mod support;

use kube_elector_testing::LeaseApiServer;
use support::process::Process;

/// The example's program, as a module; `run` is its `main`.
mod quickstart {
    include!("../examples/quickstart-program/program.rs");

    pub(super) fn run() -> anyhow::Result<()> {
        main()
    }
}

/// Not a test: the child process of the tests below (run with `--ignored`).
#[test]
#[ignore = "the child process of the quick start's tests"]
fn quickstart_child() {
    quickstart::run().expect("the quick start's main");
}

/// The README's Quick start block and examples/quickstart.rs are one
/// program: the block is the example's program, word for word.
#[test]
fn the_readme_quick_start_is_examples_quickstart() {
    let readme = include_str!("../README.md");
    let program = include_str!("../examples/quickstart-program/program.rs");
    let section = &readme[readme
        .find("## Quick start")
        .expect("a Quick start section")..];
    let fence = "```rust,no_run\n";
    let block = &section[section
        .find(fence)
        .expect("a Rust block in the Quick start")
        + fence.len()..];
    let block = &block[..block.find("```").expect("the block's end")];
    assert_eq!(
        block, program,
        "README.md's Quick start block differs from examples/quickstart-program/program.rs"
    );
}

/// A replica of the quick start: this binary's `quickstart_child`.
fn replica(name: &str, kubeconfig: &std::path::Path) -> Process {
    Process::start(name, "quickstart_child", kubeconfig, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_over_and_both_replicas_exit_0() {
    let server = LeaseApiServer::start().await.unwrap();
    let dir = std::env::temp_dir().join(support::unique_name("quickstart"));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, "quickstart").unwrap();
    tokio::task::spawn_blocking(move || {
        // With no configuration it says when it campaigns, leads, stops and
        // releases (its own line first, then the elector's info logs).
        let mut first = replica("first", &kubeconfig);
        first.wait_for("campaigning for the Lease");
        first.wait_for("started leading");
        let mut second = replica("second", &kubeconfig);
        second.wait_for("campaigning for the Lease");
        first.sigterm();
        first.wait_for("stopped leading");
        first.wait_for("released the Lease");
        first.wait_for("shut down: Released");
        second.wait_for("started leading");
        assert_eq!(first.exit_code(), Some(0), "the first replica's exit code");
        second.sigterm();
        second.wait_for("stopped leading");
        second.wait_for("shut down: Released");
        assert_eq!(
            second.exit_code(),
            Some(0),
            "the second replica's exit code"
        );
    })
    .await
    .unwrap();
}

/// Against an address nothing listens on, the quick start says (with no
/// configuration) that its requests fail and why, instead of nothing.
#[test]
fn against_a_dead_server_it_says_why_it_cannot_reach_it() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
        // dropped here: nothing listens on the port any more
    };
    let dir = std::env::temp_dir().join(support::unique_name("quickstart-dead"));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: dead
  cluster:
    server: http://127.0.0.1:{port}
contexts:
- name: dead
  context:
    cluster: dead
    user: dead
    namespace: default
current-context: dead
users:
- name: dead
  user: {{}}
"
        ),
    )
    .unwrap();
    let mut replica = replica("dead-server", &kubeconfig);
    replica.wait_for("campaigning for the Lease");
    let line = replica.wait_for("request failed");
    assert!(
        line.contains("WARN"),
        "the failure is not a warning: {line}"
    );
    assert!(
        line.to_lowercase().contains("connect"),
        "the warning does not say the connection failed: {line}"
    );
    // Dropping the replica kills it.
}
