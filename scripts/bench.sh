#!/usr/bin/env bash
# Benchmarks kube-elector beside kube-leader-election 0.44, kube-lease-manager
# 0.13 and client-go (when Go is available), in one run, against the embedded
# Lease API server. Figures, not asserts: see BENCHMARKS.md.
#
#   scripts/bench.sh            # full run (about 15 minutes, after the builds)
#   scripts/bench.sh --quick    # a short run
#   scripts/bench.sh --only partition   # just the partitioned-leader measurement
#   scripts/bench.sh --only herd        # N candidates on one Lease (N = 10, 100, 1,000)
#   scripts/bench.sh --only many        # 10,000 Leases led by one process
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target="$root/bench/target"   # shared by the bench crates; each has its own Cargo.lock

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

log "building the lease-apiserver and the elector processes (release)"
cargo build -q --release -p kube-elector-testing --example lease-apiserver
for crate in kube-elector-process peers/kube-leader-election peers/kube-lease-manager; do
  cargo build -q --release --locked --manifest-path "bench/$crate/Cargo.toml" --target-dir "$target"
done
impls=(
  --impl "kube-elector=$target/release/bench-kube-elector"
  --impl "kube-leader-election=$target/release/bench-kube-leader-election"
  --impl "kube-lease-manager=$target/release/bench-kube-lease-manager"
)
if command -v go >/dev/null 2>&1; then
  (cd interop && go build -trimpath -ldflags='-s -w' -o "$root/target/interop/client-go-elector" ./cmd/client-go-elector)
  impls+=(--impl "client-go=$root/target/interop/client-go-elector")
  # The same without ReleaseOnCancel: separates the cost of its release
  # (which runs before OnStoppedLeading) from the rest.
  impls+=(--impl "client-go-norelease=$root/target/interop/client-go-elector --release-on-cancel=false")
else
  log "no Go toolchain: client-go is left out"
fi
log "running"
python3 bench/bench.py --server "$root/target/release/examples/lease-apiserver" "${impls[@]}" "$@"
