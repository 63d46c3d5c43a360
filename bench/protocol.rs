//! The line protocol every elector process of the benchmark speaks (shared
//! by the wrappers with `#[path]`, std only). See bench/README.md.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Command-line flags; ones an implementation has no use for are accepted.
#[derive(Debug)]
pub struct Args {
    pub kubeconfig: String,
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    /// kube-elector only: run this many electors on as many Leases.
    pub scale: usize,
    /// Herd mode: this many candidates on one Lease in one process...
    pub herd: usize,
    /// ...handing over this many times.
    pub rounds: usize,
    /// Many-Leases mode: this many Leases led by one process...
    pub many: usize,
    /// ...measured over this window.
    pub window: Duration,
    /// kube-elector only: on SIGUSR1, hand the Lease over to the identity
    /// this file holds (directed handover; empty: to any candidate).
    pub handover_file: Option<String>,
    /// Round-trip mode: time this many GETs of the Lease, one after another.
    pub rtt: usize,
    /// kube-elector only: run one `ShardedElector` of this many shards
    /// (`--lease-name` is the prefix) and print `shard_acquired` /
    /// `shard_released` lines.
    pub sharding: u32,
    /// kube-elector only: the knative-style baseline, one plain elector per
    /// shard Lease (all through one hub), campaigning for every shard.
    pub sharding_baseline: u32,
    /// kube-elector only: run a leader-gated controller over ConfigMaps,
    /// `cold` or `warm` (bench/controller_bench.py)...
    pub controller: Option<String>,
    /// ...watching the ConfigMaps of this label selector...
    pub selector: String,
    /// ...with this many reconciles at once...
    pub concurrency: u16,
    /// ...keeping this annotation equal to...
    pub annotation: String,
    /// ...this data key.
    pub data_key: String,
}

pub fn parse() -> Args {
    let mut args = Args {
        kubeconfig: String::new(),
        namespace: "default".into(),
        lease_name: String::new(),
        identity: String::new(),
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
        scale: 0,
        herd: 0,
        rounds: 10,
        many: 0,
        window: Duration::from_secs(20),
        handover_file: None,
        rtt: 0,
        sharding: 0,
        sharding_baseline: 0,
        controller: None,
        selector: String::new(),
        concurrency: 4,
        annotation: "bench.kube-elector.io/seen".into(),
        data_key: "gen".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let ms = || Duration::from_millis(value.parse().expect("milliseconds"));
        match flag.as_str() {
            "--kubeconfig" => args.kubeconfig = value.clone(),
            "--namespace" => args.namespace = value.clone(),
            "--lease-name" => args.lease_name = value.clone(),
            "--identity" => args.identity = value.clone(),
            "--lease-duration-ms" => args.lease_duration = ms(),
            "--renew-deadline-ms" => args.renew_deadline = ms(),
            "--retry-period-ms" => args.retry_period = ms(),
            "--scale" => args.scale = value.parse().expect("a count"),
            "--herd" => args.herd = value.parse().expect("a count"),
            "--rounds" => args.rounds = value.parse().expect("a count"),
            "--many" => args.many = value.parse().expect("a count"),
            "--window-ms" => args.window = ms(),
            "--handover-file" => args.handover_file = Some(value.clone()),
            "--rtt" => args.rtt = value.parse().expect("a count"),
            "--sharding" => args.sharding = value.parse().expect("a count"),
            "--sharding-baseline" => args.sharding_baseline = value.parse().expect("a count"),
            "--controller" => args.controller = Some(value.clone()),
            "--selector" => args.selector = value.clone(),
            "--concurrency" => args.concurrency = value.parse().expect("a count"),
            "--annotation" => args.annotation = value.clone(),
            "--data-key" => args.data_key = value.clone(),
            _ => eprintln!("ignoring unknown flag {flag}"),
        }
    }
    args
}

/// Prints one event line, flushed.
pub fn emit(implementation: &str, identity: &str, event: &str, leader: &str) {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let line = format!(
        "{{\"ts_unix_nanos\":{ts},\"impl\":{},\"identity\":{},\"event\":{},\"leader\":{}}}",
        quote(implementation),
        quote(identity),
        quote(event),
        quote(leader)
    );
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints one event line about a shard (`shard_acquired`, `shard_released`),
/// flushed: the fields of [`emit`] (`leader` is this identity on an
/// acquisition, else empty) and `shard`, the shard's number.
#[allow(dead_code)] // the sharding modes of kube-elector only
pub fn emit_shard(implementation: &str, identity: &str, event: &str, shard: u32) {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let leader = if event == "shard_acquired" {
        identity
    } else {
        ""
    };
    let line = format!(
        "{{\"ts_unix_nanos\":{ts},\"impl\":{},\"identity\":{},\"event\":{},\"leader\":{},\"shard\":{shard}}}",
        quote(implementation),
        quote(identity),
        quote(event),
        quote(leader)
    );
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints a `reconciled` line of the controller mode, flushed: the fields
/// of [`emit`] and `object`, `value` (what the reconcile patched).
#[allow(dead_code)] // the controller mode of kube-elector only
pub fn emit_reconciled(implementation: &str, identity: &str, object: &str, value: &str) {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let line = format!(
        "{{\"ts_unix_nanos\":{ts},\"impl\":{},\"identity\":{},\"event\":\"reconciled\",\"leader\":\"\",\"object\":{},\"value\":{}}}",
        quote(implementation),
        quote(identity),
        quote(object),
        quote(value)
    );
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints one line of a benchmark mode (a JSON object), flushed, and waits
/// for the harness to answer with a line on stdin (it reads the server's
/// request counters meanwhile).
#[allow(dead_code)] // the benchmark modes of kube-elector only
pub fn step(json: &str) {
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{json}");
        let _ = out.flush();
    }
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
}

pub fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if (c as u32) < 0x20 => q.push_str(&format!("\\u{:04x}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}
