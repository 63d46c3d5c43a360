#!/usr/bin/env bash
# Benchmarks kube-elector beside kube-leader-election 0.44, kube-lease-manager
# 0.13 and client-go (when Go is available), in one run, against the embedded
# Lease API server, or a real kube-apiserver. Figures, not asserts: see
# BENCHMARKS.md.
#
#   scripts/bench.sh            # full run (about 15 minutes, after the builds)
#   scripts/bench.sh --quick    # a short run
#   scripts/bench.sh --only peers       # the scenarios every implementation runs (no scale, herd, many, rolling)
#   scripts/bench.sh --only partition   # just the partitioned-leader measurement (and the timeline)
#   scripts/bench.sh --only graceful    # one GET's and one PUT's RTT, and the graceful handover;
#                                       # BENCH_LOG_DIR=DIR keeps each process's stderr (RUST_LOG: kube-elector's logs)
#   scripts/bench.sh --only herd        # N candidates on one Lease (N = 10, 100, 1,000)
#   scripts/bench.sh --only many        # 10,000 Leases led by one process
#   scripts/bench.sh --only directed    # kube-elector's directed handover (hand_over to a named identity)
#   scripts/bench.sh --only sharding    # ShardedElector, 64 shards on 1, 2, 4, 8 replicas, beside
#                                       # a knative-style baseline (an elector per shard per replica)
#   scripts/bench.sh --only command     # kube-elector run beside client-go-runner (the design client-go
#                                       # sidecars share) on kube-apiserver through the fault proxy: graceful
#                                       # handover, crash takeover, overlap of the children under partitions
#                                       # and hung requests, several seeds (--seeds N), the orphan check;
#                                       # with --smoke, one seed, one of each, debug build
#   scripts/bench.sh --server real      # on kube-apiserver + etcd (interop/cmd/apiserver):
#                                       # handover, crash takeover, API load, one GET's RTT,
#                                       # and the controller scenario
#   scripts/bench.sh --only controller  # (implies --server real) a leader-gated controller over
#                                       # N ConfigMaps (N = 1,000 and 10,000; BENCH_CTL_SIZES=1000
#                                       # for one), kube-elector cold and warm beside
#                                       # controller-runtime without and with EnableWarmup:
#                                       # crash and graceful failovers, API load, RSS
#   scripts/bench.sh --smoke            # every scenario once, one sample each, smallest sizes,
#                                       # debug builds; exits 1 if a scenario broke (CI runs it;
#                                       # with --server real, the real server's scenarios)
#
# The embedded run's partition scenario also draws bench/timeline.svg (who
# led when, from bench/timeline.json) with matplotlib, which this script
# installs into a virtualenv under the cargo target directory if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cargo_target=${CARGO_TARGET_DIR:-$root/target}
# Shared by the bench crates; each has its own Cargo.lock.
target=${BENCH_TARGET_DIR:-$root/bench/target}

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

server=embedded
smoke=0
only=
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --server) server=${2:?--server embedded|real}; shift 2 ;;
    --server=*) server=${1#--server=}; shift ;;
    --smoke) smoke=1; args+=("$1"); shift ;;
    --only) only=${2:-}; args+=("$1" "$only"); shift 2 ;;
    --only=*) only=${1#--only=}; args+=("$1"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done
case $server in embedded | real) ;; *) log "--server: embedded or real, not $server"; exit 2 ;; esac
# The controller scenario runs on kube-apiserver alone (the embedded server
# serves only Leases), and needs only kube-elector's process of the Rust ones.
crates=(kube-elector-process peers/kube-leader-election peers/kube-lease-manager)
if [ "$only" = controller ]; then
  server=real
  crates=(kube-elector-process)
fi

# Figures come from release builds; the smoke run only checks that every
# scenario runs, so it takes debug builds (a fraction of the cold build
# time) and the debug lease-apiserver that `cargo test` builds.
# BENCH_PROFILE=debug takes debug builds for a full run too (no cold
# release build of everything; say so beside its figures).
if [ "$smoke" = 1 ] || [ "${BENCH_PROFILE:-}" = debug ]; then
  profile=debug
  profile_flags=()
else
  profile=release
  profile_flags=(--release)
fi
started=$SECONDS

# --only command: its own processes (kube-elector run, interop's
# client-go-runner and stamp-child), always on the real apiserver, through
# the fault proxy; none of the peers' bench crates.
only_command=0
prev=
for a in ${args[@]+"${args[@]}"}; do
  { [ "$prev" = --only ] && [ "$a" = command ]; } || [ "$a" = --only=command ] && only_command=1
  prev=$a
done
if [ "$only_command" = 1 ]; then
  command -v go >/dev/null 2>&1 || { log "--only command needs Go (kube-apiserver, the proxy, the baseline)"; exit 1; }
  log "building kube-elector ($profile) and interop's apiserver, faultproxy, client-go-runner, stamp-child"
  cargo build -q ${profile_flags[@]+"${profile_flags[@]}"} -p kube-elector-cli --bin kube-elector
  interop_out="$cargo_target/interop"
  OUT_DIR="$interop_out" interop/build.sh apiserver faultproxy client-go-runner stamp-child
  apiserver="$interop_out/kube-apiserver-etcd"
  workdir=$(mktemp -d "${TMPDIR:-/tmp}/kube-elector-bench.XXXXXX")
  out=${BENCH_LOG_DIR:-$workdir} # the apiserver's log
  mkdir -p "$out"
  . scripts/lib/apiserver.sh
  trap 'apiserver_stop; rm -rf "$workdir"' EXIT
  apiserver_start off
  log "built and started in $((SECONDS - started)) s"
  started=$SECONDS
  status=0
  python3 bench/bench.py --real-kubeconfig "$kubeconfig" \
    --impl "kube-elector=$cargo_target/$profile/kube-elector" \
    --impl "client-go-runner=$interop_out/client-go-runner" \
    --faultproxy "$interop_out/faultproxy" --stamp-child "$interop_out/stamp-child" \
    ${args[@]+"${args[@]}"} || status=$?
  log "ran in $((SECONDS - started)) s (exit $status)"
  exit "$status"
