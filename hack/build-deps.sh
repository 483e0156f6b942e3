#!/usr/bin/env bash
# Debian packages the Rust build itself needs (not only the tests): the Kafka scaler links
# librdkafka dynamically (rdkafka's `dynamic-linking`), found through pkg-config, so no C build
# of librdkafka runs here. Idempotent: does nothing when the packages are present.
set -euo pipefail
need=()
command -v pkg-config >/dev/null || need+=(pkg-config)
pkg-config --exists rdkafka 2>/dev/null || need+=(librdkafka-dev)
if [ "${#need[@]}" -gt 0 ]; then
  echo "build-deps.sh: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "build-deps.sh: pkg-config and librdkafka-dev present"
fi
