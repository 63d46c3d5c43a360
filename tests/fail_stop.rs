//! Leader work that outlives its term: dropped by default, or the process
//! ends (`OverdueWork::ExitProcess`), as controller-runtime does. Real
//! processes, a real SIGTERM, against the embedded server.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use kube_elector::{ElectorConfig, LeaderElector, OverdueWork};
use kube_elector_testing::LeaseApiServer;

const PATIENCE: Duration = Duration::from_secs(30);

/// Not a test: the child process of the tests below (run with `--ignored`).
/// Leads with work that ignores the end of its term, until SIGTERM.
#[test]
#[ignore = "the child process of the overdue-work tests"]
fn overdue_work_child() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = kube::Client::try_default().await.unwrap();
        let overdue = match std::env::var("OVERDUE").as_deref() {
            Ok("exit") => OverdueWork::ExitProcess,
            _ => OverdueWork::Drop,
        };
        let config = ElectorConfig::new(std::env::var("LEASE_NAME").unwrap())
            .namespace("default")
            .lease_duration(Duration::from_secs(2))
            .renew_deadline(Duration::from_secs(1))
            .retry_period(Duration::from_millis(250))
            .drain_timeout(Duration::from_millis(500))
            .on_overdue_work(overdue);
        let elector = LeaderElector::new(client, config).unwrap().spawn();
        let outcome = elector
            .run_until_signal(|_leadership| async move {
                println!("leads");
                // Work that never looks at its term.
                std::future::pending::<()>().await;
                Ok::<(), kube_elector::Error>(())
            })
            .await;
        println!("returned: {outcome:?}");
    });
}

/// Runs the child with `overdue`, SIGTERMs it once it leads, and returns
/// its exit code.
fn exit_code_after_sigterm(server: &LeaseApiServer, overdue: &str) -> Option<i32> {
    let dir = std::env::temp_dir().join(support::unique_name("overdue"));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig, "overdue").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "overdue_work_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("LEASE_NAME", support::unique_name("overdue"))
        .env("OVERDUE", overdue)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        assert!(std::time::Instant::now() < deadline, "the child never led");
        match lines.next() {
            Some(Ok(line)) if line.contains("leads") => break,
            Some(_) => {}
            None => panic!("the child ended before it led"),
        }
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_work_is_dropped_by_default_and_the_process_exits_cleanly() {
    let server = LeaseApiServer::start().await.unwrap();
    let code = tokio::task::spawn_blocking(move || exit_code_after_sigterm(&server, "drop"))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_work_ends_the_process_when_asked() {
    let server = LeaseApiServer::start().await.unwrap();
    let code = tokio::task::spawn_blocking(move || exit_code_after_sigterm(&server, "exit"))
        .await
        .unwrap();
    assert_eq!(
        code,
        Some(1),
        "the process must end with code 1 when its work is overdue"
    );
}
