#!/usr/bin/env bash
# Runs the Rust test suites against a real kube-apiserver (built here from
# the k8s.io/kubernetes Go module, on an embedded etcd), with client-go's own
# elector as a peer, then the client-go interop against the embedded server.
# The apiserver runs twice: with the CoordinatedLeaderElection feature gate
# on, then, restarted afresh, with it off, as a default-configured
# Kubernetes 1.33-1.37 cluster; the suites run against each (the deploy/
# check against the first only).
#
#   scripts/e2e-real.sh                              # build what is missing, start, test, stop
#   KUBECONFIG=~/.kube/config scripts/e2e-real.sh    # the cluster of that file instead
#   E2E_TESTS="conformance" scripts/e2e-real.sh      # just some suites
#   E2E_GATES=off scripts/e2e-real.sh                # one apiserver, gate off
#   E2E_LONG=1 scripts/e2e-real.sh                   # the long real-server chaos run
#   E2E_CLI_TESTS= scripts/e2e-real.sh               # without the kube-elector command's suites
#
# Faults on the real server (not with KUBECONFIG): in the first gate run,
# E2E_FAULT_TESTS (default real_faults: the chaos schedule through the TCP
# fault proxy, client-go among the candidates; three seeds of 25 s, about
# 1.5 min); after the gate runs, E2E_RESTART_TESTS (default real_restart:
# kube-apiserver restarted on the same etcd, kube-apiserver and etcd killed
# and restarted together, etcd compacted under a live watch with
# --watch-cache=false; each on a server of its own, about 1 min). Each
# prints its figures. E2E_LONG=1 runs the chaos with
# KUBE_ELECTOR_REAL_CHAOS=long (eight seeds of 60 s, about 9 min).
#
# Exits 0 only if every suite passed. Prints, per suite and in all, how
# many tests ran, returned early (SKIPPED lines) and were ignored, so that
# no run claims tests that did not run. Whatever it started, it stops.
set -euo pipefail

# Test targets (tests/<name>.rs) run against the real server; a missing file
# is skipped with a note. The targets interop, deploy and real_* hold only
# tests a plain `cargo test` lists as ignored (they need what this script
# provides); they run here with --include-ignored. A test that cannot run
# against a server (it needs the embedded one's faults, or the other gate)
# says `SKIPPED <test>: <why>`; each suite's line and the summary count
# those apart from the tests that ran.
E2E_TESTS=${E2E_TESTS:-"conformance elector lease_lock observability tracing controller events interop hub handover coordinated sharding real_rbac real_coordinated real_controller"}
# The CoordinatedLeaderElection gate of each apiserver started here, in
# order ("on", "off"): the first runs E2E_TESTS (and the deploy/ check),
# each later one E2E_LATER_GATE_TESTS. Not used with KUBECONFIG.
E2E_GATES=${E2E_GATES:-"on off"}
# Test targets run against the apiservers after the first (default: those
# of E2E_TESTS; the whole second run takes about a minute once built). A
# shorter set that still covers the gate: "conformance interop". Empty: none.
E2E_LATER_GATE_TESTS=${E2E_LATER_GATE_TESTS-$E2E_TESTS}
# Real-server fault suites: in the first gate run, through the fault proxy;
# then the restart suites, which start servers of their own. Empty: none.
E2E_FAULT_TESTS=${E2E_FAULT_TESTS-"real_faults"}
E2E_RESTART_TESTS=${E2E_RESTART_TESTS-"real_restart"}
# The kube-elector command's suites (crate kube-elector-cli, built here
# and passed as KUBE_ELECTOR_CLI), in the first gate run: real_label runs
# `kube-elector serve --label-pod` replicas for Pods made through the API
# and hands leadership over (about 30 s). Empty: none.
E2E_CLI_TESTS=${E2E_CLI_TESTS-"real_label"}
# 1: the long real-server chaos run (KUBE_ELECTOR_REAL_CHAOS=long).
E2E_LONG=${E2E_LONG:-0}
# Test targets run once more against the embedded server, with client-go
# (set it empty for none).
E2E_EMBEDDED_TESTS=${E2E_EMBEDDED_TESTS-"interop"}
# 1: check deploy/ against the server (dry run, RBAC as its service
# account, the demo replica); 0: skip.
E2E_DEPLOY=${E2E_DEPLOY:-1}
# Seconds to wait for the apiserver's READY line.
E2E_READY_TIMEOUT=${E2E_READY_TIMEOUT:-180}
# cargo test -- --test-threads (empty: cargo's default, one per core).
E2E_TEST_THREADS=${E2E_TEST_THREADS:-}

