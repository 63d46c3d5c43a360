//! The README's quick start (examples/quickstart.rs) as real processes
//! against the embedded server: it says when it campaigns, leads, stops and
//! releases; the first leads; a real SIGTERM makes it hand over, the second
//! takes over, and both exit 0. Against a dead server it says why it cannot
//! reach it. And the README's block is the example, word for word.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kube_elector_testing::LeaseApiServer;

/// The example's program, as a module; `run` is its `main`.
mod quickstart {
    include!("../examples/quickstart-program/program.rs");

    pub(super) fn run() -> anyhow::Result<()> {
        main()
    }
}

const PATIENCE: Duration = Duration::from_secs(30);

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

struct Replica {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Replica {
    fn start(kubeconfig: &std::path::Path) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "quickstart_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a replica");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    fn wait_for(&self, what: &str) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => {
                    eprintln!("replica: {line}");
                    return line;
                }
                Ok(_) => {}
                Err(error) => panic!("no line with {what:?} within {PATIENCE:?} ({error})"),
            }
        }
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn exit_code(mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the replica did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A replica left running by a failed test would hold the test's output
/// open: it is killed when dropped (an exited one is left alone).
impl Drop for Replica {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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
        let first = Replica::start(&kubeconfig);
        first.wait_for("campaigning for the Lease");
        first.wait_for("started leading");
        let second = Replica::start(&kubeconfig);
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
    let replica = Replica::start(&kubeconfig);
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
