#!/usr/bin/env bash
# Runs Karpenter's own scheduling benchmark (core pkg/controllers/provisioning/scheduling,
# build tag test_performance: the diverse 5-part pod mix on fake.InstanceTypes(400)) on this
# machine, so Tandem's figures from `cargo bench -p tandem-nodescaler --bench scheduling` are
# compared with upstream measured side by side, not with published numbers.
#
# Usage: hack/karpenter-bench/run.sh [bench regexp]   (default: Scheduling(100|1000|2000|5000|10000)$)
# Karpenter v1.15 needs Go >= 1.26.9: the approved toolchain go1.27.3 comes from the module proxy.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${TANDEM_CACHE:-/var/cache/tandem}"
export PATH="/usr/local/go/bin:$PATH" GOTOOLCHAIN=go1.27.3 GOFLAGS=-mod=mod
export GOCACHE="$cache/go/build" GOMODCACHE="$cache/go/mod" GOMAXPROCS="${GOMAXPROCS:-2}"
pattern="${1:-Scheduling(100|1000|2000|5000|10000)$}"
cd "$here"
go test -tags test_performance -run '^$' -bench "$pattern" -benchtime 1x -benchmem \
  sigs.k8s.io/karpenter/pkg/controllers/provisioning/scheduling
