#!/usr/bin/env bash
# ceph-rgw-up.sh - run a minimal single-node Ceph cluster (1 mon, 1 OSD,
# optionally a mgr) and a RADOS Gateway (S3 API, beast frontend) on 127.0.0.1,
# in the background, for tests and benchmarks.  NOT for production.
#
# Idempotent: if the cluster is already up it only prints the environment; if
# it was stopped it restarts the daemons on the existing data; otherwise it
# builds a fresh cluster (about 20 s).  Stop it with ceph-rgw-down.sh
# (add --purge to delete the data).
#
# Usage: ceph-rgw-up.sh            start (or reuse) the cluster
#        ceph-rgw-up.sh --fresh    wipe $CEPH_RGW_DIR and build a new cluster
#        ceph-rgw-up.sh --status   exit 0 if mon, osd and radosgw of
#                                  $CEPH_RGW_DIR are running and S3 answers
#
# Output (stdout, also kept in $CEPH_RGW_DIR/env): `export` lines for
#   S3_ENDPOINT_URL, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#   AWS_DEFAULT_REGION, CEPH_CONF (+ S3_TLS_ENDPOINT_URL, S3_TLS_CA_BUNDLE)
# so that a script can do:   eval "$(scripts/ceph-rgw-up.sh)"
# Progress messages go to stderr.
#
# Environment tunables (defaults in brackets):
#   CEPH_RGW_DIR         state directory: data, conf, logs, pid files  [/tmp/ceph-rgw]
#   CEPH_RGW_PORT        S3 (http) port on 127.0.0.1                   [7480]
#   CEPH_RGW_SSL_PORT    if set, also serve https on this port with a
#                        self-signed certificate ($CEPH_RGW_DIR/rgw.crt),
#                        exported as S3_TLS_ENDPOINT_URL / S3_TLS_CA_BUNDLE
#   CEPH_MON_PORT        mon msgr v2 port; v1 uses port+1              [3300]
#   CEPH_OBJECTSTORE     bluestore | memstore                          [bluestore]
#   CEPH_BLOCK_SIZE      bluestore block file size in bytes (sparse)   [32 GiB]
#   CEPH_RGW_GC_WAIT     seconds before RGW reclaims deleted data      [60]
#                        (benchmarks: 7200, so reclaiming does not run during a measurement)
#   CEPH_MEMSTORE_BYTES  memstore capacity in bytes                    [3 GiB]
#   CEPH_WITH_MGR        1 = also run ceph-mgr (~300 MiB more memory;
#                        S3 works without it, `ceph -s` warns)         [0]
#   CEPH_RGW_ACCESS_KEY  S3 access key of the test user                [ci-access-key]
#   CEPH_RGW_SECRET_KEY  S3 secret key of the test user                [ci-secret-key-0123456789]
#   CEPH_RGW_INSTALL     1 = apt-get install missing packages          [1]
#   CEPH_RGW_TIMEOUT     seconds to wait for each step                 [120]
set -euo pipefail

D=${CEPH_RGW_DIR:-/tmp/ceph-rgw}
RGW_PORT=${CEPH_RGW_PORT:-7480}
SSL_PORT=${CEPH_RGW_SSL_PORT:-}
MON_PORT=${CEPH_MON_PORT:-3300}
MON_PORT_V1=$((MON_PORT + 1))
OBJECTSTORE=${CEPH_OBJECTSTORE:-bluestore}
BLOCK_SIZE=${CEPH_BLOCK_SIZE:-34359738368}
GC_WAIT=${CEPH_RGW_GC_WAIT:-60}
MEMSTORE_BYTES=${CEPH_MEMSTORE_BYTES:-3221225472}
WITH_MGR=${CEPH_WITH_MGR:-0}
ACCESS_KEY=${CEPH_RGW_ACCESS_KEY:-ci-access-key}
SECRET_KEY=${CEPH_RGW_SECRET_KEY:-ci-secret-key-0123456789}
INSTALL=${CEPH_RGW_INSTALL:-1}
TIMEOUT=${CEPH_RGW_TIMEOUT:-120}
CONF=$D/ceph.conf
ENDPOINT=http://127.0.0.1:$RGW_PORT
TLS_ENDPOINT=https://127.0.0.1:$SSL_PORT
MODE=${1:-}

log() { printf '[ceph-rgw-up %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

case $MODE in
  ''|--fresh|--status) ;;
  *) die "unknown argument '$MODE' (usage: ceph-rgw-up.sh [--fresh|--status])" ;;
esac

# ---------------------------------------------------------------- helpers
C() { timeout 30 ceph -c "$CONF" --connect-timeout 10 "$@"; }

# binary that runs each daemon
daemon_bin() {
  case $1 in
    mon.a) echo ceph-mon ;; mgr.x) echo ceph-mgr ;; osd.0) echo ceph-osd ;; client.rgw.a) echo radosgw ;;
  esac
}

