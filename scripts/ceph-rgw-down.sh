#!/usr/bin/env bash
# ceph-rgw-down.sh - stop the Ceph cluster started by ceph-rgw-up.sh: radosgw,
# then the OSD, the mgr (if any) and the mon.  Processes are found by the PID
# files in $CEPH_RGW_DIR/run (never by process name), each gets SIGTERM, up to
# 20 s to exit, then SIGKILL.  Safe to run when nothing is running.
#
# Usage: ceph-rgw-down.sh [--purge]    (--purge also deletes $CEPH_RGW_DIR)
#
# Environment tunables (defaults in brackets):
#   CEPH_RGW_DIR   state directory used by ceph-rgw-up.sh   [/tmp/ceph-rgw]
set -euo pipefail

D=${CEPH_RGW_DIR:-/tmp/ceph-rgw}
CONF=$D/ceph.conf
PURGE=0
case ${1:-} in
  '') ;;
  --purge) PURGE=1 ;;
  *) echo "usage: ceph-rgw-down.sh [--purge]" >&2; exit 2 ;;
esac

log() { printf '[ceph-rgw-down %s] %s\n' "$(date +%T)" "$*" >&2; }

stop_one() { # $1 = daemon name, $2 = binary expected in its command line
  local f=$D/run/$1.pid p cmd
  [ -s "$f" ] || return 0
  p=$(cat "$f")
  cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null || true)
  if [[ $cmd == *"$2"* && $cmd == *"$CONF"* ]]; then
    log "stopping $1 (pid $p)"
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do [ -d "/proc/$p" ] || break; sleep 0.2; done
    if [ -d "/proc/$p" ]; then
      log "$1 still alive after 20 s, SIGKILL"
      kill -KILL "$p" 2>/dev/null || true
      for _ in $(seq 1 20); do [ -d "/proc/$p" ] || break; sleep 0.2; done
    fi
  fi
  rm -f "$f"
}

if [ -d "$D/run" ]; then
  # gateway first, then storage, then the monitor
  stop_one client.rgw.a radosgw
  stop_one osd.0 ceph-osd
  stop_one mgr.x ceph-mgr
  stop_one mon.a ceph-mon
fi
if [ "$PURGE" = 1 ] && [ -d "$D" ]; then
  case $D in
    /|/tmp|/root|/home|"$HOME") log "refusing to purge '$D'"; exit 1 ;;
  esac
  log "purging $D"
  rm -rf "$D"
fi
log "down"
