"""Loading the checker's configuration and opening what it talks to; shared by the daemon and fsgateway-fw."""

from __future__ import annotations

import argparse
import os
from typing import Any

from fsgateway.daemon import config
from fsgateway.store import credentials
from fsgateway.store.client import StoreSettings

from .config import CheckerConfig, validate


def add_config_arguments(p: argparse.ArgumentParser, sub_command: bool = False) -> None:
    """The configuration flags; `sub_command`: a second copy on a sub-command, so they may follow it too.

    Argparse lets a sub-command's defaults overwrite what was given before it,
    so that copy has no defaults, and its `--set`s are kept apart and added
    after the others by `load_config`.
    """
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if sub_command else {}
    g = p.add_argument_group("configuration (file < FSGATEWAY_CHECKER_<NAME> environment < these flags)")
    g.add_argument("--config", metavar="FILE", help="shared config file, sections [s3] and [checker] "
                   "(default /etc/fsgateway/fsgateway.toml if it exists)", **default)
    g.add_argument("--bucket", help="the primary bucket (the one the mount shows)", **default)
    g.add_argument("--endpoint", help="S3 endpoint URL", **default)
    g.add_argument("--prefix", help="the pipeline's folder inside the bucket (default: the bucket root)", **default)
    g.add_argument("--state-dir", help="local state: SQLite database, online key (default /var/lib/fsgateway/checker)",
                   **default)
    g.add_argument("--database", help="sqlite:///PATH or postgresql://USER@HOST/DB (several upload hosts)", **default)
    g.add_argument("--set", dest="late_assignments" if sub_command else "assignments", action="append",
                   default=[], metavar="NAME=VALUE",
                   help="any other option, e.g. --set pending_deadline=300 (repeatable)")


def load_config(args: argparse.Namespace, environ: dict[str, str], need_bucket: bool = True) -> CheckerConfig:
    """ConfigError (one-line reason) on any mistake; `need_bucket=False` for commands that use only the database."""
    flags = config.parse_assignments(args.assignments + getattr(args, "late_assignments", []))
    for name in ("bucket", "endpoint", "prefix", "state_dir", "database"):
        value = getattr(args, name, None)
        if value is not None:
            flags[name] = value
    if flags.get("endpoint"):
        flags.setdefault("path_style", "true")
    return validate(config.load(CheckerConfig(), "checker", environ, getattr(args, "config", None), flags),
                    need_bucket)


def store_settings(cfg: CheckerConfig) -> StoreSettings:
    keys = credentials.resolve(cfg.passwd_file, cfg.profile, cfg.bucket, dict(os.environ))
    return cfg.store_settings(keys)
