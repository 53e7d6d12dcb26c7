#!/usr/bin/env bash
# Builds the pinned Temporal server for `make cluster` into .tools/temporal-server (git-ignored):
#   bin/temporal-server     the server (`start --service frontend|history|matching|worker`)
#   bin/temporal-sql-tool   creates and migrates the PostgreSQL schemas
#   bin/ui-server           the Temporal Web UI server (its assets are embedded in the Go module)
#   schema/postgresql/v12/  the server's PostgreSQL schemas, copied from the module cache
# From the Go module proxy with `go install`, pinned; a second run with the same pins does nothing
# (stamp file); a second run while one builds waits for it (lock). Needs Go (GOTOOLCHAIN fetches the pinned toolchain from the proxy).
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_SERVER_VERSION=v1.32.2
TEMPORAL_UI_SERVER_VERSION=v2.54.1
GO_TOOLCHAIN=go1.27.3
dest=.tools/temporal-server
stamp="$dest/.installed-$TEMPORAL_SERVER_VERSION-$TEMPORAL_UI_SERVER_VERSION-$GO_TOOLCHAIN"

# One build at a time: .ci/run starts one in the background early, `make test` waits for it here.
mkdir -p .tools
exec 9>.tools/.temporal-server.lock
flock 9

if [[ -f "$stamp" && -x "$dest/bin/temporal-server" && -x "$dest/bin/temporal-sql-tool" && -x "$dest/bin/ui-server" ]]; then
  echo "temporal server $TEMPORAL_SERVER_VERSION already installed in $dest"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install-temporal-server: Go 1.21 or newer is required on PATH (https://go.dev/dl; it fetches $GO_TOOLCHAIN itself)" >&2
  exit 1
fi
proxy="$(go env GOPROXY)"
if [[ "$proxy" == "off" ]] || ! GOTOOLCHAIN="$GO_TOOLCHAIN" go version >/dev/null 2>&1; then
  echo "install-temporal-server: the Go module proxy ($proxy) does not answer: cannot fetch $GO_TOOLCHAIN and the server modules" >&2
  exit 1
fi

started=$SECONDS
rm -rf "$dest"
mkdir -p "$dest/bin"
bin="$(pwd)/$dest/bin"
build() {
  echo "install-temporal-server: go install $1"
  GOTOOLCHAIN="$GO_TOOLCHAIN" GOBIN="$bin" go install "$1" ||
    { echo "install-temporal-server: go install $1 failed (is the Go module proxy $proxy reachable?)" >&2; exit 1; }
}
build "go.temporal.io/server/cmd/server@$TEMPORAL_SERVER_VERSION"
mv "$bin/server" "$bin/temporal-server"
build "go.temporal.io/server/cmd/tools/sql@$TEMPORAL_SERVER_VERSION"
mv "$bin/sql" "$bin/temporal-sql-tool"
build "github.com/temporalio/ui-server/v2/cmd/server@$TEMPORAL_UI_SERVER_VERSION"
mv "$bin/server" "$bin/ui-server"

module="$(GOTOOLCHAIN="$GO_TOOLCHAIN" go env GOMODCACHE)/go.temporal.io/server@$TEMPORAL_SERVER_VERSION"
mkdir -p "$dest/schema/postgresql"
cp -R "$module/schema/postgresql/v12" "$dest/schema/postgresql/"
chmod -R u+w "$dest/schema"

"$bin/temporal-server" --version
touch "$stamp"
echo "temporal server $TEMPORAL_SERVER_VERSION and ui-server $TEMPORAL_UI_SERVER_VERSION installed in $dest ($((SECONDS - started)) s)"
