#!/usr/bin/env bash
# RabbitMQ (Debian's rabbitmq-server, with its Erlang runtime) for the notification transport's tests and
# `make cluster`. The package's own service is neither started nor enabled: a policy-rc.d that denies every
# service action is in place for the install (Debian's mechanism, see invoke-rc.d(8)); our brokers run
# privately through scripts/rabbitmq.sh (loopback, their own data dir, node name and ports).
# Idempotent: nothing to do when the server is installed.
set -euo pipefail
if [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
  echo "rabbitmq-server present ($(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo '?'))"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-rabbitmq: need root to install: rabbitmq-server (apt-get install -y rabbitmq-server)" >&2
  exit 1
fi
policy=/usr/sbin/policy-rc.d
saved=
if [[ -e $policy ]]; then
  saved=$(mktemp)
  cp -p "$policy" "$saved"
fi
restore() {
  if [[ -n $saved ]]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
}
trap restore EXIT
printf '#!/bin/sh\n# install-rabbitmq.sh: no service starts during the install\nexit 101\n' >"$policy"
chmod 755 "$policy"
echo "installing Debian package: rabbitmq-server (its service not started)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
# Where systemd runs, keep the unit (and epmd's socket) from starting at boot.
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  systemctl disable --now rabbitmq-server.service epmd.socket epmd.service >/dev/null 2>&1 || true
fi
echo "rabbitmq-server installed ($(dpkg-query -W -f='${Version}' rabbitmq-server))"