# print the pid of daemon $1 (mon.a, mgr.x, osd.0, client.rgw.a) if its pid
# file names a live process of the right binary started with our ceph.conf
live_pid() {
  local f=$D/run/$1.pid p cmd
  [ -s "$f" ] || return 1
  p=$(cat "$f")
  [ -r "/proc/$p/cmdline" ] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$(daemon_bin "$1")"* && $cmd == *"$CONF"* ]] || return 1
  echo "$p"
}

stop_daemon() { # $1 = daemon name; SIGTERM, up to 20 s, then SIGKILL
  local p
  p=$(live_pid "$1") || return 0
  log "stopping $1 (pid $p)"
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 100); do [ -d "/proc/$p" ] || break; sleep 0.2; done
  if [ -d "/proc/$p" ]; then kill -KILL "$p" 2>/dev/null || true; sleep 0.5; fi
  rm -f "$D/run/$1.pid"
}

wait_for() { # $1 = description, rest = command; retried until success or TIMEOUT
  local what=$1; shift
  local t0=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - t0 > TIMEOUT )); then die "timed out waiting for $what (logs in $D/log)"; fi
    sleep 0.5
  done
}

http_ok() { # $1 = url, rest = curl options; true on a 2xx/4xx answer
  local url=$1; shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" | grep -q '^[24]'
}
rgw_answers() { http_ok "$ENDPOINT/"; }
rgw_tls_answers() { [ -z "$SSL_PORT" ] || http_ok "$TLS_ENDPOINT/" --cacert "$D/rgw.crt"; }
osd_up() { C osd dump 2>/dev/null | grep -Eq '^osd\.0 up +in'; }
daemons_up() {
  live_pid mon.a >/dev/null && live_pid osd.0 >/dev/null && live_pid client.rgw.a >/dev/null
}

emit_env() {
  {
    echo "export S3_ENDPOINT_URL=$ENDPOINT"
    echo "export AWS_ENDPOINT_URL=$ENDPOINT"
    echo "export AWS_ACCESS_KEY_ID=$ACCESS_KEY"
    echo "export AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
    echo "export AWS_DEFAULT_REGION=us-east-1"
    echo "export CEPH_CONF=$CONF"
    if [ -n "$SSL_PORT" ]; then
      echo "export S3_TLS_ENDPOINT_URL=$TLS_ENDPOINT"
      echo "export S3_TLS_CA_BUNDLE=$D/rgw.crt"
    fi
  } >"$D/env"
  cat "$D/env"
}

# Daemons fork into the background themselves and write $D/run/<name>.pid.
# 9>&- : they must not inherit the lock file descriptor.
start_mon() { live_pid mon.a >/dev/null || { log "starting mon.a"; ceph-mon -c "$CONF" -i a 9>&-; }; }
start_mgr() {
  [ "$WITH_MGR" = 1 ] || return 0
  live_pid mgr.x >/dev/null || { log "starting mgr.x"; mkdir -p "$D/mgr/ceph-x"; ceph-mgr -c "$CONF" -i x 9>&-; }
}
start_osd() { live_pid osd.0 >/dev/null || { log "starting osd.0"; ceph-osd -c "$CONF" -i 0 9>&-; }; }
start_rgw() {
  live_pid client.rgw.a >/dev/null && return 0
  log "starting radosgw on $ENDPOINT${SSL_PORT:+ and $TLS_ENDPOINT}"
  mkdir -p "$D/rgw/ceph-rgw.a"
  radosgw -c "$CONF" -n client.rgw.a 9>&-
}

write_conf() { # $1 = fsid
  local frontends="beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1"
  if [ -n "$SSL_PORT" ]; then
    [ -s "$D/rgw.crt" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=127.0.0.1 \
      -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$D/rgw.key" -out "$D/rgw.crt" 2>/dev/null \
      || die "openssl could not create the TLS certificate"
    frontends+=" ssl_endpoint=127.0.0.1:$SSL_PORT ssl_certificate=$D/rgw.crt ssl_private_key=$D/rgw.key"
  fi
  cat >"$CONF" <<EOF
# generated by ceph-rgw-up.sh - single node, loopback only, NOT for production
[global]
fsid = $1
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_PORT_V1]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
# with auth=none only the crc wire mode works; radosgw would default to
# 'secure' towards the mon and then hang for 300 s (EACCES, -13)
ms mon client mode = crc secure
ms client mode = crc secure
client mount timeout = 60
run dir = $D/run
pid file = $D/run/\$name.pid
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
crash dir = $D/crash
mon data = $D/mon/ceph-\$id
osd data = $D/osd/ceph-\$id
mgr data = $D/mgr/ceph-\$id
rgw data = $D/rgw/ceph-\$id
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 2
mon data avail crit = 1
osd objectstore = $OBJECTSTORE
bluestore block create = true
bluestore block size = $BLOCK_SIZE
bluestore fsck on mount = false
memstore device bytes = $MEMSTORE_BYTES
osd memory target = 1073741824
osd op num shards = 2
osd op num threads per shard = 2
mgr initial modules = iostat
log to stderr = false
err to stderr = false

[client.rgw.a]
# tcp_nodelay: without it every GET waits ~40 ms (Nagle + delayed ACK)
rgw frontends = $frontends
rgw thread pool size = 128
rgw enable ops log = false
rgw enable usage log = false
# Deleted objects' data is reclaimed by RGW's garbage collector, by default only
# after 2 hours; tests and benchmarks delete GiBs quickly, and a full OSD makes
# RGW accept requests and never answer them.
rgw gc obj min wait = $GC_WAIT
rgw gc processor period = $GC_WAIT
rgw gc processor max time = 60
EOF
}

