#!/usr/bin/env bash
# Builds helm from its Go module into a cache outside the clone, keyed by version, and prints
# the path of the binary. Does nothing when it is already there. Same Go caches as
# hack/controlplane/build.sh.
#
# Usage: hack/helm/build.sh        Env: TANDEM_CACHE (default /var/cache/tandem)
set -euo pipefail
version="v3.22.0"
cache="${TANDEM_CACHE:-/var/cache/tandem}"
out="$cache/helm/$version"
if [ -x "$out/helm" ]; then echo "$out/helm"; exit 0; fi
export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
export GOCACHE="$cache/go/build" GOMODCACHE="$cache/go/mod" GOMAXPROCS="${GOMAXPROCS:-2}"
mkdir -p "$out.partial"
start=$(date +%s)
GOBIN="$out.partial" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$version" >&2
rm -rf "$out" && mv "$out.partial" "$out"
echo "built helm $version in $(( $(date +%s) - start ))s" >&2
echo "$out/helm"
