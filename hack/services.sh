#!/usr/bin/env bash
# Installs the data servers the integration tests start themselves (crates/testkit/src/services):
# Prometheus, RabbitMQ (+ management plugin, shipped in the package), Redis, PostgreSQL from
# Debian, and moto's server from PyPI. Idempotent: does nothing when everything is present.
#
# Debian's postinst scripts would start the daemons on their default ports on 0.0.0.0; a
# policy-rc.d that exits 101 stops that (tests start their own copies on 127.0.0.1).
set -euo pipefail

APT_PACKAGES=(prometheus rabbitmq-server redis-server postgresql)
MOTO_SPEC='moto[server]>=5.2,<5.3'

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql)

if [ "${#missing[@]}" -gt 0 ]; then
  echo "services.sh: installing ${missing[*]}"
  if [ ! -x /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "services.sh: ${APT_PACKAGES[*]} present"
fi

if command -v moto_server >/dev/null 2>&1 && python3 -c 'import moto, boto3' >/dev/null 2>&1; then
  echo "services.sh: moto present"
else
  echo "services.sh: installing $MOTO_SPEC"
  python3 -m pip install -q "$MOTO_SPEC"
  # pyenv puts new console scripts on PATH only after a rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
fi
