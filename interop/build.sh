#!/usr/bin/env bash
# Builds the interop programs (one Go module, interop/go.mod; programs in
# interop/cmd/) into OUT_DIR (default: target/interop of the repository),
# each only when it is missing or older than its Go files, go.mod or go.sum.
#
#   interop/build.sh                      # all of them
#   interop/build.sh client-go-elector    # just one: apiserver | client-go-elector | faultproxy |
#                                         # controller-runtime-manager | client-go-runner | stamp-child
#
# The first build of the apiserver compiles most of k8s.io/kubernetes: about
# 7 minutes on 2 cores with an empty Go build cache, seconds after that.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out_dir=${OUT_DIR:-$(dirname "$here")/target/interop}
mkdir -p "$out_dir"

log() { printf '[interop/build %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# stale BINARY NAME: true when BINARY (of cmd/NAME) must be (re)built.
stale() {
  local bin=$1 name=$2
  [ -x "$bin" ] || return 0
  [ -n "$(find "$here/cmd/$name" "$here/go.mod" "$here/go.sum" \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$bin" -print -quit)" ]
}

build() {
  local name=$1 bin=$2
  shift 2
  if ! stale "$bin" "$name"; then
    return 0
  fi
  command -v go >/dev/null || { log "Go is needed to build $name"; return 1; }
  log "building $name -> $bin"
  local start=$SECONDS
  # Written beside, then renamed: an interrupted build leaves no binary.
  (cd "$here" && go build -trimpath "$@" -o "$bin.tmp" "./cmd/$name")
  mv -f "$bin.tmp" "$bin"
  log "built $name in $((SECONDS - start))s ($(du -h "$bin" | cut -f1))"
}

build_apiserver() {
  # kube-apiserver reports its version from ldflags, as Kubernetes' own
  # build sets them; without them it says v0.0.0-master.
  local v major minor pkg=k8s.io/component-base/version
  stale "$out_dir/kube-apiserver-etcd" apiserver || return 0
  command -v go >/dev/null || { log "Go is needed to build apiserver"; return 1; }
  v=$(cd "$here" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
  major=${v#v}; major=${major%%.*}
  minor=${v#v"$major".}; minor=${minor%%.*}
  build apiserver "$out_dir/kube-apiserver-etcd" \
    -ldflags="-s -w -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
}

build_client_go_elector() {
  build client-go-elector "$out_dir/client-go-elector" -ldflags="-s -w"
}

build_faultproxy() {
  build faultproxy "$out_dir/faultproxy" -ldflags="-s -w"
}

build_controller_runtime_manager() {
  build controller-runtime-manager "$out_dir/controller-runtime-manager" -ldflags="-s -w"
}

targets=${*:-apiserver client-go-elector faultproxy controller-runtime-manager client-go-runner stamp-child}
for t in $targets; do
  case $t in
    apiserver) build_apiserver ;;
    client-go-elector) build_client_go_elector ;;
    faultproxy) build_faultproxy ;;
    controller-runtime-manager) build_controller_runtime_manager ;;
    client-go-runner | stamp-child) build "$t" "$out_dir/$t" -ldflags="-s -w" ;;
    *) log "unknown target $t (apiserver | client-go-elector | faultproxy | controller-runtime-manager | client-go-runner | stamp-child)"; exit 2 ;;
  esac
done
