#!/usr/bin/env bash
# seaweedfs-down.sh - stop the SeaweedFS server started by seaweedfs-up.sh.
# The process is found by $SEAWEEDFS_DIR/weed.pid (never by name); it gets
# SIGTERM, up to $SEAWEEDFS_STOP_TIMEOUT seconds to exit (`weed mini` can take
# over 15 s), then SIGKILL.  Safe to run when nothing is running.
#
# Usage: seaweedfs-down.sh [--purge]    (--purge also deletes $SEAWEEDFS_DIR)
#
# Environment tunables (defaults in brackets):
#   SEAWEEDFS_DIR           state directory used by seaweedfs-up.sh  [/tmp/seaweedfs]
#   SEAWEEDFS_STOP_TIMEOUT  seconds between SIGTERM and SIGKILL      [20]
set -euo pipefail

D=${SEAWEEDFS_DIR:-/tmp/seaweedfs}
STOP_TIMEOUT=${SEAWEEDFS_STOP_TIMEOUT:-20}
PIDFILE=$D/weed.pid
PURGE=0
case ${1:-} in
  '') ;;
  --purge) PURGE=1 ;;
  *) echo "usage: seaweedfs-down.sh [--purge]" >&2; exit 2 ;;
esac

log() { printf '[seaweedfs-down %s] %s\n' "$(date +%T)" "$*" >&2; }

# true while pid $1 exists and is not a zombie
alive() {
  local state
  state=$(sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# wait until pid $1 is gone, at most $2 seconds; false if still alive
wait_gone() {
  local deadline=$((SECONDS + $2))
  while alive "$1"; do
    (( SECONDS < deadline )) || return 1
    sleep 0.2
  done
}

if [ -s "$PIDFILE" ]; then
  p=$(cat "$PIDFILE")
  cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null || true)
  if [[ $cmd == *weed*" mini "*"-dir=$D/data "* ]]; then
    t0=$SECONDS
    log "stopping weed (pid $p)"
    kill -TERM "$p" 2>/dev/null || true
    if ! wait_gone "$p" "$STOP_TIMEOUT"; then
      log "weed still alive after $STOP_TIMEOUT s, SIGKILL"
      kill -KILL "$p" 2>/dev/null || true
      wait_gone "$p" 10 || { log "ERROR: pid $p survived SIGKILL"; exit 1; }
    fi
    log "weed stopped after $((SECONDS - t0)) s"
  fi
  rm -f "$PIDFILE"
fi
if [ "$PURGE" = 1 ] && [ -d "$D" ]; then
  case $D in
    /|/tmp|/root|/home|"$HOME") log "refusing to purge '$D'"; exit 1 ;;
  esac
  log "purging $D"
  rm -rf "$D"
fi
log "down"
