//! `kube-elector serve` and `observe` as real processes against the
//! embedded API server: `GET /` and the event stream follow a handover,
//! and so do the observer's lines.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;

use kube_elector_testing::LeaseApiServer;
use support::{PATIENCE, Replica, scratch, unique_name};

fn serve_args(lease: &str) -> Vec<&str> {
    vec![
        "serve",
        "--lease",
        lease,
        "--namespace",
        "default",
        "--listen",
        "127.0.0.1:0",
        "--lease-duration",
        "300s",
        "--renew-deadline",
        "200s",
        "--retry-period",
        "1s",
    ]
}

/// The address a `serve` replica logged.
fn address(replica: &Replica) -> String {
    let line = replica.wait_for("serving");
    let at = line.find("listen=").expect("the address in the log line") + "listen=".len();
    line[at..].split_whitespace().next().unwrap().to_owned()
}

/// `GET path` on `addr`: the body, as JSON.
fn get(addr: &str, path: &str) -> serde_json::Value {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    serde_json::from_str(body).unwrap_or_else(|err| panic!("{err}: {body}"))
}

/// The `data:` lines of `GET /events` on `addr`, as JSON, as they come.
fn events(addr: &str) -> mpsc::Receiver<serde_json::Value> {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if let Some(data) = line.strip_prefix("data: ")
                && tx.send(serde_json::from_str(data).unwrap()).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// Waits for an event for which `wanted` holds.
fn event_where(
    events: &mpsc::Receiver<serde_json::Value>,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let event = events
            .recv_timeout(left)
            .unwrap_or_else(|err| panic!("no such event within {PATIENCE:?}: {err}"));
        if wanted(&event) {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_root_the_event_stream_and_observe_follow_a_handover() {
    let server = LeaseApiServer::start().await.unwrap();
    let dir = scratch("serve");
    let lease = unique_name("serve");
    tokio::task::block_in_place(|| {
        let a = Replica::start(&server, &dir, "a", &serve_args(&lease));
        let a_addr = address(&a);
        a.wait_for("started leading");
        let b = Replica::start(&server, &dir, "b", &serve_args(&lease));
        let b_addr = address(&b);
        let observer = Replica::start(
            &server,
            &dir,
            "observer",
            &[
                "observe",
                "--lease",
                &lease,
                "--namespace",
                "default",
                "--json",
            ],
        );
        observer.wait_for(r#"{"leader":"a"}"#);
        let b_events = events(&b_addr);
        let first = event_where(&b_events, |e| e["leader"] == "a");
        assert_eq!(first["is_leader"], false);
        assert_eq!(first["identity"], "b");
        assert!(first["term"].is_null());

        let a_root = get(&a_addr, "/");
        assert_eq!(a_root["leader"], "a");
        assert_eq!(a_root["is_leader"], true);
        let a_token = a_root["term"]["fencing_token"].as_u64().unwrap();
        assert!(a_root["term"]["deadline_in_ms"].as_u64().unwrap() > 0);

        a.signal("TERM");
        let (status, _) = a.finish();
        assert_eq!(status.code(), Some(0));
        let led = event_where(&b_events, |e| e["is_leader"] == true);
        assert_eq!(led["leader"], "b");
        let b_root = get(&b_addr, "/");
        assert_eq!(b_root["leader"], "b");
        assert_eq!(b_root["is_leader"], true);
        assert!(
            b_root["term"]["fencing_token"].as_u64().unwrap() > a_token,
            "a later term has a larger fencing token"
        );
        observer.wait_for(r#"{"leader":"b"}"#);
        for probe in ["/healthz", "/readyz", "/metrics"] {
            let mut stream = TcpStream::connect(&b_addr).unwrap();
            write!(
                stream,
                "GET {probe} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{probe}: {answer}");
        }
        drop(observer);
        drop(b);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_pod_without_pod_name_exits_1_saying_what_to_set() {
    let server = LeaseApiServer::start().await.unwrap();
    let dir = scratch("serve-label");
    let lease = unique_name("label");
    let mut args = serve_args(&lease);
    args.push("--label-pod");
    let (status, out) =
        tokio::task::block_in_place(|| Replica::start(&server, &dir, "a", &args).finish());
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("--label-pod needs POD_NAME"), "{out}");
    assert_eq!(
        server.holder("default", &lease),
        None,
        "it never campaigned"
    );
}
