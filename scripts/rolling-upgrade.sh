#!/usr/bin/env bash
# Rolling-upgrade check: electors built from the landed version of this crate
# (commit c7bfa09, "old"), electors built from the working tree ("new") and a
# client-go elector (when Go is available) share ONE Lease on the embedded
# Lease API server, through graceful handovers (SIGTERM) and crashes
# (SIGKILL). Fails if two of them ever led at the same instant, or if no
# leader returned in time. See bench/README.md.
#
#   scripts/rolling-upgrade.sh                  # seed 7, 10 rounds (about a minute)
#   scripts/rolling-upgrade.sh --seed 3         # further flags go to bench.py
#   ROLLING_OLD=<commit> scripts/rolling-upgrade.sh   # another "old"
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
old_rev=${ROLLING_OLD:-c7bfa09}
work="$root/target/rolling"   # under target/: ignored by git
old_src="$work/old-src"

log() { printf '[rolling %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if ! old_commit=$(git rev-parse --verify -q "$old_rev^{commit}"); then
  log "commit $old_rev is not in this clone's history (a shallow clone? git fetch --unshallow)"
  exit 1
fi
# Extracted once per commit, so that its sources keep their mtimes and cargo
# has nothing to rebuild on the next run.
if [[ "$(cat "$old_src/.commit" 2>/dev/null)" != "$old_commit" ]]; then
  log "extracting $old_rev into target/rolling/old-src"
  rm -rf "$old_src"
  mkdir -p "$old_src"
  git archive "$old_commit" | tar -x -C "$old_src"
  echo "$old_commit" >"$old_src/.commit"
fi

started=$(date +%s)
# Debug builds, in one target directory: the check is about overlap, not
# speed, and the old and new processes share most of their dependencies, so
# they are compiled once (the release builds took 19 min of a clean CI run
# on two cores). The lease-apiserver is the one `cargo test` built.
log "building the lease-apiserver and the old and new elector processes (debug, one target directory)"
cargo build -q -p kube-elector-testing --example lease-apiserver
cargo_target=${CARGO_TARGET_DIR:-$root/target}
build_target="$work/target"
cargo build -q --locked --manifest-path bench/kube-elector-process/Cargo.toml --target-dir "$build_target"
cp -f "$build_target/debug/bench-kube-elector" "$work/bench-kube-elector-new"
cargo build -q --locked --manifest-path "$old_src/bench/kube-elector-process/Cargo.toml" \
  --target-dir "$build_target"
cp -f "$build_target/debug/bench-kube-elector" "$work/bench-kube-elector-old"
impls=(
  --impl "kube-elector-old=$work/bench-kube-elector-old"
  --impl "kube-elector=$work/bench-kube-elector-new"
)
have_go=1
if command -v go >/dev/null 2>&1; then
  (cd interop && go build -trimpath -ldflags='-s -w' -o "$root/target/interop/client-go-elector" ./cmd/client-go-elector)
  impls+=(--impl "client-go=$root/target/interop/client-go-elector")
else
  have_go=0
fi
missing_go() {
  log "!!! NO GO TOOLCHAIN: client-go is LEFT OUT of the rolling check; only old and new kube-elector run !!!"
}
[[ $have_go == 1 ]] || missing_go
log "built in $(($(date +%s) - started)) s; running"

started=$(date +%s)
status=0
python3 bench/bench.py --server "$cargo_target/debug/examples/lease-apiserver" --only rolling \
  --lease-duration-ms 2000 --renew-deadline-ms 1000 --retry-period-ms 250 \
  "${impls[@]}" "$@" || status=$?
log "ran in $(($(date +%s) - started)) s (exit $status)"
[[ $have_go == 1 ]] || missing_go
exit "$status"
