//! The command line: options shared by every use, their environment
//! variables, durations, and the checks that run before anything else.

// The doc comments of the clap types are the `--help` text, read in a
// terminal: backticks around environment variable names would be printed.
#![allow(clippy::doc_markdown)]

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use kube_elector::ElectorConfig;

/// Leader election on Kubernetes Leases for a workload in any language.
///
/// Exit codes: 0 when done; 2 for flags that do not parse; 1 for a setting
/// that cannot work, a cluster that cannot be reached, or a Lease the
/// service account may not read (with a message saying what to fix); in
/// `run`, the child's own exit code (128 + the signal that killed it).
///
/// A namespace the service account may not read exits 1 at start (no retry
/// fixes RBAC; in a Pod the kubelet's restarts are the retry, and the Pod's
/// status shows why). A namespace that does not exist is retried, with a
/// log line per failure: a read answers 404 there as for any missing
/// Lease, and the namespace may be created after the Pod.
#[derive(Debug, Parser)]
#[command(name = "kube-elector", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Runs CMD only while this replica leads.
    ///
    /// The child starts when this replica takes the Lease, with
    /// KUBE_ELECTOR_IDENTITY, KUBE_ELECTOR_FENCING_TOKEN, KUBE_ELECTOR_LEASE and
    /// KUBE_ELECTOR_NAMESPACE in its environment, in a process group of its
    /// own (signals go to the whole group). If renews stop succeeding it
    /// gets SIGTERM, then SIGKILL, early enough that it has exited before
    /// the term's deadline, and it runs again when this replica leads
    /// again. SIGTERM or SIGINT to kube-elector goes to the child while the
    /// Lease is still renewed (up to --drain-timeout, then SIGKILL); a
    /// second signal kills the child at once; the Lease is then released
    /// and kube-elector exits with the child's code. A child that exits on
    /// its own ends kube-elector the same way (the Lease is released at
    /// once). If kube-elector itself is SIGKILLed, the kernel kills the
    /// child (Linux: parent-death signal).
    Run(RunArgs),
    /// Serves who leads over HTTP, for a program beside it that asks.
    ///
    /// `GET /` answers JSON {leader, is_leader, identity, term}; `GET
    /// /events` streams the same as server-sent events on each change;
    /// /healthz, /readyz and /metrics are the elector's probes.
    Serve(ServeArgs),
    /// Follows the leader without campaigning: one line per change.
    Observe(ObserveArgs),
    /// Internal: the first step of `run`'s child (sets the parent-death
    /// signal, then executes the command).
    #[command(hide = true, name = "__exec")]
    Exec(ExecArgs),
}

/// Which Lease, and how to reach it.
#[derive(Debug, Args)]
pub(crate) struct LeaseArgs {
    /// The Lease's name (a DNS-1123 subdomain).
    #[arg(long, env = "KUBE_ELECTOR_LEASE")]
    pub(crate) lease: String,
    /// The Lease's namespace [default: POD_NAMESPACE, the service account's
    /// namespace, or the kubeconfig's].
    #[arg(long, env = "POD_NAMESPACE")]
    pub(crate) namespace: Option<String>,
}

