#!/usr/bin/env bash
# oslo.messaging (OpenStack's messaging library, what Nova's notifier and every notification consumer use)
# from PyPI, pinned, in its own venv .tools/oslo: test/notifications/oslo_listener.py runs on it to receive
# our RabbitMQ notifications as an unmodified consumer does. Idempotent: a marker file records the pin.
set -euo pipefail
cd "$(dirname "$0")/.."
OSLO_MESSAGING=18.3.1
stamp=.tools/oslo.installed
want="oslo.messaging==$OSLO_MESSAGING"
if [[ -f $stamp && "$(cat "$stamp")" == "$want" && -x .tools/oslo/bin/python ]]; then
  echo "oslo.messaging present ($want)"
  exit 0
fi
mkdir -p .tools
if [[ ! -x .tools/oslo/bin/pip ]]; then
  python3 -m venv .tools/oslo
fi
.tools/oslo/bin/pip install --quiet "oslo.messaging==$OSLO_MESSAGING"
.tools/oslo/bin/python -c 'import oslo_messaging, kombu' # fails loudly if the install is incomplete
echo "$want" >"$stamp"
echo "oslo.messaging installed ($want)"