cd "$(dirname "$0")/.."
root=$(pwd)
# Beside cargo's builds: CARGO_TARGET_DIR's, else target/.
cargo_target=${CARGO_TARGET_DIR:-$root/target}
out="$cargo_target/interop"
apiserver="$out/kube-apiserver-etcd"
elector="$out/client-go-elector"
faultproxy="$out/faultproxy"
apiserver_log="$out/apiserver.log"
mkdir -p "$out"

log() { printf '[e2e %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# --- cleanup: whatever happens, stop what this script started.
apiserver_pid=
test_group=
workdir=$(mktemp -d "${TMPDIR:-/tmp}/kube-elector-e2e.XXXXXX")
# apiserver_start, apiserver_stop, stop_pid.
. scripts/lib/apiserver.sh
# test_counts, test_skips.
. scripts/lib/test-counts.sh
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # A test run in flight (and the electors it spawned: same process group).
  if [ -n "$test_group" ]; then
    kill -TERM -- "-$test_group" 2>/dev/null || true
    sleep 1
    kill -KILL -- "-$test_group" 2>/dev/null || true
  fi
  if [ -n "$apiserver_pid" ]; then
    log "stopping kube-apiserver (pid $apiserver_pid)"
    stop_pid "$apiserver_pid"
    wait "$apiserver_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -s "$apiserver_log" ]; then
    echo "--- last 40 lines of $apiserver_log"
    tail -n 40 "$apiserver_log" || true
  fi
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build what is missing (cached: only when a Go file, go.mod or go.sum
# of that program is newer than its binary).
if [ -n "${KUBECONFIG:-}" ]; then
  OUT_DIR="$out" interop/build.sh client-go-elector
else
  OUT_DIR="$out" interop/build.sh apiserver client-go-elector faultproxy
  export KUBE_ELECTOR_APISERVER="$apiserver" KUBE_ELECTOR_FAULTPROXY="$faultproxy"
fi
export KUBE_ELECTOR_CLIENT_GO_ELECTOR="$elector"
if [ -n "$E2E_CLI_TESTS" ]; then
  log "building the kube-elector command (kube-elector-cli)"
  cargo build -q -p kube-elector-cli --bin kube-elector
  export KUBE_ELECTOR_CLI="$cargo_target/debug/kube-elector"
fi
[ "$E2E_LONG" = 1 ] && export KUBE_ELECTOR_REAL_CHAOS=long

# --- the real apiserver, one per gate mode, each on fresh etcd data.
# start_apiserver on|off: starts it (scripts/lib/apiserver.sh), waits for
# READY, sets kubeconfig and the suites' environment (the nowatch user, the
# gate it has).
start_apiserver() {
  apiserver_start "$1"
  export KUBE_ELECTOR_TEST_KUBECONFIG_NOWATCH="$nowatch_kubeconfig"
  export KUBE_ELECTOR_TEST_COORDINATED_LEADER_ELECTION="$apiserver_gate"
}

stop_apiserver() {
  apiserver_stop
}

# --- deploy/: every manifest (of every folder below it) passes a server-side
# dry run; the namespace and
# RBAC are applied for real, and an elector runs as the manifests' service
# account (tests/deploy.rs, and the demo's --replica mode as in a pod).
deploy_check() {
  local kc=(kubectl --kubeconfig "$kubeconfig")
  log "deploy/: server-side dry run of every manifest; namespace and RBAC applied"
  "${kc[@]}" apply -f deploy/namespace.yaml >/dev/null
  "${kc[@]}" apply --dry-run=server -R -f deploy/ >/dev/null
  "${kc[@]}" apply -f deploy/rbac.yaml >/dev/null

  log "deploy/: the demo replica as system:serviceaccount:kube-elector-demo:kube-elector-demo"
  cargo build -q --example demo
  local out="$workdir/replica.out"
  KUBECONFIG="$kubeconfig" \
    KUBE_RS_DEBUG_IMPERSONATE_USER=system:serviceaccount:kube-elector-demo:kube-elector-demo \
    POD_NAME=demo-0 POD_NAMESPACE=kube-elector-demo LEASE_NAME="e2e-replica-$$" \
    "$cargo_target/debug/examples/demo" --replica >"$out" 2>&1 &
  local pid=$! waited=0
  until grep -q "started leading" "$out"; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$waited" -ge 300 ]; then
      log "the demo replica did not lead within 30s:"; cat "$out"
      kill -KILL "$pid" 2>/dev/null || true
      return 1
    fi
    sleep 0.1; waited=$((waited + 1))
  done
  kill -TERM "$pid"
  wait "$pid" || { log "the demo replica failed:"; cat "$out"; return 1; }
  grep -q "Released" "$out" || { log "the demo replica did not release the Lease:"; cat "$out"; return 1; }

  log "the demo (the README's main command) on this server: three replicas, a handover, a crash"
  local demo_out="$workdir/demo.out"
  if ! KUBECONFIG="$kubeconfig" timeout 120 "$cargo_target/debug/examples/demo" >"$demo_out" 2>&1; then
    log "the demo failed:"; cat "$demo_out"; return 1
  fi
  sed -n '/^who led when/,$p' "$demo_out" | sed 's/^/    /' >&2
  grep -q "never two leaders at once" "$demo_out" || { log "the demo saw two leaders:"; cat "$demo_out"; return 1; }
}

# --- the suites
passed=()
failed=()
skipped=()
# Honest counts over all suites: tests that ran and passed, returned early
# (SKIPPED lines), were ignored, failed.
total_ran=0 total_skipped=0 total_ignored=0 total_failed=0
skip_lines="$out/e2e-skipped.txt"
: >"$skip_lines"
# run_suite LABEL TEST [env assignments...]: cargo test --test TEST, in its
# own process group so that cleanup can stop it and whatever it spawned;
# its output also goes to $out/e2e-LABEL-TEST.log, whose counts it prints.
run_suite() {
  local label=$1 t=$2
  shift 2
  if [ ! -f "tests/$t.rs" ]; then
    log "skipped $label/$t: tests/$t.rs does not exist"
    skipped+=("$label/$t")
    return 0
  fi
  local args=()
  case $t in interop | deploy | real_*) args+=(--include-ignored) ;; esac
  [ -n "$E2E_TEST_THREADS" ] && args+=(--test-threads "$E2E_TEST_THREADS")
  # The real-server suites print their figures, and run one test at a time
  # (each runs servers or a schedule of its own).
  case $t in real_*) args+=(--nocapture --test-threads 1) ;; esac
  local suite_log="$out/e2e-$label-$t.log"
  log "$label: cargo test -p kube-elector --test $t -- ${args[*]}"
  setsid env "$@" bash -o pipefail -c '"${@:2}" 2>&1 | tee "$1"' _ "$suite_log" \
    cargo test -p kube-elector --test "$t" -- "${args[@]}" &
  test_group=$!
  local status=0
  wait "$test_group" || status=$?
  # Electors a failed test left behind go with its group.
  kill -KILL -- "-$test_group" 2>/dev/null || true
  test_group=
  local ran skips ignored fails
  read -r ran skips ignored fails < <(test_counts "$suite_log")
  total_ran=$((total_ran + ran)) total_skipped=$((total_skipped + skips))
  total_ignored=$((total_ignored + ignored)) total_failed=$((total_failed + fails))
  test_skips "$suite_log" | sed "s|^|$label/$t: |" >>"$skip_lines"
  log "$label/$t: $ran ran, $skips skipped, $ignored ignored, $fails failed"
  if [ "$status" -eq 0 ]; then
    passed+=("$label/$t")
  else
    log "$label/$t failed (exit $status)"
    failed+=("$label/$t")
  fi
}

