"""`fsgateway-checker`: the daemon that validates packages landing in incoming/ and publishes releases."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid

import trio

from fsgateway.daemon import commandline, lifecycle, logs, notify, private
from fsgateway.daemon.config import ConfigError
from fsgateway.daemon.identity import host_id
from fsgateway.daemon.metrics_server import serve
from fsgateway.store import feedwriter
from fsgateway.store import metrics as store_metrics
from fsgateway.store.client import StoreSettings, make_client
from fsgateway.store.credentials import CredentialsError
from fsgateway.store.feedwriter import AnnouncingStore, FeedWriter

from . import continuity, metrics, signing
from .config import CheckerConfig
from .context import add_config_arguments, load_config, store_settings
from .db import Database, DatabaseError
from .judge import Judge
from .publisher import Publisher, RepoPolicy
from .service import Checker

log = logging.getLogger("checker")

#: What /metrics serves: the checker's series, the change feed it writes, its S3 requests.
REGISTRIES = (metrics.REGISTRY, feedwriter.REGISTRY, store_metrics.REGISTRY)

DESCRIPTION = """\
Validate every firmware package that lands under incoming/<model>/<version>/ of
the bucket (manifest.json + payload), record it in the version database, and
publish accepted ones for devices: payload under releases/ (content-addressed,
immutable) and TUF metadata under metadata/. Rejected packages move to
quarantine/<model>/<version>/<id>/ with a reason.json. Packages are found by
inotify events on the mount (--set mount_dir=...) and by a periodic listing.
"""
EPILOG = """\
options ([checker] section, FSGATEWAY_CHECKER_<NAME>, or --set NAME=VALUE):
  mount_dir=DIR            the fsgateway mount of the bucket (or prefix): watched with inotify
  pending_deadline=SECONDS (900) an incomplete package is rejected after this
  reconcile_interval=SECONDS (30) full listing of incoming/
  online_key=FILE          Ed25519 key signing targets/snapshot/timestamp (state_dir/online.key)
  timestamp_expiry=SECONDS (86400)  targets_expiry=SECONDS (2592000)  timestamp_max_age=SECONDS (60)
  concurrency=N (4)  metrics_address=HOST:PORT (127.0.0.1:9878) or off
  feed=true|false (true)   announce the checker's writes in the change feed (.fsgateway/feed/) for syncd
  log_level=debug|info|warning|error  log_format=text|json
  [s3] keys: endpoint, region, path_style, passwd_file, profile, ca_bundle, verify_ssl, ...
First time: fsgateway-fw repo init (root of trust, bucket policy), fsgateway-fw model add,
fsgateway-fw key add. Exit status 1 with a one-line reason when something is missing.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fsgateway-checker", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", default="run", choices=["run"], help="run the daemon (default)")
    p.add_argument("--mount-dir", help="the mount to watch (same as --set mount_dir=DIR)")
    add_config_arguments(p)
    commandline.add_debug(p)
    commandline.add_version(p, "fsgateway-checker")
    return p


def fail(message: str) -> int:
    return lifecycle.fail("fsgateway-checker", message)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.mount_dir:
        args.assignments.append(f"mount_dir={args.mount_dir}")
    if args.debug:
        args.assignments.append("log_level=debug")
    try:
        cfg = load_config(args, dict(os.environ))
        settings = store_settings(cfg)
    except (ConfigError, CredentialsError) as exc:
        return fail(str(exc))
    os.umask(private.UMASK)  # state, databases, logs: owner-only
    logs.setup(cfg.log_level, cfg.log_format)
    commandline.log_configuration(cfg)
    if cfg.mount_dir and not os.path.ismount(cfg.mount_dir):
        return fail(f"mount_dir {cfg.mount_dir} is not a mount point (start the fsgateway mount first)")
    try:
        key = signing.OnlineKey(cfg.online_key_path)
    except signing.KeyFileError as exc:
        return fail(f"{exc} (a new repository: fsgateway-fw repo init; an existing one: restore the key from its "
                    "backup, or make a new one with the root key: fsgateway-fw repo rotate-online-key)")
    problem = lifecycle.check_bucket(settings) or lifecycle.check_metrics_port(cfg.metrics_address)
    if problem:
        return fail(problem)
    try:
        db = Database(cfg.database_url)
        applied = db.migrate()
    except DatabaseError as exc:
        return fail(str(exc))
    if applied:
        log.info("database schema migrated (%d step(s))", applied)
    problem = continuity.check(make_client(settings), cfg.bucket, cfg.prefix, db)
    if problem:
        db.close()
        return fail(problem)
    metrics.PENDING_DEADLINE.set(cfg.pending_deadline)
    metrics.TIMESTAMP_LIFETIME.set(cfg.timestamp_expiry)
    serve(cfg.metrics_address, *REGISTRIES)
    try:
        trio.run(_serve, cfg, settings, db, key)
    except Exception as exc:  # the traceback for the report, the reason in one line
        log.error("stopped", exc_info=True)
        return fail(f"stopped: {lifecycle.one_line(exc)}")
    finally:
        db.close()
    return 0


async def _serve(cfg: CheckerConfig, settings: StoreSettings, db: Database, key: signing.OnlineKey) -> None:
    store = AnnouncingStore(settings)
    host = host_id(cfg.bucket, cfg.prefix, cfg.mount_dir)
    writer = FeedWriter(store, host, uuid.uuid4().hex[:12])
    store.feed = writer if cfg.feed else None
    policy = RepoPolicy(cfg.targets_expiry, cfg.timestamp_expiry, cfg.timestamp_max_age)
    checker = Checker(store, db, Judge(store, db, cfg.prefix, cfg.pending_deadline),
                      Publisher(store, db, cfg.prefix, key, policy, host), cfg.prefix, host,
                      cfg.reconcile_interval, cfg.concurrency)

    async with trio.open_nursery() as nursery:
        async def stop(signame: str) -> None:
            log.info("%s received: stopping (open verdicts are finished on the next start)", signame)
            nursery.cancel_scope.cancel()

        nursery.start_soon(lifecycle.stop_on_signal, stop)
        nursery.start_soon(writer.run)
        await nursery.start(checker.run, cfg.mount_dir)
        nursery.start_soon(lifecycle.watchdog)
        where = f"{cfg.bucket}/{cfg.prefix}incoming/"
        notify.notify(f"READY=1\nSTATUS=checking {where}" + (f" (watching {cfg.mount_dir})" if cfg.mount_dir else ""))
        log.info("checking %s%s", where, f", watching {cfg.mount_dir}" if cfg.mount_dir else "")


if __name__ == "__main__":
    sys.exit(main())
