#!/usr/bin/env bash
# Fuzzes what Tandem reads from users, sources and the API server (issue #14): each target in
# fuzz/fuzz_targets runs for a bounded time, starting from the checked-in seeds (fuzz/seeds)
# and the corpus earlier runs grew (kept under $TANDEM_CACHE/fuzz-corpus, outside the clone).
# A panic fails the run and leaves the input in fuzz/artifacts/<target>/: turn it into a
# regression test next to the code, then fix.
#
#   bash hack/fuzz.sh            # every target, FUZZ_SECONDS each (default 20): CI
#   bash hack/fuzz.sh --long     # every target, 10 minutes each
#   bash hack/fuzz.sh cron       # one target
#
# cargo-fuzz passes -Z flags (coverage instrumentation); the toolchain is stable, so
# RUSTC_BOOTSTRAP=1 lets it, for this separate workspace only. No sanitizer (-s none): the code
# is safe Rust, and what the fuzzers look for is a panic.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TANDEM_CACHE="${TANDEM_CACHE:-/var/cache/tandem}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$TANDEM_CACHE/target-fuzz"
seconds="${FUZZ_SECONDS:-20}"
targets=()
for arg in "$@"; do
  case "$arg" in
    --long) seconds=600 ;;
    *) targets+=("$arg") ;;
  esac
done
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(quantity requirements duration cron formula manifest interruption)
fi

fuzz="$TANDEM_CACHE/tools/bin/cargo-fuzz"
if [ ! -x "$fuzz" ]; then
  echo "== cargo install cargo-fuzz (cached under \$TANDEM_CACHE/tools)"
  CARGO_TARGET_DIR="$TANDEM_CACHE/target-tools" cargo install -q --locked cargo-fuzz@0.13.2 --root "$TANDEM_CACHE/tools"
fi

cd "$root"
echo "== build the fuzz targets"
"$fuzz" build -s none --fuzz-dir fuzz

summary=()
for t in "${targets[@]}"; do
  corpus="$TANDEM_CACHE/fuzz-corpus/$t"
  mkdir -p "$corpus"
  log="$(mktemp)"
  echo "== fuzz $t for ${seconds}s"
  if ! "$fuzz" run -s none --fuzz-dir fuzz "$t" "$corpus" "fuzz/seeds/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz target $t failed: the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  done_line="$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)"
  summary+=("$t: ${done_line:-no summary} (corpus $(find "$corpus" -type f | wc -l) inputs)")
  rm -f "$log"
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
