#!/usr/bin/env bash
# Runs every test of Tandem on this machine, building or starting what the tests need first.
# This is the README's test command; .ci/run calls it after the format/lint/purity checks.
#
# Heavy caches live outside the clone (TANDEM_CACHE, default /var/cache/tandem): the cargo
# target dir and the control-plane binaries built from the upstream Go modules.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TANDEM_CACHE="${TANDEM_CACHE:-/var/cache/tandem}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TANDEM_CACHE/target}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
mkdir -p "$TANDEM_CACHE"

# Go (>= 1.26, preinstalled on this machine kind in /usr/local/go) builds the control plane;
# Debian's golang-go is too old for Kubernetes 1.36, so it is no fallback.
export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "Go 1.26 is needed to build the control plane (hack/controlplane)" >&2; exit 1; }
# Debian packages the tests drive: setpriv (util-linux) ties the control plane's processes to
# the test process; chromium renders the simulator's HTML report in a real browser.
need=()
command -v setpriv >/dev/null || need+=(util-linux)
command -v chromium >/dev/null || need+=(chromium)
if [ "${#need[@]}" -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The HTML-report test skips without a browser; in this script a missing browser is an error.
export TANDEM_REQUIRE_CHROMIUM=1

echo "== build dependencies (librdkafka-dev: the Kafka scaler links it)"
bash "$root/hack/build-deps.sh"

echo "== data servers for the scaler tests (Prometheus, RabbitMQ, Redis, PostgreSQL, moto)"
bash "$root/hack/services.sh"

echo "== Kafka broker jars from Maven Central (cached under \$TANDEM_CACHE/kafka)"
bash "$root/hack/kafka/fetch.sh"

echo "== control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)"
"$root/hack/controlplane/build.sh"

echo "== helm (the chart tests render charts/tandem with it)"
export TANDEM_HELM="$("$root/hack/helm/build.sh")"

echo "== cargo test"
cd "$root"
cargo test --workspace --locked

echo "== fuzz: every target for a bounded time (hack/fuzz.sh; --long for ten minutes each)"
bash "$root/hack/fuzz.sh"
