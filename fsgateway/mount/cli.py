"""`fsgateway BUCKET[:/PREFIX] MOUNTPOINT [-f] [-o opt,...]` — the s3fs-style entry point.

Everything that can be checked before mounting is checked before mounting
(options, credentials file mode, endpoint, bucket, metrics port), so a
mistake is a one-line error and a non-zero exit on the terminal — also from
`mount -t fuse.fsgateway`, which waits for the daemon to report readiness.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from dataclasses import replace

from fsgateway.daemon import commandline, config, lifecycle, logs, private
from fsgateway.daemon.config import ConfigError
from fsgateway.daemon.metrics_server import serve
from fsgateway.mount import deadmount, metrics, options
from fsgateway.store import credentials, feedwriter
from fsgateway.store import metrics as store_metrics

log = logging.getLogger("fsgateway")

#: What /metrics serves: the mount's series, the change feed it writes, its S3 requests.
REGISTRIES = (metrics.REGISTRY, feedwriter.REGISTRY, store_metrics.REGISTRY)

EPILOG = """\
options (-o name=value,flag,...; also keys of [s3]/[mount] in the config file,
and FSGATEWAY_<NAME> environment variables; -o wins over environment over file):
  url=URL / endpoint=URL   S3 endpoint (default: AWS)      region=NAME
  use_path_request_style   path-style requests (needed by most non-AWS servers)
  passwd_file=FILE         ACCESS:SECRET (or BUCKET:ACCESS:SECRET); must be mode 0600
  profile=NAME             AWS shared-config profile (else boto3's usual chain)
  ca_bundle=FILE | no_verify_ssl    TLS trust
  allow_other  default_permissions  ro  uid=N  gid=N  umask=OCTAL
  nonempty                 mount over a directory that has files (they are hidden while mounted)
  cache_dir=DIR (/var/cache/fsgateway)  cache_size=SIZE (10G)  staging for random writes, spool of parts
  stat_ttl=SECONDS (5)     how long attributes and listings are trusted
  multipart_size=SIZE (8M)  parallel=N (8)  write_buffer_size=SIZE (8M)  read_ahead=SIZE (12M)
  kernel_read_ahead=SIZE (4M)  the kernel's read-ahead for the mount (needs root; 0 keeps 128K)
  retry_deadline=SECONDS (60)  after this an operation fails with EIO
  feed=on|off (on)         announce every change in the change feed (.fsgateway/feed/), read by syncd
  feed_flush=SECONDS (1)   announcements wait in an fsync'd log in cache_dir, stored in batches (0: one PUT each)
  feed_wal_size=SIZE (64M) that log's bound; when full, close() waits for its own journal PUT
  log_level=debug|info|warning|error   log_format=text|json
  metrics_address=HOST:PORT (127.0.0.1:9877) or off
Generic mount options (_netdev, nofail, rw, nosuid, ...) are accepted and ignored.

fstab:  mybucket /srv/firmware fuse.fsgateway _netdev,allow_other,url=https://s3.example.net 0 0
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fsgateway",
        usage="fsgateway BUCKET[:/PREFIX] MOUNTPOINT [-f] [-o opt[,opt...]] [--config FILE]",
        description="Mount an S3 bucket as a directory. close() and fsync() return only when the object "
        "is complete in the bucket; files are stored in the s3fs-fuse format.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", metavar="BUCKET[:/PREFIX]")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.add_argument("-o", dest="options", action="append", default=[], metavar="OPTIONS")
    p.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground (for systemd)")
    p.add_argument("-d", "--debug", action="store_true", help="foreground with log_level=debug")
    p.add_argument("-s", action="store_true", help=argparse.SUPPRESS)  # single-threaded: meaningless here
    p.add_argument("--config", metavar="FILE", help=f"shared config file (default {config.DEFAULT_CONFIG_FILE})")
    commandline.add_version(p, "fsgateway")
    return p


def fail(message: str) -> int:
    return lifecycle.fail("fsgateway", message)


