#!/usr/bin/env bash
# Debian packages the tests need: PostgreSQL (the store runs against a real server as well as SQLite),
# Chromium (the Web UI test drives it with playwright-core; npm's browser download is not used), and
# QEMU with busybox-static (the real-guest tests: scripts/build-guest-images.sh makes the images).
set -euo pipefail
need=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || need+=(busybox-static)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-test-deps: need root to install: ${need[*]} (apt-get install -y ${need[*]})" >&2
    exit 1
  fi
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The package starts a cluster on 5432; the tests start their own on loopback.
  command -v pg_ctlcluster >/dev/null && pg_ctlcluster --help >/dev/null 2>&1 && service postgresql stop >/dev/null 2>&1 || true
fi
echo "test dependencies present"
