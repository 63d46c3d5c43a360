#!/usr/bin/env bash
# Runs the suites against a real kube-apiserver (built here from the
# k8s.io/kubernetes Go module, on an embedded etcd) and client-go's own
# elector, then the client-go interop against the embedded server too.
#
#   scripts/e2e-real.sh            # build what is missing, start, test, stop
#   KUBECONFIG=~/.kube/config scripts/e2e-real.sh   # use that cluster instead
#
# Exits 0 only if every suite passed. Whatever it started, it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Test targets run against the real server (tests/<name>.rs; missing ones are skipped).
E2E_TESTS=${E2E_TESTS:-"conformance elector lease_lock interop"}

bin="$root/target/interop"
apiserver="$bin/kube-apiserver-etcd"
elector="$bin/client-go-elector"
mkdir -p "$bin"

log() { printf '[e2e %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# --- build (cached: only when a Go source or go.sum is newer than the binary)
needs_build() {
  local out=$1
  [ -x "$out" ] || return 0
  [ -n "$(find interop -name '*.go' -newer "$out" -o -name go.sum -newer "$out" | head -1)" ]
}
build() {
  local out=$1 pkg=$2
  if needs_build "$out"; then
    log "building $pkg (the first build of kube-apiserver takes minutes)"
    local start=$SECONDS
    (cd interop && go build -trimpath -ldflags='-s -w' -o "$out" "$pkg")
    log "built $(basename "$out") in $((SECONDS - start))s"
  fi
}
command -v go >/dev/null || { echo "e2e: Go is needed to build the real kube-apiserver" >&2; exit 1; }
build "$elector" ./cmd/client-go-elector
export KUBE_ELECTOR_CLIENT_GO_ELECTOR="$elector"

# --- start the real apiserver, unless KUBECONFIG names a cluster
pids=()
workdir=$(mktemp -d "${TMPDIR:-/tmp}/kube-elector-e2e.XXXXXX")
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ] && [ -f "$root/target/interop/apiserver.log" ]; then
    echo "--- last lines of target/interop/apiserver.log"
    tail -n 30 "$root/target/interop/apiserver.log" || true
  fi
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT INT TERM

if [ -n "${KUBECONFIG:-}" ]; then
  log "using the cluster of KUBECONFIG=$KUBECONFIG"
  kubeconfig=$KUBECONFIG
  unset KUBE_ELECTOR_TEST_KUBECONFIG_NOWATCH
else
  build "$apiserver" ./cmd/apiserver
  log "starting kube-apiserver with embedded etcd"
  "$apiserver" --data-dir "$workdir/data" \
    --kubeconfig "$workdir/admin.kubeconfig" \
    --kubeconfig-nowatch "$workdir/nowatch.kubeconfig" \
    >"$workdir/ready" 2>"$root/target/interop/apiserver.log" &
  pids+=($!)
  for _ in $(seq 1 600); do
    grep -q '^READY' "$workdir/ready" 2>/dev/null && break
    kill -0 "${pids[0]}" 2>/dev/null || { echo "kube-apiserver exited before it was ready" >&2; exit 1; }
    sleep 0.2
  done
  grep -q '^READY' "$workdir/ready" || { echo "kube-apiserver not ready within 120s" >&2; exit 1; }
  log "$(cat "$workdir/ready")"
  kubeconfig="$workdir/admin.kubeconfig"
  export KUBE_ELECTOR_TEST_KUBECONFIG_NOWATCH="$workdir/nowatch.kubeconfig"
fi

failed=()
run_tests() {
  local label=$1; shift
  for t in $E2E_TESTS; do
    if [ ! -f "tests/$t.rs" ]; then
      log "skipped $t: tests/$t.rs does not exist"
      continue
    fi
    log "$label: cargo test --test $t"
    if ! "$@" cargo test --test "$t" -- --test-threads=4; then
      failed+=("$label/$t")
    fi
  done
}

run_tests "real" env KUBE_ELECTOR_TEST_KUBECONFIG="$kubeconfig"
# client-go beside kube-elector on the embedded server as well.
E2E_TESTS=interop run_tests "embedded" env -u KUBE_ELECTOR_TEST_KUBECONFIG

if [ ${#failed[@]} -gt 0 ]; then
  echo "e2e: failed: ${failed[*]}" >&2
  exit 1
fi
log "all e2e suites passed"
