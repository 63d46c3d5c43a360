//! `kube-elector run` as real processes against the embedded API server:
//! the exit code is the child's, a signal hands over in one watch event,
//! bad settings and a forbidden namespace are refused with what to fix.

mod support;

use kube_elector_testing::{FaultTarget, LeaseApiServer, Verb};
use support::{Replica, scratch, unique_name};

const SHORT: [&str; 6] = [
    "--lease-duration",
    "2s",
    "--renew-deadline",
    "1500ms",
    "--retry-period",
    "250ms",
];

fn run_args<'a>(lease: &'a str, extra: &[&'a str], command: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--lease", lease, "--namespace", "default"];
    args.extend(SHORT);
    args.extend(["--grace-period", "500ms"]);
    args.extend(extra);
    args.push("--");
    args.extend(command);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_exits_on_its_own_ends_kube_elector_with_its_code_and_the_lease_is_released() {
    let server = LeaseApiServer::start().await.unwrap();
    let dir = scratch("run-exit");
    let lease = unique_name("exit");
    let args = run_args(
        &lease,
        &[],
        &[
            "sh",
            "-c",
            "[ \"$KUBE_ELECTOR_IDENTITY\" = a ] && [ \"$KUBE_ELECTOR_LEASE\" = \"$0\" ] \
             && [ \"$KUBE_ELECTOR_NAMESPACE\" = default ] && [ \"$KUBE_ELECTOR_FENCING_TOKEN\" -gt 0 ] \
             && exit 7; exit 99",
            &lease,
        ],
    );
    let (status, _) =
        tokio::task::block_in_place(|| Replica::start(&server, &dir, "a", &args).finish());
    assert_eq!(
        status.code(),
        Some(7),
        "the child's own code (99: its environment did not name the term)"
    );
    assert_eq!(
        server.holder("default", &lease),
        None,
        "the Lease is released when the child ends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_goes_to_the_child_the_exit_code_is_the_childs_and_the_next_replica_takes_over_in_one_watch_event()
 {
    let server = LeaseApiServer::start().await.unwrap();
    let dir = scratch("run-signal");
    let lease = unique_name("signal");
    // A lease duration no wait below comes near: a takeover within the
    // test's patience comes from the watch event of the release, never
    // from expiry.
    let script = "trap 'echo child-stopping; exit 42' TERM; echo child-running; \
                  while :; do sleep 0.05; done";
    let args = |grace| {
        vec![
            "run",
            "--lease",
            &lease,
            "--namespace",
            "default",
            "--lease-duration",
            "300s",
            "--renew-deadline",
            "200s",
            "--retry-period",
            "1s",
            "--grace-period",
            grace,
            "--",
            "sh",
            "-c",
            script,
        ]
    };
    tokio::task::block_in_place(|| {
        let a = Replica::start(&server, &dir, "a", &args("5s"));
        a.wait_for("child-running");
        let b = Replica::start(&server, &dir, "b", &args("5s"));
        b.wait_for("campaigning");
        b.wait_for("watching"); // b follows the Lease through a watch
        let writes_before = server.requests().get("b", Verb::Update);
        a.signal("TERM");
        a.wait_for("child-stopping");
        let (status, _) = a.finish();
        assert_eq!(
            status.code(),
            Some(42),
            "kube-elector exits with the child's code"
        );
        b.wait_for("child-running");
        assert_eq!(server.holder("default", &lease).as_deref(), Some("b"));
        assert_eq!(
            server.requests().get("b", Verb::Update) - writes_before,
            1,
            "b took the released Lease with one write"
        );
        drop(b);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_kills_a_child_that_ignores_the_first() {
    let server = LeaseApiServer::start().await.unwrap();
    let dir = scratch("run-second");
    let lease = unique_name("second");
    let args = run_args(
        &lease,
        &["--drain-timeout", "300s"],
        &[
            "sh",
            "-c",
            "trap '' TERM INT; echo child-running; while :; do sleep 0.05; done",
        ],
    );
    tokio::task::block_in_place(|| {
        let a = Replica::start(&server, &dir, "a", &args);
        a.wait_for("child-running");
        a.signal("INT");
        a.wait_for("passing the signal on");
        a.signal("INT");
        let (status, _) = a.finish();
        assert_eq!(
            status.code(),
            Some(128 + 9),
            "the child was killed (SIGKILL)"
        );
    });
    assert_eq!(
        server.holder("default", &lease),
        None,
        "and the Lease released"
    );
}

#[test]
fn bad_flags_exit_2_and_settings_that_cannot_work_exit_1_saying_what_to_fix() {
    let bin = env!("CARGO_BIN_EXE_kube-elector");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .env_remove("KUBE_ELECTOR_LEASE")
            .env("KUBECONFIG", "/nonexistent")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["run", "--", "true"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--lease"), "names the missing flag: {err}");
    let (code, err) = run(&["run", "--lease", "l", "--retry-period", "2", "--", "true"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("500ms, 2s, 1m"), "{err}");
    let (code, err) = run(&["run", "--lease", "l", "--grace-period", "8s", "--", "true"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--grace-period below"), "{err}");
    let (code, err) = run(&[
        "run",
        "--lease",
        "Not_A_Name",
        "--renew-deadline",
        "20s",
        "--",
        "true",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("Not_A_Name") || err.contains("KUBECONFIG"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_lease_name_and_a_renew_deadline_past_the_lease_duration_are_refused_by_the_library_check()
 {
    let server = LeaseApiServer::start().await.unwrap();
    let dir = scratch("run-config");
    tokio::task::block_in_place(|| {
        let bad = vec![
            "run",
            "--lease",
            "Not_A_Name",
            "--lease-duration",
            "10s",
            "--renew-deadline",
            "20s",
            "--grace-period",
            "1s",
            "--",
            "true",
        ];
        let (status, out) = Replica::start(&server, &dir, "a", &bad).finish();
        assert_eq!(status.code(), Some(1), "{out}");
        assert!(
            out.contains("Not_A_Name"),
            "names the bad Lease name: {out}"
        );
        assert!(out.contains("renew"), "names the renew deadline: {out}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_namespace_exits_1_naming_the_permissions_to_grant() {
    let server = LeaseApiServer::start().await.unwrap();
    let dir = scratch("run-forbidden");
    server.forbid(FaultTarget::Client("a".into()), Verb::Get);
    let lease = unique_name("forbidden");
    tokio::task::block_in_place(|| {
        let (status, out) =
            Replica::start(&server, &dir, "a", &run_args(&lease, &[], &["true"])).finish();
        assert_eq!(status.code(), Some(1), "{out}");
        assert!(out.contains("may not read Lease default/"), "{out}");
        assert!(out.contains("grant the service account"), "{out}");
    });
    assert_eq!(
        server.requests().get("a", Verb::Update),
        0,
        "it never campaigned"
    );
}