# real_suites LABEL TESTS: the deploy/ check (if asked) and TESTS against
# the server of $kubeconfig.
real_suites() {
  local label=$1 tests=$2 deploy=$3
  if [ "$deploy" = 1 ]; then
    if deploy_check; then
      passed+=("$label/deploy-manifests")
      run_suite "$label" deploy KUBE_ELECTOR_TEST_KUBECONFIG="$kubeconfig" KUBE_ELECTOR_TEST_DEPLOY=1
    else
      failed+=("$label/deploy-manifests")
    fi
    if [ -n "${KUBECONFIG:-}" ]; then # a cluster of the user's: leave it as found
      kubectl --kubeconfig "$kubeconfig" delete -f deploy/namespace.yaml --wait=false >/dev/null 2>&1 || true
    fi
  fi
  for t in $tests; do
    run_suite "$label" "$t" KUBE_ELECTOR_TEST_KUBECONFIG="$kubeconfig"
  done
}

if [ -n "${KUBECONFIG:-}" ]; then
  kubeconfig=${KUBECONFIG%%:*} # the test suites read one file
  unset KUBE_ELECTOR_TEST_KUBECONFIG_NOWATCH
  case ${KUBE_ELECTOR_TEST_COORDINATED_LEADER_ELECTION:-} in
    true) gate="CoordinatedLeaderElection on (KUBE_ELECTOR_TEST_COORDINATED_LEADER_ELECTION=true)" ;;
    false) gate="CoordinatedLeaderElection off (KUBE_ELECTOR_TEST_COORDINATED_LEADER_ELECTION=false)" ;;
    *) gate="CoordinatedLeaderElection unknown: the gate's tests skip (set KUBE_ELECTOR_TEST_COORDINATED_LEADER_ELECTION=true or false as the cluster has it)" ;;
  esac
  log "using the cluster of KUBECONFIG ($kubeconfig); $gate"
  real_suites real "$E2E_TESTS" "$E2E_DEPLOY"
  for t in $E2E_CLI_TESTS; do
    run_suite real "$t" KUBE_ELECTOR_TEST_KUBECONFIG="$kubeconfig"
  done
