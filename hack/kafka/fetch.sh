#!/usr/bin/env bash
# Fetches the Apache Kafka broker's jars (KRaft mode needs no ZooKeeper) from Maven Central
# into $TANDEM_CACHE/kafka/<version>/libs, outside the clone; crates/testkit starts
# `java -cp 'libs/*' kafka.Kafka` from there. Idempotent: does nothing when the jars are present.
# Needs Java 17+ and mvn (Debian: openjdk-17-jre-headless, maven; installed when missing).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${TANDEM_CACHE:-/var/cache/tandem}"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
libs="$cache/kafka/$version/libs"
if [ -f "$libs/kafka_2.13-$version.jar" ] && [ -f "$libs/.complete" ]; then
  echo "kafka/fetch.sh: Kafka $version jars present in $libs"
  exit 0
fi
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
if [ "${#need[@]}" -gt 0 ]; then
  echo "kafka/fetch.sh: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "kafka/fetch.sh: copying Kafka $version and its runtime dependencies into $libs"
rm -rf "$libs"
mkdir -p "$libs"
mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
  -DoutputDirectory="$libs" -DincludeScope=runtime
touch "$libs/.complete"
