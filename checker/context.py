"""Loading the checker's configuration and opening what it talks to; shared by the daemon and fsgateway-fw."""

from __future__ import annotations

import argparse
import os

from fsgateway import credentials, settings
from fsgateway.store import StoreSettings

from .config import CheckerConfig, validate


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration (file < FSGATEWAY_CHECKER_<NAME> environment < these flags)")
    g.add_argument("--config", metavar="FILE", help="shared config file, sections [s3] and [checker] "
                   "(default /etc/fsgateway/fsgateway.toml if it exists)")
    g.add_argument("--bucket", help="the primary bucket (the one the mount shows)")
    g.add_argument("--endpoint", help="S3 endpoint URL")
    g.add_argument("--prefix", help="the pipeline's folder inside the bucket (default: the bucket root)")
    g.add_argument("--state-dir", help="local state: SQLite database, online key (default /var/lib/fsgateway/checker)")
    g.add_argument("--database", help="sqlite:///PATH or postgresql://USER@HOST/DB (several upload hosts)")
    g.add_argument("--set", dest="assignments", action="append", default=[], metavar="NAME=VALUE",
                   help="any other option, e.g. --set pending_deadline=300 (repeatable)")


def load_config(args: argparse.Namespace, environ: dict[str, str]) -> CheckerConfig:
    """ConfigError (one-line reason) on any mistake."""
    flags = settings.parse_assignments(args.assignments)
    for name in ("bucket", "endpoint", "prefix", "state_dir", "database"):
        value = getattr(args, name, None)
        if value is not None:
            flags[name] = value
    if flags.get("endpoint"):
        flags.setdefault("path_style", "true")
    return validate(settings.load(CheckerConfig(), "checker", environ, args.config, flags))


def store_settings(cfg: CheckerConfig) -> StoreSettings:
    keys = credentials.resolve(cfg.passwd_file, cfg.profile, cfg.bucket, dict(os.environ))
    return cfg.store_settings(keys)
