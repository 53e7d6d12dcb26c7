#!/usr/bin/env bash
# Schemathesis (property-based API tests from an OpenAPI document) from PyPI, pinned, in its own venv
# .tools/schemathesis (bin/st). Idempotent: a marker file records the pin.
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEMATHESIS=4.32.5
stamp=.tools/schemathesis.installed
want="schemathesis==$SCHEMATHESIS"
if [[ -f $stamp && "$(cat "$stamp")" == "$want" && -x .tools/schemathesis/bin/st ]]; then
  echo "schemathesis present ($want)"
  exit 0
fi
mkdir -p .tools
[[ -x .tools/schemathesis/bin/pip ]] || python3 -m venv .tools/schemathesis
.tools/schemathesis/bin/pip install --quiet "schemathesis==$SCHEMATHESIS"
echo "$want" >"$stamp"
echo "schemathesis installed ($want)"
