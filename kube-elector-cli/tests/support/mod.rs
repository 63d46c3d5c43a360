//! Running the real `kube-elector` binary as processes against the embedded
//! API server, and the children they run.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube_elector_testing::LeaseApiServer;

/// How long any wait of these tests may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A fresh directory for one test's files.
pub fn scratch(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Wall-clock now, in microseconds since the epoch.
pub fn now_micros() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_micros()).unwrap()
}

/// One `kube-elector` process, in a process group of its own (as a
/// container's processes are), its stderr collected line by line.
pub struct Replica {
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Replica {
    /// Starts `kube-elector ARGS` as `identity` against `server`.
    pub fn start(server: &LeaseApiServer, dir: &Path, identity: &str, args: &[&str]) -> Self {
        let kubeconfig = dir.join(format!("kubeconfig-{identity}"));
        server.write_kubeconfig(&kubeconfig, identity).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kube-elector"))
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("KUBE_ELECTOR_IDENTITY", identity)
            .env("RUST_LOG", "info,kube_elector=debug")
            .env("NO_COLOR", "1")
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .env_remove("KUBE_ELECTOR_LEASE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start kube-elector");
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let tx = tx.clone();
            let name = identity.to_owned();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    eprintln!("[{name}] {line}");
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Self {
            name: identity.to_owned(),
            child,
            lines,
        }
    }

    /// Waits for a line of its output that contains `what`.
    pub fn wait_for(&self, what: &str) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(error) => panic!(
                    "{}: no line with {what:?} within {PATIENCE:?} ({error})",
                    self.name
                ),
            }
        }
    }

    /// Every line it wrote until it exited, and its exit status.
    pub fn finish(mut self) -> (ExitStatus, String) {
        let status = self.wait();
        let mut all = String::new();
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            all.push_str(&line);
            all.push('\n');
        }
        (status, all)
    }

    /// Waits for it to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not exit within {PATIENCE:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (e.g. "TERM") to kube-elector alone.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    /// SIGKILL to kube-elector's whole process group, as a container's
    /// death kills its processes (the child, in a group of its own, dies
    /// of its parent-death signal).
    pub fn kill_group(&mut self) {
        let status = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status()
            .unwrap();
        assert!(status.success(), "kill the group of {}", self.name);
        self.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The arguments that make `run`'s child this test binary's
/// `heartbeat_child`, beating into `file`.
pub fn heartbeat_command(file: &Path) -> Vec<String> {
    vec![
        "env".into(),
        format!("HEARTBEAT_FILE={}", file.display()),
        std::env::current_exe().unwrap().display().to_string(),
        "--ignored".into(),
        "--exact".into(),
        "heartbeat_child".into(),
        "--nocapture".into(),
        "--test-threads=1".into(),
    ]
}

/// The body of `heartbeat_child`: writes `start <µs>`, then `beat <µs>`
/// every 2 ms, until a signal ends the process (SIGTERM's default action:
/// it exits at once).
pub fn heartbeat(file: &Path) -> ! {
    use std::io::Write;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    writeln!(out, "start {}", now_micros()).unwrap();
    loop {
        writeln!(out, "beat {}", now_micros()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One run of a child: its first and last timestamps (µs).
#[derive(Clone, Copy, Debug)]
pub struct ChildRun {
    pub first: i64,
    pub last: i64,
}

/// The runs a heartbeat file records.
pub fn child_runs(file: &Path) -> Vec<ChildRun> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut runs: Vec<ChildRun> = Vec::new();
    for line in text.lines() {
        let Some((kind, at)) = line.split_once(' ') else {
            continue;
        };
        let Ok(at) = at.parse::<i64>() else {
            continue; // a line cut by a kill
        };
        match (kind, runs.last_mut()) {
            ("start", _) | (_, None) => runs.push(ChildRun {
                first: at,
                last: at,
            }),
            (_, Some(run)) => run.last = at,
        }
    }
    runs
}