fi

log "building the elector processes ($profile)"
for crate in "${crates[@]}"; do
  cargo build -q ${profile_flags[@]+"${profile_flags[@]}"} --locked --manifest-path "bench/$crate/Cargo.toml" \
    --target-dir "$target"
done
impls=(
  --impl "kube-elector=$target/$profile/bench-kube-elector"
  --impl "kube-leader-election=$target/$profile/bench-kube-leader-election"
  --impl "kube-lease-manager=$target/$profile/bench-kube-lease-manager"
)
# The controller scenario takes its stacks from --ctl-stack (below).
[ "$only" != controller ] || impls=()
interop_out="$cargo_target/interop"
if [ "$only" = controller ]; then
  :
elif command -v go >/dev/null 2>&1; then
  OUT_DIR="$interop_out" interop/build.sh client-go-elector
  impls+=(--impl "client-go=$interop_out/client-go-elector")
  # The same without ReleaseOnCancel: separates the cost of its release
  # (which runs before OnStoppedLeading) from the rest.
  impls+=(--impl "client-go-norelease=$interop_out/client-go-elector --release-on-cancel=false")
else
  log "no Go toolchain: client-go is left out"
fi

if [ "$server" = real ]; then
  command -v go >/dev/null 2>&1 || { log "--server real needs Go to build kube-apiserver"; exit 1; }
  OUT_DIR="$interop_out" interop/build.sh apiserver
  apiserver="$interop_out/kube-apiserver-etcd"
  # The controller scenario's stacks (bench/controller_bench.py).
  OUT_DIR="$interop_out" interop/build.sh controller-runtime-manager
  args+=(--ctl-stack "kube-elector-cold=$target/$profile/bench-kube-elector --controller cold"
    --ctl-stack "kube-elector-warm=$target/$profile/bench-kube-elector --controller warm"
    --ctl-stack "controller-runtime=$interop_out/controller-runtime-manager --warmup=false"
    --ctl-stack "controller-runtime-warmup=$interop_out/controller-runtime-manager --warmup=true")
  [ -z "${BENCH_CTL_SIZES:-}" ] || args+=(--ctl-sizes "$BENCH_CTL_SIZES")
  [ -z "${BENCH_CTL_ROUNDS:-}" ] || args+=(--ctl-rounds "$BENCH_CTL_ROUNDS")
  [ -z "${BENCH_CTL_STACKS:-}" ] || { 
    # BENCH_CTL_STACKS="controller-runtime kube-elector-warm": only those.
    kept=() i=0
    while [ $i -lt ${#args[@]} ]; do
      if [ "${args[$i]}" = --ctl-stack ]; then
        case " $BENCH_CTL_STACKS " in *" ${args[$((i + 1))]%%=*} "*) kept+=("${args[$i]}" "${args[$((i + 1))]}") ;; esac
        i=$((i + 2))
      else
        kept+=("${args[$i]}"); i=$((i + 1))
      fi
    done
    args=("${kept[@]}")
  }
  out=$interop_out
  workdir=$(mktemp -d "${TMPDIR:-/tmp}/kube-elector-bench.XXXXXX")
  # apiserver_start, apiserver_stop (as scripts/e2e-real.sh starts it).
  . scripts/lib/apiserver.sh
  trap 'apiserver_stop; rm -rf "$workdir"' EXIT
  # The default of Kubernetes 1.33-1.37: no coordinated-election controller
  # writing Leases beside the electors.
  apiserver_start off
  log "built and started in $((SECONDS - started)) s; running against $(sed -n 's/^ *server: //p' "$kubeconfig")"
  started=$SECONDS
  status=0
  python3 bench/bench.py --real-kubeconfig "$kubeconfig" ${impls[@]+"${impls[@]}"} ${args[@]+"${args[@]}"} || status=$?
  log "ran in $((SECONDS - started)) s (exit $status)"
  exit "$status"
fi

log "building the lease-apiserver ($profile)"
cargo build -q ${profile_flags[@]+"${profile_flags[@]}"} -p kube-elector-testing --example lease-apiserver

# The timeline picture needs matplotlib (scripts/lib/matplotlib.sh).
. scripts/lib/matplotlib.sh
python=$(matplotlib_python "$cargo_target/bench-venv") || { python=; log "could not install matplotlib: no timeline picture"; }
# A smoke run's timeline is drawn to check the path, and kept out of bench/.
timeline="$cargo_target/bench-timeline.json"
[ "$smoke" = 0 ] || timeline="$cargo_target/bench-smoke-timeline.json"
rm -f "$timeline"

log "built in $((SECONDS - started)) s; running"
started=$SECONDS
status=0
python3 bench/bench.py --server "$cargo_target/$profile/examples/lease-apiserver" --timeline "$timeline" \
  "${impls[@]}" ${args[@]+"${args[@]}"} || status=$?
log "ran in $((SECONDS - started)) s (exit $status)"
[ "$status" = 0 ] || exit "$status"
if [ -s "$timeline" ] && [ "$smoke" = 1 ]; then
  if [ -n "$python" ]; then
    "$python" bench/timeline.py "$timeline" "${timeline%.json}.svg"
  fi
elif [ -s "$timeline" ]; then
  cp "$timeline" bench/timeline.json
  [ -z "$python" ] || "$python" bench/timeline.py bench/timeline.json bench/timeline.svg
fi
