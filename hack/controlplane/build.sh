#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl
# from the upstream Go modules (see go.mod beside this file) into a cache outside
# the clone, keyed by version. Does nothing when the binaries are already there.
#
# Usage: hack/controlplane/build.sh         builds if needed, prints the directory of the binaries
#        hack/controlplane/build.sh --dir   prints that directory; exit 1 if not built yet
# Env:   TANDEM_CACHE (default /var/cache/tandem)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${TANDEM_CACHE:-/var/cache/tandem}"
k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2}' "$here/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ {print $2}' "$here/etcd/go.mod")"
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] || { echo "cannot read versions from go.mod" >&2; exit 2; }
out="$cache/controlplane/${k8s_version}-etcd${etcd_version}"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)

have_all() { for b in "${bins[@]}"; do [ -x "$out/$b" ] || return 1; done; }
if have_all; then echo "$out"; exit 0; fi
if [ "${1:-}" = "--dir" ]; then echo "$out"; exit 1; fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
export GOCACHE="$cache/go/build" GOMODCACHE="$cache/go/mod"
# Two cores: one package at a time per binary keeps the peak memory sane.
export GOMAXPROCS="${GOMAXPROCS:-2}"
mkdir -p "$out.partial"
start=$(date +%s)

minor="${k8s_version#v1.}"; minor="${minor%%.*}"
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

( cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$out.partial/etcd" go.etcd.io/etcd/server/v3 )
echo "built etcd $etcd_version in $(( $(date +%s) - start ))s" >&2
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  t=$(date +%s)
  ( cd "$here" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out.partial/$b" "k8s.io/kubernetes/cmd/$b" )
  echo "built $b $k8s_version in $(( $(date +%s) - t ))s" >&2
done
rm -rf "$out"; mv "$out.partial" "$out"
echo "control plane built in $(( $(date +%s) - start ))s" >&2
echo "$out"