def daemonize() -> int:
    """Fork; the parent waits for the child's word and exits with it. Returns the pipe's write end."""
    r, w = os.pipe()
    if os.fork():
        os.close(w)
        with os.fdopen(r, "rb") as pipe:
            word = pipe.read().decode(errors="replace").strip()
        if word == "ok":
            os._exit(0)
        print(f"fsgateway: {word or 'mount failed (see syslog)'}", file=sys.stderr)
        os._exit(1)
    os.close(r)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    return w


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = options.load(args.source, os.path.abspath(args.mountpoint), args.options, dict(os.environ),
                          args.config, foreground=args.foreground or args.debug)
        if args.debug:
            cfg = config.apply(cfg, {"log_level": "debug"}, "-d")
    except ConfigError as exc:
        return fail(str(exc))
    os.umask(private.UMASK)  # state, databases, logs: owner-only
    logs.setup(cfg.log_level, cfg.log_format)
    commandline.log_configuration(cfg)
    dead = deadmount.take_over(cfg.mountpoint)
    if dead:
        return fail(dead)
    if not os.path.isdir(cfg.mountpoint):
        return fail(f"mountpoint {cfg.mountpoint} is not a directory")
    if os.path.ismount(cfg.mountpoint):
        return fail(f"{cfg.mountpoint} is already a mount point")
    if not cfg.nonempty and os.listdir(cfg.mountpoint):
        return fail(f"mountpoint {cfg.mountpoint} is not empty: the mount would hide its files "
                    "(empty it, or add -o nonempty)")
    problem = check_cache_dir(cfg.cache_dir)
    if problem:
        return fail(problem)
    try:
        keys = credentials.resolve(cfg.passwd_file, cfg.profile, cfg.bucket, dict(os.environ))
    except credentials.CredentialsError as exc:
        return fail(str(exc))
    settings = replace(cfg.store_settings(keys), sign_payloads=False)  # every body of the mount has its MD5
    problem = lifecycle.check_bucket(settings) or lifecycle.check_metrics_port(cfg.metrics_address)
    if problem:
        return fail(problem)
    ready_fd = None if cfg.foreground else daemonize()
    if ready_fd is not None:
        logs.setup(cfg.log_level, cfg.log_format, daemon_log_file=os.path.join(cfg.cache_dir, "fsgateway.log"))

    pending = [ready_fd] if ready_fd is not None else []  # emptied once the parent has its answer
    served: list[bool] = []  # not empty once the mount reported ready

    def on_ready() -> None:
        served.append(True)
        if pending:
            fd = pending.pop()
            os.write(fd, b"ok")
            os.close(fd)

    from fsgateway.mount import session  # pyfuse3 imported only when mounting, so --help works anywhere
    try:
        serve(cfg.metrics_address, *REGISTRIES)
        session.run(cfg, settings, on_ready)
    except Exception as exc:  # whatever it is, the terminal that started a background mount must hear it
        if not served:  # -d: the traceback; the reason is the one line below
            log.debug("mount failed", exc_info=True)
            reason = f"cannot mount at {cfg.mountpoint}: {lifecycle.one_line(exc)}"
        else:  # it served, then failed: a bug or the machine's, the traceback is for the report
            log.error("the mount at %s stopped", cfg.mountpoint, exc_info=True)
            reason = f"the mount at {cfg.mountpoint} stopped: {lifecycle.one_line(exc)}"
        if pending:
            with contextlib.suppress(OSError):
                os.write(pending.pop(), reason.encode())
        return fail(reason)
    return 0


def check_cache_dir(path: str) -> str | None:
    """cache_dir exists (created 0700 if missing) and is writable; else the one-line reason."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        return f"cache_dir {path}: {exc.strerror}"
    if not os.path.isdir(path) or not os.access(path, os.W_OK | os.X_OK):
        return f"cache_dir {path} is not a writable directory"
    return None


if __name__ == "__main__":
    sys.exit(main())
