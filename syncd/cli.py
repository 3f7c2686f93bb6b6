"""`fsgateway-syncd run|once [--dry-run]`: configuration, preflight checks, then the service.

Mistakes are found before anything starts: a bad option, a passwd file
others can read, wrong keys, an unreachable endpoint, a missing bucket, a
taken metrics port or a state_dir in use are each a one-line reason and exit 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import trio

from fsgateway.daemon import commandline, config, lifecycle, logs, private, progress
from fsgateway.daemon.config import DEFAULT_CONFIG_FILE, ConfigError
from fsgateway.daemon.metrics_server import serve
from fsgateway.store import credentials
from fsgateway.store import metrics as store_metrics
from fsgateway.store.client import ObjectStore

from . import metrics
from .options import DEFAULT_STATE_DIR, SyncdOptions
from .service import Service
from .state import State, StateError

PROG = "fsgateway-syncd"
log = logging.getLogger("syncd")

#: What /metrics serves: syncd's series and its S3 requests (both buckets, by role).
REGISTRIES = (metrics.REGISTRY, store_metrics.REGISTRY)

EPILOG = f"""\
configuration: the shared file ({DEFAULT_CONFIG_FILE}, or --config, or $FSGATEWAY_CONFIG),
sections [s3] (the primary bucket's connection) and [syncd]; then FSGATEWAY_SYNCD_<NAME>
environment variables; then --set NAME=VALUE flags (each wins over the one before).
  [s3]     bucket  endpoint  region  path_style  passwd_file  profile  ca_bundle  verify_ssl
           max_connections (32)  retry_deadline (60)  log_level (info)  log_format (text|json)
  [syncd]  backup_bucket (required)
           backup_endpoint  backup_region  backup_passwd_file  backup_profile  backup_ca_bundle
                            (default: the primary's; same endpoint and keys -> server-side copies)
           state_dir ({DEFAULT_STATE_DIR})   cursor, pending keys, copies made (SQLite, 0700)
           delete = keep | mirror (keep)     mirror: deletes follow the primary's, guarded by
           max_delete (100)                  at most this many per run, none after an error
           include, exclude                  lists of globs ("*.bin") or prefixes ("incoming/")
           concurrency (8)  bandwidth_limit (0 = none, e.g. 50M = 50 MiB/s)  part_size (16M)
           copy_buffers (8)                  parts in memory for streamed copies
           reconcile_interval (3600)  feed_poll_interval (1)  feed_lookback (300)
           feed_retention (604800; 0 keeps journal objects)  retry_max_interval (300)
           metrics_address (127.0.0.1:9879 or off)

example:  {PROG} run --set bucket=firmware --set backup_bucket=firmware-backup --set endpoint=http://127.0.0.1:7480
"""


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help=f"shared config file (default {DEFAULT_CONFIG_FILE})")
    common.add_argument("--set", dest="assignments", action="append", default=[], metavar="NAME=VALUE",
                        help="set an option (repeatable); wins over environment and file")
    commandline.add_debug(common)
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Mirror the primary bucket to a backup bucket: changes announced in the gateway's change "
        "feed within seconds (O(changes) requests), plus a periodic full reconcile that catches anything "
        "written by other tools. Kill it at any time; a restart continues where it stopped.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commandline.add_version(p, PROG)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("run", parents=[common], help="the daemon: follow the feed, reconcile periodically (systemd: "
                   "Type=notify)", description="Follow the change feed and reconcile every reconcile_interval "
                   "until SIGTERM. Serves /metrics on metrics_address.")
    once = sub.add_parser("once", parents=[common], help="one full reconcile, then exit (cron, first seeding)",
                          description="One full reconcile of the backup against the primary. Exit status 0 when "
                          "everything is in sync, 1 when an object could not be replicated.")
    once.add_argument("--dry-run", action="store_true", help="print what would be copied or deleted; change nothing")
    shown = once.add_mutually_exclusive_group()
    shown.add_argument("-P", "--progress", dest="progress", action="store_true", default=None,
                       help="show progress on stderr (default: when stderr is a terminal, not under systemd)")
    shown.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress")
    return p


def fail(message: str) -> int:
    return lifecycle.fail(PROG, message)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    environ = dict(os.environ)
    if args.debug:
        args.assignments.append("log_level=debug")
    try:
        opts = config.load(SyncdOptions(), "syncd", environ, args.config,
                           config.parse_assignments(args.assignments)).validate()
    except ConfigError as exc:
        return fail(str(exc))
    os.umask(private.UMASK)  # state, databases, logs: owner-only
    logs.setup(opts.log_level, opts.log_format)
    commandline.log_configuration(opts)
    try:
        keys = credentials.resolve(opts.passwd_file, opts.profile, opts.bucket, environ)
        backup_keys = (credentials.resolve(opts.backup_passwd_file, opts.backup_profile, opts.backup_bucket, environ)
                       if opts.backup_has_own_credentials() else keys)
    except credentials.CredentialsError as exc:
        return fail(str(exc))
    primary_settings = opts.store_settings(keys)
    backup_settings = opts.backup_store_settings(backup_keys)
    dry_run = args.command == "once" and args.dry_run
    problem = (lifecycle.check_bucket(primary_settings) or lifecycle.check_bucket(backup_settings)
               or (lifecycle.check_metrics_port(opts.metrics_address) if args.command == "run" else None))
    if problem:
        return fail(problem)
    try:
        state = State(opts.state_dir, read_only=dry_run)
    except (StateError, OSError) as exc:
        return fail(f"state_dir {opts.state_dir}: {exc}" if isinstance(exc, OSError) else str(exc))
    server_side = (backup_settings.endpoint == primary_settings.endpoint and backup_keys == keys
                   and backup_settings.profile == primary_settings.profile)
    service = Service(opts, ObjectStore(primary_settings, role="primary"),
                      ObjectStore(backup_settings, role="backup"), state, server_side)
    try:
        if args.command == "once":
            return trio.run(service.once, dry_run, progress.wanted(args.progress, sys.stderr))
        serve(opts.metrics_address, *REGISTRIES)
        trio.run(service.run)
        return 0
    except Exception as exc:  # the traceback for the report, the reason in one line
        log.error("stopped", exc_info=True)
        return fail(f"stopped: {lifecycle.one_line(exc)}")
    finally:
        state.close()


if __name__ == "__main__":
    sys.exit(main())
