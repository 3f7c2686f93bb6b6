"""Checks of the connection and logging values every command shares, before anything uses them.

The shared loader (`config.load`) calls `checked` on every daemon's fully
layered options, so a bad value is a one-line ConfigError
naming the option, never a traceback from botocore, logging or socket code
much later (or, in background mode, nowhere at all).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from fsgateway.daemon.config import ConfigError
from fsgateway.daemon.metrics_server import parse_address

if TYPE_CHECKING:  # only for the type: config.load imports this module, a top-level import is a cycle
    from fsgateway.daemon.config import S3Options

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# botocore's own rule for region names (it raises InvalidRegionError otherwise)
REGION = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


T = TypeVar("T", bound="S3Options")


def checked(cfg: T) -> T:
    """`cfg` once every layer is applied, checked."""
    check_common(cfg)
    return cfg


def check_endpoint(endpoint: str | None, name: str = "endpoint") -> None:
    if endpoint is None:
        return
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        hint = f" (did you mean https://{endpoint.strip()}?)" if "://" not in endpoint else ""
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {endpoint!r}{hint}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ConfigError(f"{name} {endpoint!r}: {exc}") from exc


def check_region(region: str | None, name: str = "region") -> None:
    if region is not None and not REGION.match(region):
        raise ConfigError(f"{name} {region!r} is not a region name (e.g. us-east-1)")


def check_profile(profile: str | None, name: str = "profile") -> None:
    if not profile:
        return
    import botocore.session  # imported here: loading botocore's data is slow and most configs have no profile

    known = botocore.session.Session().available_profiles
    if profile not in known:
        where = os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")
        raise ConfigError(f"{name} {profile!r} is not in {where} or the shared credentials file "
                          f"(known: {', '.join(sorted(known)) or 'none'})")


def check_file(path: str | None, name: str, must_exist: bool = True) -> None:
    """A regular file (not a directory) that can be opened; `must_exist=False`: only if it exists."""
    if not path:
        return
    p = os.path.expanduser(path)
    if os.path.isdir(p):
        raise ConfigError(f"{name} {path} is a directory, not a file")
    if not must_exist and not os.path.lexists(p):
        return
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{name} {path}: {exc.strerror}") from exc


def check_common(c: S3Options) -> None:
    """ConfigError (one line, naming the option) for the first bad value."""
    check_endpoint(c.endpoint)
    check_region(c.region)
    check_profile(c.profile)
    # A missing passwd file is the credentials reader's one-line error, when the keys are needed (the
    # shipped example config must load on a host that has none yet).
    check_file(c.passwd_file, "passwd_file", must_exist=False)
    check_file(c.ca_bundle, "ca_bundle")
    if c.log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {c.log_level!r}")
    if c.log_format not in ("text", "json"):
        raise ConfigError(f"log_format must be text or json, got {c.log_format!r}")
    try:
        parse_address(c.metrics_address)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if c.max_connections < 1:
        raise ConfigError(f"max_connections must be >= 1, got {c.max_connections}")
    for name in ("connect_timeout", "read_timeout", "retry_deadline"):
        if not getattr(c, name) > 0:
            raise ConfigError(f"{name} must be > 0 seconds, got {getattr(c, name)}")
