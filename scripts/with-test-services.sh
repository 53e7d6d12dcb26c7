#!/usr/bin/env bash
# Runs a command with the services the tests need started on loopback, and stops them after.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/test-postgres.sh start)"
trap 'bash scripts/test-postgres.sh stop >/dev/null 2>&1 || true' EXIT
"$@"
