#!/usr/bin/env bash
# The crash suites of issue #14 at a length of your choosing: `kill -9` of `tandem run` at seeded
# random moments while it launches, consolidates and drains (crates/tandem/tests/crash.rs), and
# over seed 002's whole chain with drift, interruption and deletions (crash_chain.rs). CI's
# test run (hack/test.sh) does 100 kills of each with fixed seeds; this script is the
# nightly-style run: more kills, other seeds, the fuzz targets for longer.
#
#   bash hack/chaos.sh              # 100 kills each, CI's seeds
#   bash hack/chaos.sh --long       # 1,000 kills each, seeds from the clock, fuzz 10 min per target
#   KILLS=300 SEED=7 bash hack/chaos.sh
#
# The seeds are printed first and in each test's summary line: a failure reproduces with
# `KILLS=<n> SEED=<seed> bash hack/chaos.sh`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TANDEM_CACHE="${TANDEM_CACHE:-/var/cache/tandem}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TANDEM_CACHE/target}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export PATH="/usr/local/go/bin:$PATH"

long=false
for arg in "$@"; do
  case "$arg" in
    --long) long=true ;;
    *) echo "usage: bash hack/chaos.sh [--long]  (KILLS=n SEED=s override)" >&2; exit 2 ;;
  esac
done
if $long; then
  kills="${KILLS:-1000}"
  seed="${SEED:-$(date +%s)}"
else
  kills="${KILLS:-100}"
  seed="${SEED:-}"
fi
export TANDEM_CRASH_KILLS="$kills" TANDEM_CHAIN_KILLS="$kills"
if [ -n "$seed" ]; then
  export TANDEM_CRASH_SEED="$seed" TANDEM_CHAIN_SEED="$seed"
fi
echo "== chaos: $kills kills per suite, seed ${seed:-fixed in each test}"

bash "$root/hack/build-deps.sh"
bash "$root/hack/services.sh"
"$root/hack/controlplane/build.sh"

cd "$root"
# One test at a time: each starts its own control plane, and two would share 2 cores.
cargo test --workspace --locked --test crash --test crash_chain -- --nocapture --test-threads 1

if $long; then
  bash "$root/hack/fuzz.sh" --long
fi
