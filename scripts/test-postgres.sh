#!/usr/bin/env bash
# A throw-away PostgreSQL server for the store tests and CI, listening on 127.0.0.1 only.
#
#   eval "$(scripts/test-postgres.sh)"        # start (idempotent) and export TEST_DATABASE_URL
#   scripts/test-postgres.sh stop             # stop it and delete its data directory
#   scripts/test-postgres.sh status
#
# Needs the Debian/Ubuntu `postgresql` package (initdb and pg_ctl under /usr/lib/postgresql/*/bin).
# Run as root, the server runs as the `postgres` user (initdb refuses root). The cluster is created
# with trust authentication and fsync off: it is for tests only, never for data you want to keep.
# Environment: TEST_PG_PORT (default 55432), TEST_PG_DIR (default $TMPDIR/conductor-test-pg-<port>).
# Only the `export ...` line goes to stdout, so `eval "$(...)"` works; progress goes to stderr.
set -euo pipefail

cmd="${1:-start}"
port="${TEST_PG_PORT:-55432}"
dir="${TEST_PG_DIR:-${TMPDIR:-/tmp}/conductor-test-pg-$port}"
data="$dir/data"
db=conductor_test
url="postgres://postgres@127.0.0.1:$port/$db"

log() { echo "test-postgres: $*" >&2; }

bindir=""
for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]]; then
    bindir="$candidate"
    break
  fi
done
if [[ -z "$bindir" ]] && command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
  bindir="$(dirname "$(command -v pg_ctl)")"
fi
if [[ -z "$bindir" ]]; then
  log "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH."
  log "Install them with:  apt-get update && apt-get install -y postgresql"
  exit 1
fi

# As root, run the server binaries as `postgres`; otherwise as the current user.
as_pg=()
if [[ "$(id -u)" -eq 0 ]]; then
  if ! id postgres >/dev/null 2>&1; then
    log "running as root but there is no 'postgres' user (apt-get install -y postgresql creates it)"
    exit 1
  fi
  if command -v runuser >/dev/null 2>&1; then
    as_pg=(runuser -u postgres --)
  else
    as_pg=(su postgres -s /bin/sh -c '"$0" "$@"' --)
  fi
fi
pg() { "${as_pg[@]}" "$@"; }

running() { [[ -f "$data/PG_VERSION" ]] && pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }

case "$cmd" in
  start)
    if running; then
      log "already running on 127.0.0.1:$port (data in $data)"
    else
      rm -rf "$dir"
      mkdir -p "$dir"
      if [[ "$(id -u)" -eq 0 ]]; then chown postgres: "$dir"; fi
      log "initdb in $data ($bindir)"
      pg "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
      log "starting on 127.0.0.1:$port"
      pg "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    fi
    if ! pg "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "select 1 from pg_database where datname = '$db'" | grep -q 1; then
      pg "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "create database $db" >&2
    fi
    echo "export TEST_DATABASE_URL=$url"
    ;;
  stop)
    if running; then
      pg "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null
      log "stopped"
    else
      log "not running"
    fi
    rm -rf "$dir"
    ;;
  status)
    if running; then
      log "running on 127.0.0.1:$port (data in $data)"
      echo "export TEST_DATABASE_URL=$url"
    else
      log "not running"
      exit 3
    fi
    ;;
  *)
    log "usage: $0 [start|stop|status]"
    exit 2
    ;;
esac