# ---------------------------------------------------------------- status only
if [ "$MODE" = --status ]; then
  if [ -f "$D/ready" ] && daemons_up && rgw_answers; then log "up ($ENDPOINT, $D)"; exit 0; fi
  log "not running ($D)"
  exit 1
fi

# ---------------------------------------------------------------- install
need_pkgs=()
for b in ceph-mon:ceph-mon ceph-osd:ceph-osd monmaptool:ceph-base radosgw:radosgw \
         radosgw-admin:radosgw ceph:ceph-common curl:curl; do
  command -v "${b%%:*}" >/dev/null 2>&1 || need_pkgs+=("${b#*:}")
done
if [ "$WITH_MGR" = 1 ] && ! command -v ceph-mgr >/dev/null 2>&1; then need_pkgs+=(ceph-mgr); fi
if [ -n "$SSL_PORT" ] && ! command -v openssl >/dev/null 2>&1; then need_pkgs+=(openssl); fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  mapfile -t need_pkgs < <(printf '%s\n' "${need_pkgs[@]}" | sort -u)
  [ "$INSTALL" = 1 ] || die "missing packages: ${need_pkgs[*]} (install them or set CEPH_RGW_INSTALL=1)"
  log "installing ${need_pkgs[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 </dev/null
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2 </dev/null
fi

mkdir -p "$D"
# one invocation at a time per state directory
exec 9>"$D/.lock"
flock -w "$TIMEOUT" 9 || die "another ceph-rgw-up.sh holds $D/.lock"

# ---------------------------------------------------------------- already up?
if [ "$MODE" = --fresh ]; then rm -f "$D/ready"; fi
if [ -f "$D/ready" ] && daemons_up && rgw_answers && rgw_tls_answers; then
  log "already running ($ENDPOINT)"
  emit_env
  exit 0
fi

t_start=$SECONDS
if [ -f "$D/ready" ] && [ "$OBJECTSTORE" != memstore ]; then
  # ------------------------------------------------------------ restart on existing data
  log "(re)starting daemons on existing data in $D"
  old_conf=$(cat "$CONF" 2>/dev/null || true)
  write_conf "$(cat "$D/fsid")"   # regenerated so that the tunables above apply
  # a running radosgw keeps its old frontends (e.g. no TLS port): restart it
  if [ "$old_conf" != "$(cat "$CONF")" ]; then stop_daemon client.rgw.a; fi
  start_mon
  wait_for "mon quorum" C mon stat
  start_mgr
  start_osd
  wait_for "osd.0 up" osd_up
  start_rgw
  wait_for "radosgw on $ENDPOINT" rgw_answers
  wait_for "radosgw on $TLS_ENDPOINT" rgw_tls_answers
else
  # ------------------------------------------------------------ fresh cluster
  if [ -d "$D/run" ]; then
    for n in client.rgw.a osd.0 mgr.x mon.a; do stop_daemon "$n"; done
  fi
  find "$D" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
  mkdir -p "$D"/{run,log,crash,mon/ceph-a,osd/ceph-0,mgr/ceph-x,rgw/ceph-rgw.a}
  fsid=$(cat /proc/sys/kernel/random/uuid)
  echo "$fsid" >"$D/fsid"
  write_conf "$fsid"

  log "creating mon.a (fsid $fsid)"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_PORT_V1]" \
    "$D/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$D/monmap" >&2
  start_mon
  wait_for "mon quorum" C mon stat
  start_mgr

  log "creating osd.0 ($OBJECTSTORE)"
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  id=$(C osd new "$osd_uuid")
  [ "$id" = 0 ] || die "expected osd id 0, got '$id'"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$D/log/osd-mkfs.out" 2>&1 \
    || { cat "$D/log/osd-mkfs.out" >&2; die "ceph-osd --mkfs failed"; }
  start_osd
  wait_for "osd.0 up" osd_up

  start_rgw
  wait_for "radosgw on $ENDPOINT" rgw_answers
  wait_for "radosgw on $TLS_ENDPOINT" rgw_tls_answers
  log "creating S3 user 'ci'"
  radosgw-admin -c "$CONF" -n client.admin user create --uid=ci --display-name="CI user" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >"$D/user.json" 2>"$D/log/user-create.err" \
    || { cat "$D/log/user-create.err" >&2; die "radosgw-admin user create failed"; }
  touch "$D/ready"
fi
log "up after $((SECONDS - t_start)) s: $ENDPOINT${SSL_PORT:+ $TLS_ENDPOINT} (logs: $D/log, conf: $CONF)"
emit_env
