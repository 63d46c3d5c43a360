#!/usr/bin/env bash
# Runs the Rust test suites against a real kube-apiserver (built here from
# the k8s.io/kubernetes Go module, on an embedded etcd), with client-go's own
# elector as a peer, then the client-go interop against the embedded server.
#
#   scripts/e2e-real.sh                              # build what is missing, start, test, stop
#   KUBECONFIG=~/.kube/config scripts/e2e-real.sh    # the cluster of that file instead
#   E2E_TESTS="conformance" scripts/e2e-real.sh      # just some suites
#
# Exits 0 only if every suite passed. Whatever it started, it stops.
set -euo pipefail

# Test targets (tests/<name>.rs) run against the real server; a missing file
# is skipped with a note.
E2E_TESTS=${E2E_TESTS:-"conformance elector lease_lock observability tracing controller events interop"}
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
out="$root/target/interop"
apiserver="$out/kube-apiserver-etcd"
elector="$out/client-go-elector"
apiserver_log="$out/apiserver.log"
mkdir -p "$out"

log() { printf '[e2e %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# --- cleanup: whatever happens, stop what this script started.
apiserver_pid=
test_group=
workdir=$(mktemp -d "${TMPDIR:-/tmp}/kube-elector-e2e.XXXXXX")
stop_pid() { # PID: TERM, up to 15 s, then KILL
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  log "pid $pid did not stop within 15s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}
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
    echo "--- last 40 lines of target/interop/apiserver.log"
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
  interop/build.sh client-go-elector
else
  interop/build.sh apiserver client-go-elector
fi
export KUBE_ELECTOR_CLIENT_GO_ELECTOR="$elector"

# --- the target: the cluster of KUBECONFIG, or a real apiserver started here.
if [ -n "${KUBECONFIG:-}" ]; then
  kubeconfig=${KUBECONFIG%%:*} # the test suites read one file
  log "using the cluster of KUBECONFIG ($kubeconfig)"
  unset KUBE_ELECTOR_TEST_KUBECONFIG_NOWATCH
else
  log "starting kube-apiserver with embedded etcd (log: target/interop/apiserver.log)"
  started=$SECONDS
  "$apiserver" --data-dir "$workdir/data" \
    --kubeconfig "$workdir/admin.kubeconfig" \
    --kubeconfig-nowatch "$workdir/nowatch.kubeconfig" \
    >"$workdir/ready" 2>"$apiserver_log" &
  apiserver_pid=$!
  while ! grep -q '^READY ' "$workdir/ready" 2>/dev/null; do
    if ! kill -0 "$apiserver_pid" 2>/dev/null; then
      log "kube-apiserver exited before it was ready"
      exit 1
    fi
    if [ $((SECONDS - started)) -ge "$E2E_READY_TIMEOUT" ]; then
      log "kube-apiserver was not ready within ${E2E_READY_TIMEOUT}s"
      exit 1
    fi
    sleep 0.1
  done
  log "$(grep '^READY ' "$workdir/ready") (after $((SECONDS - started))s)"
  kubeconfig="$workdir/admin.kubeconfig"
  export KUBE_ELECTOR_TEST_KUBECONFIG_NOWATCH="$workdir/nowatch.kubeconfig"
fi

# --- deploy/: every manifest passes a server-side dry run; the namespace and
# RBAC are applied for real, and an elector runs as the manifests' service
# account (tests/deploy.rs, and the demo's --replica mode as in a pod).
deploy_check() {
  local kc=(kubectl --kubeconfig "$kubeconfig")
  log "deploy/: server-side dry run of every manifest; namespace and RBAC applied"
  "${kc[@]}" apply -f deploy/namespace.yaml >/dev/null
  "${kc[@]}" apply --dry-run=server -f deploy/ >/dev/null
  "${kc[@]}" apply -f deploy/rbac.yaml >/dev/null

  log "deploy/: the demo replica as system:serviceaccount:kube-elector-demo:kube-elector-demo"
  cargo build -q --example demo
  local out="$workdir/replica.out"
  KUBECONFIG="$kubeconfig" \
    KUBE_RS_DEBUG_IMPERSONATE_USER=system:serviceaccount:kube-elector-demo:kube-elector-demo \
    POD_NAME=demo-0 POD_NAMESPACE=kube-elector-demo LEASE_NAME="e2e-replica-$$" \
    target/debug/examples/demo --replica >"$out" 2>&1 &
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
}

# --- the suites
passed=()
failed=()
skipped=()
# run_suite LABEL TEST [env assignments...]: cargo test --test TEST, in its
# own process group so that cleanup can stop it and whatever it spawned.
run_suite() {
  local label=$1 t=$2
  shift 2
  if [ ! -f "tests/$t.rs" ]; then
    log "skipped $label/$t: tests/$t.rs does not exist"
    skipped+=("$label/$t")
    return 0
  fi
  local threads=()
  [ -n "$E2E_TEST_THREADS" ] && threads=(--test-threads "$E2E_TEST_THREADS")
  log "$label: cargo test -p kube-elector --test $t"
  setsid env "$@" cargo test -p kube-elector --test "$t" -- "${threads[@]}" &
  test_group=$!
  local status=0
  wait "$test_group" || status=$?
  # Electors a failed test left behind go with its group.
  kill -KILL -- "-$test_group" 2>/dev/null || true
  test_group=
  if [ "$status" -eq 0 ]; then
    passed+=("$label/$t")
  else
    log "$label/$t failed (exit $status)"
    failed+=("$label/$t")
  fi
}

if [ "$E2E_DEPLOY" = 1 ]; then
  if deploy_check; then
    passed+=("real/deploy-manifests")
    run_suite real deploy KUBE_ELECTOR_TEST_KUBECONFIG="$kubeconfig" KUBE_ELECTOR_TEST_DEPLOY=1
  else
    failed+=("real/deploy-manifests")
  fi
  if [ -n "${KUBECONFIG:-}" ]; then # a cluster of the user's: leave it as found
    kubectl --kubeconfig "$kubeconfig" delete -f deploy/namespace.yaml --wait=false >/dev/null 2>&1 || true
  fi
fi
for t in $E2E_TESTS; do
  run_suite real "$t" KUBE_ELECTOR_TEST_KUBECONFIG="$kubeconfig"
done
# client-go beside kube-elector on the embedded server as well.
for t in $E2E_EMBEDDED_TESTS; do
  run_suite embedded "$t" -u KUBE_ELECTOR_TEST_KUBECONFIG -u KUBE_ELECTOR_TEST_KUBECONFIG_NOWATCH
done

log "suites passed: ${passed[*]:-none}"
[ ${#skipped[@]} -eq 0 ] || log "suites skipped: ${skipped[*]}"
if [ ${#failed[@]} -gt 0 ]; then
  log "suites FAILED: ${failed[*]}"
  exit 1
fi
if [ ${#passed[@]} -eq 0 ]; then
  log "no suite ran"
  exit 1
fi
log "all e2e suites passed"
