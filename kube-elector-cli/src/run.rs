//! `kube-elector run`: the child runs only inside a term.
//!
//! Per term: start the child, then watch three clocks at once. The term's
//! deadline (`Term::deadline`, moved by every successful renew): at
//! `deadline − grace − margin` the child gets SIGTERM, at `deadline −
//! margin` SIGKILL, so it has exited before the deadline, and the deadline
//! is itself `lease_duration − renew_deadline` before any follower may
//! take the Lease. The term's token: cancelled, the term is over now, so
//! SIGKILL at once. And signals to kube-elector: the first is forwarded
//! (the term is still renewed while the child stops, up to the drain
//! timeout), the second kills.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use kube_elector::{ElectorHandle, LeaderElector, Leadership};
use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::{Instant, sleep_until};

use crate::child::{Child, TermEnv, exit_code};
use crate::options::Fence;

/// What `run` needs besides the elector.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) command: Vec<String>,
    pub(crate) fence: Fence,
    pub(crate) drain_timeout: Duration,
    pub(crate) retry_period: Duration,
}

/// Why a child stopped.
enum Stopped {
    /// It exited on its own, or after a signal to kube-elector: kube-elector
    /// ends with its code.
    Done(ExitStatus),
    /// The term ran out (or ended) and kube-elector stopped it; it runs
    /// again in the next term.
    TermOver,
}

/// SIGTERM and SIGINT to kube-elector.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next signal, as the one to forward. Cancel safe.
    async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.int.recv() => Signal::SIGINT,
        }
    }
}

impl Run {
    /// Runs the election and the child; returns kube-elector's exit code.
    pub(crate) async fn run(self, elector: LeaderElector, lease: String) -> u8 {
        let namespace = elector.namespace().to_owned();
        let identity = elector.identity().to_owned();
        let mut signals = match Signals::new() {
            Ok(signals) => signals,
            Err(err) => {
                eprintln!("kube-elector: cannot listen for signals: {err}");
                return 1;
            }
        };
        let handle = elector.spawn();
        tracing::info!(%identity, %namespace, %lease, "campaigning");
        let code = loop {
            let leadership = tokio::select! {
                leadership = handle.became_leader() => match leadership {
                    Ok(leadership) => leadership,
                    Err(err) => {
                        eprintln!("kube-elector: the elector stopped: {err}");
                        break 1;
                    }
                },
                signal = signals.recv() => {
                    tracing::info!(?signal, "signal before leading: stopping");
                    break 0;
                }
            };
            if !self.room_left(&leadership) {
                // The term is about to run out: starting the child would
                // only signal it at once. Look again after a renew.
                tokio::select! {
                    () = leadership.lost() => {}
                    () = tokio::time::sleep(self.retry_period) => {}
                }
                continue;
            }
            let term = TermEnv {
                identity: identity.clone(),
                fencing_token: leadership.fencing_token(),
                lease: lease.clone(),
                namespace: namespace.clone(),
            };
            let mut child = match Child::spawn(&self.command, &term) {
                Ok(child) => child,
                Err(err) => {
                    eprintln!("kube-elector: could not start the child: {err}");
                    break 1;
                }
            };
            tracing::info!(fencing_token = term.fencing_token, "started the child");
            match self.supervise(&mut child, &leadership, &mut signals).await {
                Stopped::Done(status) => {
                    tracing::info!(%status, "the child exited");
                    break exit_code(status);
                }
                Stopped::TermOver => {
                    tracing::warn!("the child was stopped as the term ran out");
                }
            }
            drop(leadership);
        };
        shutdown(handle).await;
        code
    }

    /// Whether a term has room for a child before its SIGTERM would be due.
    fn room_left(&self, leadership: &Leadership) -> bool {
        let due = leadership
            .deadline()
            .checked_sub(self.fence.grace + self.fence.margin);
        due.is_some_and(|due| Instant::now() < due)
    }

    /// Watches the child through one term; returns once it has exited.
    async fn supervise(
        &self,
        child: &mut Child,
        leadership: &Leadership,
        signals: &mut Signals,
    ) -> Stopped {
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let token = leadership.token();
        let mut term_over = false;
        let mut terminated = false;
        let mut killed = false;
        let mut signalled = false;
        let mut drain_until = far;
        let status = loop {
            let deadline = leadership.deadline();
            let term_at = deadline
                .checked_sub(self.fence.grace + self.fence.margin)
                .unwrap_or(deadline);
            let kill_at = deadline.checked_sub(self.fence.margin).unwrap_or(deadline);
            tokio::select! {
                biased;
                status = child.wait() => break status,
                () = token.cancelled(), if !killed => {
                    tracing::warn!("the term ended: killing the child");
                    child.signal(Signal::SIGKILL);
                    (term_over, killed) = (true, true);
                }
                () = sleep_until(kill_at), if !killed => {
                    if leadership.deadline() > deadline {
                        continue; // renewed meanwhile
                    }
                    tracing::warn!("the term's deadline is near: killing the child");
                    child.signal(Signal::SIGKILL);
                    (term_over, killed) = (true, true);
                }
                () = sleep_until(term_at), if !terminated => {
                    if leadership.deadline() > deadline {
                        continue;
                    }
                    tracing::warn!(
                        grace = ?self.fence.grace,
                        "renews are failing: stopping the child before the term runs out"
                    );
                    child.signal(Signal::SIGTERM);
                    (term_over, terminated) = (true, true);
                }
                () = sleep_until(drain_until), if !killed => {
                    tracing::warn!(drain_timeout = ?self.drain_timeout, "the child did not stop in time: killing it");
                    child.signal(Signal::SIGKILL);
                    killed = true;
                }
                signal = signals.recv() => {
                    if signalled {
                        tracing::info!(?signal, "second signal: killing the child");
                        child.signal(Signal::SIGKILL);
                        killed = true;
                    } else {
                        tracing::info!(?signal, "passing the signal on to the child; the Lease is kept until it exits");
                        child.signal(signal);
                        signalled = true;
                        terminated = true;
                        drain_until = Instant::now() + self.drain_timeout;
                    }
                }
            }
        };
        child.kill_leftovers();
        match status {
            Ok(status) if signalled || !term_over => Stopped::Done(status),
            Ok(_) => Stopped::TermOver,
            Err(err) => {
                tracing::error!(%err, "could not wait for the child");
                Stopped::Done(ExitStatus::from_raw(1 << 8))
            }
        }
    }
}

/// Releases the Lease (the next replica's child starts at once) and ends.
async fn shutdown(handle: ElectorHandle) {
    match handle.shutdown().await {
        Ok(outcome) => tracing::info!(?outcome, "stopped"),
        Err(err) => tracing::warn!(%err, "the shutdown did not complete"),
    }
}
