#!/usr/bin/env bash
# postgres-up.sh - run a throw-away PostgreSQL (Debian's `postgresql` package)
# on 127.0.0.1 for the checker's multi-host tests: its own data directory, its
# own port, trust authentication on loopback only, a database `fsgateway`.
#
# Idempotent: if our server is already running it only prints the environment.
# Stop it with postgres-down.sh (the data directory is deleted then).
#
# Usage: postgres-up.sh            start (or reuse) the server
#        postgres-up.sh --status   exit 0 if our server is running
#
# Output (stdout): `export CHECKER_PG_URL=postgresql://postgres@127.0.0.1:PORT/fsgateway`
# Progress messages go to stderr.
#
# Environment tunables (defaults in brackets):
#   PG_DIR    state directory (data/, log, socket)   [/tmp/fsgateway-pg]
#   PG_PORT   TCP port on 127.0.0.1                  [5433]
#   PG_USER   the OS user that runs the server       [postgres]
set -euo pipefail

D=${PG_DIR:-/tmp/fsgateway-pg}
PORT=${PG_PORT:-5433}
USER_=${PG_USER:-postgres}
URL=postgresql://postgres@127.0.0.1:$PORT/fsgateway

log() { printf '[postgres-up %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$BIN" ] && [ -x "$BIN/initdb" ] || die "PostgreSQL is not installed (apt-get install postgresql; scripts/setup does)"
as_user() { if [ "$(id -u)" = 0 ]; then runuser -u "$USER_" -- "$@"; else "$@"; fi; }
ready() { as_user "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; }

if [ "${1:-}" = --status ]; then ready; exit; fi
if [ -f "$D/data/postmaster.pid" ] && ready; then
  log "already running on 127.0.0.1:$PORT"
  echo "export CHECKER_PG_URL=$URL"
  exit 0
fi

mkdir -p "$D"
[ "$(id -u)" = 0 ] && chown "$USER_" "$D"
if [ ! -f "$D/data/PG_VERSION" ]; then
  log "initdb in $D/data"
  as_user "$BIN/initdb" -D "$D/data" -U postgres --auth=trust -E UTF8 >"$D/initdb.log" 2>&1 \
    || { tail -n 20 "$D/initdb.log" >&2; die "initdb failed"; }
fi
log "starting on 127.0.0.1:$PORT"
as_user "$BIN/pg_ctl" -D "$D/data" -l "$D/postgres.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$D -c fsync=off" start >&2 \
  || { tail -n 20 "$D/postgres.log" >&2; die "PostgreSQL did not start"; }
as_user "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='fsgateway'" \
  | grep -q 1 || as_user "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres fsgateway
echo "export CHECKER_PG_URL=$URL"
