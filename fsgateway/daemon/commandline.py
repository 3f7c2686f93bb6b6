"""What every command's argument parser has: `--version` from the package metadata, `-d` for debug logs.

The version is written once, in the package metadata (setup.cfg); nothing
else spells it. `-d` sets log_level=debug, which logs the effective
configuration (passwords in URLs masked) and every S3 request with its
outcome and duration.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
from importlib import metadata

log = logging.getLogger("fsgateway.config")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+):[^@/\s]+@")


def version(prog: str) -> str:
    try:
        return f"{prog} {metadata.version('fsgateway')}"
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return f"{prog} (not installed)"


def add_version(p: argparse.ArgumentParser, prog: str) -> None:
    p.add_argument("--version", action="version", version=version(prog))


def add_debug(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--debug", action="store_true",
                   help="log_level=debug: the effective configuration and every S3 request")


def log_configuration(cfg: object) -> None:
    """At debug level: every option's effective value (URL passwords masked; keys are never in options)."""
    if log.isEnabledFor(logging.DEBUG) and dataclasses.is_dataclass(cfg):
        for f in dataclasses.fields(cfg):
            log.debug("option %s = %s", f.name, _URL_PASSWORD.sub(r"\1:***@", repr(getattr(cfg, f.name))))
