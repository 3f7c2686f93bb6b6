#!/usr/bin/env bash
# postgres-down.sh - stop the PostgreSQL started by postgres-up.sh and delete its data.
# Environment: PG_DIR [/tmp/fsgateway-pg], PG_USER [postgres].
set -euo pipefail
D=${PG_DIR:-/tmp/fsgateway-pg}
USER_=${PG_USER:-postgres}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -n "$BIN" ] && [ -f "$D/data/postmaster.pid" ]; then
  if [ "$(id -u)" = 0 ]; then runuser -u "$USER_" -- "$BIN/pg_ctl" -D "$D/data" -m fast -w stop >&2 || true
  else "$BIN/pg_ctl" -D "$D/data" -m fast -w stop >&2 || true; fi
fi
rm -rf "$D"
