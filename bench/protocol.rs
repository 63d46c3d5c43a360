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

fn quote(s: &str) -> String {
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
