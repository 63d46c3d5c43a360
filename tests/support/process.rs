//! Programs as real processes: a test binary runs one of its own ignored
//! tests as the child (`current_exe() --ignored --exact NAME`), with the
//! environment a pod would give it, and the test reads the child's lines.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a test waits for one line of a child.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A child process, and its lines (stdout; the programs log there too).
pub struct Process {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Process {
    /// Runs the ignored test `child_test` of this test binary as a process
    /// named `name` (for messages), with `KUBECONFIG` and `env`.
    pub fn start(name: &str, child_test: &str, kubeconfig: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--ignored",
                "--exact",
                child_test,
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .env_remove("POD_NAME")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start a child process");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            name: name.to_owned(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `what` and returns it; panics (naming
    /// the process and what it said last) after [`PATIENCE`].
    pub fn wait_for(&mut self, what: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(what) {
                        eprintln!("{}: {line}", self.name);
                        return line;
                    }
                }
                Err(error) => panic!(
                    "{}: no line with {what:?} within {PATIENCE:?} ({error}); its last lines:\n{}",
                    self.name,
                    self.tail()
                ),
            }
        }
    }

    /// A line containing `what` read already, or else the next one
    /// ([`wait_for`](Self::wait_for)): for a line that may come before the
    /// one a test waited for last.
    pub fn wait_for_seen(&mut self, what: &str) -> String {
        match self.lines().iter().find(|line| line.contains(what)) {
            Some(line) => line.clone(),
            None => self.wait_for(what),
        }
    }

    /// Every line read so far, and any waiting now.
    pub fn lines(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// The last lines read, for a failure's message.
    pub fn tail(&self) -> String {
        let from = self.seen.len().saturating_sub(15);
        self.seen[from..].join("\n")
    }

    /// Writes one line to the child's standard input.
    pub fn say(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("the child's stdin");
        writeln!(stdin, "{line}").expect("write to the child");
        stdin.flush().expect("flush the child's stdin");
    }

    /// Sends SIGTERM, as the kubelet does when a pod stops.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {}", self.name);
    }

    /// The exit code, waiting up to [`PATIENCE`] for the exit.
    pub fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A child left running by a failed test would hold the test's output
/// open: it is killed when dropped (an exited one is left alone).
impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The lines of the README's Rust block that follows `heading`, without
/// rustdoc's hidden (`# `) lines, each trimmed.
pub fn readme_block_visible_lines(readme: &str, heading: &str) -> Vec<String> {
    let section = &readme[readme
        .find(heading)
        .unwrap_or_else(|| panic!("README.md has no {heading:?}"))..];
    let fence = "```rust";
    let start = section.find(fence).expect("a Rust block in the section");
    let block = &section[start..];
    let block = &block[block.find('\n').unwrap() + 1..];
    let block = &block[..block.find("```").expect("the block's end")];
    block
        .lines()
        .filter(|line| !(line.starts_with("# ") || *line == "#"))
        .map(|line| line.trim().to_owned())
        .filter(|line| !line.is_empty())
        .collect()
}

/// Whether `program` holds `lines` one after another (each trimmed; blank
/// lines ignored), i.e. the block, word for word, whatever its indentation.
pub fn holds_in_order(program: &str, lines: &[String]) -> bool {
    let program: Vec<&str> = program
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    program
        .windows(lines.len())
        .any(|window| window.iter().zip(lines).all(|(a, b)| *a == b.as_str()))
}
