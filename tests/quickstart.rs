//! The README's quick start (examples/quickstart.rs) as two real processes
//! against the embedded server: the first leads; a real SIGTERM makes it
//! hand over, the second takes over, and both exit 0.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kube_elector_testing::LeaseApiServer;

#[path = "../examples/quickstart.rs"]
#[allow(dead_code, unreachable_pub)]
mod quickstart;

const PATIENCE: Duration = Duration::from_secs(30);

/// Not a test: the child process of the test below (run with `--ignored`).
#[test]
#[ignore = "the child process of sigterm_hands_over_and_both_replicas_exit_0"]
fn quickstart_child() {
    quickstart::main().expect("the quick start's main");
}

struct Replica {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Replica {
    fn start(kubeconfig: &std::path::Path, lease: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "quickstart_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env("LEASE_NAME", lease)
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

    fn wait_for(&self, what: &str) {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => {
                    eprintln!("replica: {line}");
                    return;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_over_and_both_replicas_exit_0() {
    let server = LeaseApiServer::start().await.unwrap();
    let dir = std::env::temp_dir().join(support::unique_name("quickstart"));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, "quickstart").unwrap();
    let lease = support::unique_name("quickstart");
    tokio::task::spawn_blocking(move || {
        let first = Replica::start(&kubeconfig, &lease);
        first.wait_for(" leads (fencing token");
        let second = Replica::start(&kubeconfig, &lease);
        second.wait_for("is a candidate");
        first.sigterm();
        first.wait_for("shut down: Released");
        second.wait_for(" leads (fencing token");
        assert_eq!(first.exit_code(), Some(0), "the first replica's exit code");
        second.sigterm();
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