else
  read -r -a gates <<<"$E2E_GATES"
  [ ${#gates[@]} -gt 0 ] || { log "E2E_GATES is empty"; exit 2; }
  for i in "${!gates[@]}"; do
    gate=${gates[$i]}
    if [ "$i" -eq 0 ]; then
      tests=$E2E_TESTS deploy=$E2E_DEPLOY what="the suites of E2E_TESTS"
      [ "$deploy" = 1 ] && what="$what and the deploy/ check"
    elif [ "$E2E_LATER_GATE_TESTS" = "$E2E_TESTS" ]; then
      tests=$E2E_LATER_GATE_TESTS deploy=0 what="the same suites (not the deploy/ check)"
    else
      tests=$E2E_LATER_GATE_TESTS deploy=0 what="a subset (E2E_LATER_GATE_TESTS)"
    fi
    log "=== gate run $((i + 1)) of ${#gates[@]}: CoordinatedLeaderElection $gate; $what: ${tests:-none}"
    gate_started=$SECONDS
    start_apiserver "$gate"
    real_suites "real-gate-$gate" "$tests" "$deploy"
    if [ "$i" -eq 0 ]; then
      for t in $E2E_CLI_TESTS; do
        run_suite "real-gate-$gate" "$t" KUBE_ELECTOR_TEST_KUBECONFIG="$kubeconfig"
      done
    fi
    if [ "$i" -eq 0 ] && [ -n "$E2E_FAULT_TESTS" ]; then
      faults_started=$SECONDS
      for t in $E2E_FAULT_TESTS; do
        run_suite "real-gate-$gate" "$t" KUBE_ELECTOR_TEST_KUBECONFIG="$kubeconfig"
      done
      log "=== real-server faults through the proxy ($E2E_FAULT_TESTS) took $((SECONDS - faults_started))s"
    fi
    stop_apiserver
    log "=== gate run $((i + 1)) (CoordinatedLeaderElection $gate) took $((SECONDS - gate_started))s"
  done
  unset KUBE_ELECTOR_TEST_COORDINATED_LEADER_ELECTION
  # Restarts and compaction: each test starts (and restarts) its own server.
  if [ -n "$E2E_RESTART_TESTS" ]; then
    restart_started=$SECONDS
    for t in $E2E_RESTART_TESTS; do
      run_suite real-restart "$t" -u KUBE_ELECTOR_TEST_KUBECONFIG -u KUBE_ELECTOR_TEST_KUBECONFIG_NOWATCH
    done
    log "=== restarts and compaction ($E2E_RESTART_TESTS) took $((SECONDS - restart_started))s"
  fi
fi
# client-go beside kube-elector on the embedded server as well.
# (The embedded server's gate is each test's choice: its default is off.)
for t in $E2E_EMBEDDED_TESTS; do
  run_suite embedded "$t" -u KUBE_ELECTOR_TEST_KUBECONFIG -u KUBE_ELECTOR_TEST_KUBECONFIG_NOWATCH \
    -u KUBE_ELECTOR_TEST_COORDINATED_LEADER_ELECTION
done

log "suites passed: ${passed[*]:-none}"
[ ${#skipped[@]} -eq 0 ] || log "suites skipped: ${skipped[*]}"
if [ -s "$skip_lines" ]; then
  log "tests that returned early (SKIPPED), by suite:"
  sed 's/^/    /' "$skip_lines"
fi
log "tests: $total_ran ran and passed, $total_skipped skipped, $total_ignored ignored, $total_failed failed (over ${#passed[@]} passed and ${#failed[@]} failed suites)"
if [ ${#failed[@]} -gt 0 ]; then
  log "suites FAILED: ${failed[*]}"
  exit 1
fi
if [ ${#passed[@]} -eq 0 ]; then
  log "no suite ran"
  exit 1
fi
log "all e2e suites passed"
