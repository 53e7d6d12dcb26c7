#!/usr/bin/env bash
# Tempest (the OpenStack certification suite) from PyPI, pinned, in its own venv .tools/tempest
# (bin/tempest, bin/stestr, bin/subunit2junitxml). Idempotent: a marker file records the pins.
set -euo pipefail
cd "$(dirname "$0")/.."
TEMPEST=47.0.0
STESTR=4.2.0
SUBUNIT=1.4.4
JUNITXML=0.7
stamp=.tools/tempest.installed
want="tempest==$TEMPEST stestr==$STESTR python-subunit==$SUBUNIT junitxml==$JUNITXML"
if [[ -f $stamp && "$(cat "$stamp")" == "$want" && -x .tools/tempest/bin/tempest ]]; then
  echo "tempest present ($want)"
  exit 0
fi
mkdir -p .tools
if [[ ! -x .tools/tempest/bin/pip ]]; then
  python3 -m venv .tools/tempest
fi
.tools/tempest/bin/pip install --quiet "tempest==$TEMPEST" "stestr==$STESTR" "python-subunit==$SUBUNIT" "junitxml==$JUNITXML"
echo "$want" >"$stamp"
echo "tempest installed ($want)"
