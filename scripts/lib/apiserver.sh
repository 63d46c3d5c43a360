# Starting and stopping the real kube-apiserver of interop/cmd/apiserver
# (embedded etcd, TLS, token auth); sourced by scripts/e2e-real.sh and
# scripts/bench.sh. The sourcing script defines `log`, sets `apiserver` (the
# kube-apiserver-etcd binary), `workdir` (a directory it removes at exit)
# and `out` (where the logs go), and calls apiserver_stop (or stop_pid on
# $apiserver_pid) from its cleanup.

APISERVER_READY_TIMEOUT=${APISERVER_READY_TIMEOUT:-${E2E_READY_TIMEOUT:-180}}
apiserver_pid=

# stop_pid PID: TERM, up to 15 s, then KILL.
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 75); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  log "pid $pid did not stop within 15s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

# apiserver_start on|off: starts kube-apiserver with the
# CoordinatedLeaderElection gate on or off, on fresh etcd data under
# $workdir/gate-GATE, and waits for its READY line. Sets apiserver_pid,
# apiserver_log, kubeconfig (the admin's), nowatch_kubeconfig (a user whose
# RBAC lacks watch on Leases) and apiserver_gate (true or false).
apiserver_start() {
  local gate=$1 started
  case $gate in
    on) apiserver_gate=true ;;
    off) apiserver_gate=false ;;
    *) log "unknown gate mode $gate (on | off)"; exit 2 ;;
  esac
  apiserver_log="$out/apiserver-gate-$gate.log"
  local dir="$workdir/gate-$gate"
  mkdir -p "$dir"
  log "starting kube-apiserver with embedded etcd, CoordinatedLeaderElection $gate (--coordinated-leader-election=$apiserver_gate; log: $apiserver_log)"
  started=$SECONDS
  "$apiserver" --data-dir "$dir/data" \
    --kubeconfig "$dir/admin.kubeconfig" \
    --kubeconfig-nowatch "$dir/nowatch.kubeconfig" \
    --coordinated-leader-election="$apiserver_gate" \
    >"$dir/ready" 2>"$apiserver_log" &
  apiserver_pid=$!
  while ! grep -q '^READY ' "$dir/ready" 2>/dev/null; do
    if ! kill -0 "$apiserver_pid" 2>/dev/null; then
      log "kube-apiserver exited before it was ready"
      exit 1
    fi
    if [ $((SECONDS - started)) -ge "$APISERVER_READY_TIMEOUT" ]; then
      log "kube-apiserver was not ready within ${APISERVER_READY_TIMEOUT}s"
      exit 1
    fi
    sleep 0.1
  done
  log "$(grep '^READY ' "$dir/ready") (after $((SECONDS - started))s)"
  kubeconfig="$dir/admin.kubeconfig"
  nowatch_kubeconfig="$dir/nowatch.kubeconfig"
}

# apiserver_stop: stops the kube-apiserver apiserver_start started, if any.
apiserver_stop() {
  [ -n "$apiserver_pid" ] || return 0
  log "stopping kube-apiserver (pid $apiserver_pid)"
  stop_pid "$apiserver_pid"
  wait "$apiserver_pid" 2>/dev/null || true
  apiserver_pid=
}