/// What a candidate needs beyond the Lease.
#[derive(Debug, Args)]
pub(crate) struct ElectionArgs {
    #[command(flatten)]
    pub(crate) lease: LeaseArgs,
    /// This replica's identity in the Lease [default: POD_NAME or the
    /// hostname, plus a random suffix].
    #[arg(long, env = "KUBE_ELECTOR_IDENTITY")]
    pub(crate) identity: Option<String>,
    /// How long followers wait, from the moment they saw the Lease last
    /// change, before they may take it (whole seconds).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub(crate) lease_duration: Duration,
    /// How long the leader keeps leading without a successful renew,
    /// counted from the sending of the last one.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) renew_deadline: Duration,
    /// How often the leader renews (and candidates poll without a watch).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) retry_period: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) election: ElectionArgs,
    /// Time between SIGTERM and SIGKILL when the term is running out. The
    /// SIGTERM goes at (renew deadline − grace period − kill margin) after
    /// the last successful renew; the kill margin is a tenth of the renew
    /// deadline.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) grace_period: Duration,
    /// How long the child may take to stop after SIGTERM/SIGINT to
    /// kube-elector (the Lease is renewed meanwhile), before SIGKILL.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) drain_timeout: Duration,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) election: ElectionArgs,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080", env = "KUBE_ELECTOR_LISTEN")]
    pub(crate) listen: std::net::SocketAddr,
    /// While leading, label this replica's Pod (POD_NAME) with
    /// kube-elector.io/leader=true, after removing the label from the other
    /// Pods of this election. Advisory routing for a Service, not fencing.
    #[arg(long)]
    pub(crate) label_pod: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ObserveArgs {
    #[command(flatten)]
    pub(crate) lease: LeaseArgs,
    /// One JSON object per line ({"leader": "..."|null}) instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// The process id the child expects as its parent.
    #[arg(long)]
    pub(crate) parent: u32,
    #[arg(last = true, required = true)]
    pub(crate) command: Vec<String>,
}

/// Parses `500ms`, `2s`, `1m`, `1h` (and `1m30s`); a bare number is refused
/// so that no unit is guessed.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration: write e.g. 500ms, 2s, 1m or 1m30s");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

impl ElectionArgs {
    /// The library's configuration for these options (validated when the
    /// elector is built).
    pub(crate) fn config(&self) -> ElectorConfig {
        let mut config = ElectorConfig::new(&self.lease.lease)
            .lease_duration(self.lease_duration)
            .renew_deadline(self.renew_deadline)
            .retry_period(self.retry_period);
        if let Some(namespace) = &self.lease.namespace {
            config = config.namespace(namespace);
        }
        if let Some(identity) = &self.identity {
            config = config.identity(identity);
        }
        config
    }
}

/// When `run` acts as a term runs out: SIGTERM at `deadline − grace −
/// margin`, SIGKILL at `deadline − margin`, the deadline being the
/// term's (the last successful renew's sending + the renew deadline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fence {
    pub(crate) grace: Duration,
    /// Room left after SIGKILL for the kill to take effect and the child to
    /// be reaped, and for a late timer on a loaded node.
    pub(crate) margin: Duration,
}

impl Fence {
    /// Checks `grace` against the renew deadline: in the steady state
    /// (renews every retry period) SIGTERM must never be due, so the
    /// renew deadline must leave a whole retry period before it.
    pub(crate) fn new(
        grace: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<Self, String> {
        let margin = renew_deadline / 10;
        let needed = grace + margin + retry_period;
        if needed >= renew_deadline {
            let most = renew_deadline
                .saturating_sub(margin)
                .saturating_sub(retry_period);
            return Err(format!(
                "--grace-period {grace:?} does not fit in --renew-deadline {renew_deadline:?}: \
                 the child gets SIGTERM at renew deadline − grace period − kill margin \
                 ({margin:?}, a tenth of the renew deadline) after the last successful renew, \
                 and that must leave more than one --retry-period ({retry_period:?}) for the \
                 next renew; use a --grace-period below {most:?} or a longer --renew-deadline"
            ));
        }
        Ok(Self { grace, margin })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_and_refuse_a_bare_number() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        for bad in ["", "15", "s", "2x", "-1s", "1.5s"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("500ms, 2s, 1m"), "{err}");
        }
    }

    #[test]
    fn a_grace_period_that_would_signal_between_two_good_renews_is_refused() {
        let s = Duration::from_secs;
        // Defaults: SIGTERM 4 s after the last renew, two retry periods in.
        assert_eq!(
            Fence::new(s(5), s(10), s(2)),
            Ok(Fence {
                grace: s(5),
                margin: s(1)
            })
        );
        let err = Fence::new(s(7), s(10), s(2)).unwrap_err();
        assert!(err.contains("--grace-period below 7s"), "{err}");
        assert!(Fence::new(s(9), s(10), s(2)).is_err());
    }

    #[test]
    fn the_command_line_parses_as_documented() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "kube-elector",
            "run",
            "--lease",
            "l",
            "--grace-period",
            "1s",
            "--",
            "sh",
            "-c",
            "true",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("run")
        };
        assert_eq!(run.command, ["sh", "-c", "true"]);
        assert_eq!(run.grace_period, Duration::from_secs(1));
    }
}
