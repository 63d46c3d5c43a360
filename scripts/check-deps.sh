#!/usr/bin/env bash
# Checks that the libraries leave the application's choices alone: neither
# kube-elector (with every feature) nor kube-elector-testing enables a TLS
# stack or a crypto provider (kube's rustls-tls/openssl-tls, rustls, openssl,
# ring, aws-lc-rs, native-tls) or a Kubernetes version feature of k8s-openapi.
# They are resolved as an application would see them: from a crate outside
# this workspace (ci/dependency-check) that depends on both and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
manifest=ci/dependency-check/Cargo.toml
export K8S_OPENAPI_ENABLED_VERSION=1.37 # for the resolution only; no build
failed=0
for crate in rustls openssl ring aws-lc-rs aws-lc-sys native-tls hyper-rustls hyper-openssl; do
  if cargo tree -q --manifest-path "$manifest" -e normal -i "$crate" >/dev/null 2>&1; then
    echo "FAIL: the libraries bring in $crate:" >&2
    cargo tree --manifest-path "$manifest" -e normal,features -i "$crate" >&2 || true
    failed=1
  else
    echo "ok: no $crate"
  fi
done
# kube's own TLS features, and k8s-openapi version features (v1_xx, latest).
for feature in rustls-tls openssl-tls; do
  if cargo tree -q --manifest-path "$manifest" -e features -i kube-client 2>/dev/null | grep -q "feature \"$feature\""; then
    echo "FAIL: kube's $feature feature is enabled" >&2
    failed=1
  else
    echo "ok: kube without $feature"
  fi
done
if cargo tree -q --manifest-path "$manifest" -e features -i k8s-openapi 2>/dev/null | grep -Eq 'feature "(v1_[0-9]+|latest|earliest)"'; then
  echo "FAIL: a Kubernetes version feature of k8s-openapi is enabled" >&2
  failed=1
else
  echo "ok: no Kubernetes version feature"
fi
exit "$failed"
