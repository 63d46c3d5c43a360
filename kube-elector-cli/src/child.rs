//! The child of `run`: started in a process group of its own, through a
//! first step that asks the kernel to kill it if kube-elector dies, and
//! signalled as a group.
//!
//! Why a first step: `PR_SET_PDEATHSIG` must be set by the child itself,
//! between fork and exec, which Rust allows only through `unsafe`
//! `pre_exec` (forbidden in this workspace). So the child is kube-elector
//! again (`__exec`), which sets the signal on itself (nix wraps `prctl`
//! safely), checks that its parent is still alive, and then `exec`s the
//! command: the signal survives `exec`. It costs one `exec` per term.

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::options::ExecArgs;

/// A running child and its process group.
#[derive(Debug)]
pub(crate) struct Child {
    process: tokio::process::Child,
    group: Pid,
}

/// What the child is told about the term it runs in.
#[derive(Debug)]
pub(crate) struct TermEnv {
    pub(crate) identity: String,
    pub(crate) fencing_token: u64,
    pub(crate) lease: String,
    pub(crate) namespace: String,
}

impl Child {
    /// Starts `command` through kube-elector's `__exec` step. Must be called
    /// from the thread that outlives the child's need of a parent (the
    /// parent-death signal follows the thread that forked): `main` runs a
    /// current-thread runtime for this reason.
    pub(crate) fn spawn(command: &[String], term: &TermEnv) -> std::io::Result<Self> {
        let me = std::env::current_exe()?;
        let mut cmd = tokio::process::Command::new(me);
        cmd.arg("__exec")
            .arg("--parent")
            .arg(std::process::id().to_string())
            .arg("--")
            .args(command)
            .env("KUBE_ELECTOR_IDENTITY", &term.identity)
            .env("KUBE_ELECTOR_FENCING_TOKEN", term.fencing_token.to_string())
            .env("KUBE_ELECTOR_LEASE", &term.lease)
            .env("KUBE_ELECTOR_NAMESPACE", &term.namespace)
            // Its own group: a terminal's Ctrl-C reaches kube-elector only
            // (which forwards it once), and a signal reaches the child's
            // own children too.
            .process_group(0)
            .kill_on_drop(true);
        let process = cmd.spawn()?;
        let pid = process
            .id()
            .ok_or_else(|| std::io::Error::other("the child exited before it had a pid"))?;
        let group = Pid::from_raw(i32::try_from(pid).map_err(std::io::Error::other)?);
        Ok(Self { process, group })
    }

    /// Sends `signal` to the child's process group (nothing if it is gone).
    pub(crate) fn signal(&self, signal: Signal) {
        match killpg(self.group, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(err) => tracing::warn!(%err, ?signal, "could not signal the child"),
        }
    }

    /// Waits for the child to exit. Cancel safe.
    pub(crate) async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.process.wait().await
    }

    /// After the child exited: kills what is left of its group (children it
    /// left behind must not outlive the term either).
    pub(crate) fn kill_leftovers(&self) {
        self.signal(Signal::SIGKILL);
    }
}

/// The exit code kube-elector passes on: the child's, or 128 + the signal
/// that killed it (as a shell reports it).
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .and_then(|code| u8::try_from(code).ok())
        .unwrap_or(1)
}

/// The `__exec` step, in the child: asks for SIGKILL when the parent dies,
/// gives up if the parent already died, then becomes the command.
pub(crate) fn exec(args: &ExecArgs) -> u8 {
    if let Err(err) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        eprintln!("kube-elector: could not set the parent-death signal: {err}");
        return 1;
    }
    // The parent may have died before the signal was armed.
    if std::os::unix::process::parent_id() != args.parent {
        return 1;
    }
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let err = std::process::Command::new(program)
        .args(rest.iter().map(OsString::from))
        .exec();
    eprintln!("kube-elector: could not run `{program}`: {err}");
    // As a shell does: 127 for a command not found, 126 for one that cannot run.
    if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_the_childs_or_128_plus_its_signal() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        // Killed by SIGTERM (15) and SIGKILL (9).
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }
}
