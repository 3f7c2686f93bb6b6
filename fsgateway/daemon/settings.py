"""Layered configuration of the pipeline's other daemons: defaults < TOML file < environment < flags.

The checker and syncd read the same file as the mount: `[s3]` for the
connection plus their own section (`[checker]`, `[syncd]`), flattened into one
dataclass that extends `S3Options`. Environment variables are
`FSGATEWAY_<DAEMON>_<NAME>`. Values are coerced from the field types, so a
daemon declares its options once, as dataclass fields with defaults. Pure: the
caller hands in the environment and the file text.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar, get_type_hints

from fsgateway.daemon import validation
from fsgateway.daemon.config import ConfigError, normalize, parse_bool, parse_size, read_config_file
from fsgateway.store.client import StoreSettings
from fsgateway.store.credentials import Keys

SIZE = {"size": True}  # field(metadata=SIZE): accepts 64M, 1G, ...


@dataclass(frozen=True)
class S3Options:
    """The `[s3]` section: how to reach the object store."""

    bucket: str = ""
    endpoint: str | None = None
    region: str = "us-east-1"
    path_style: bool = False
    passwd_file: str | None = None
    profile: str | None = None
    ca_bundle: str | None = None
    verify_ssl: bool = True
    max_connections: int = 16
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retry_deadline: float = 60.0
    log_level: str = "info"
    log_format: str = "text"
    metrics_address: str = field(default="off")

    def store_settings(self, keys: Keys | None, bucket: str | None = None) -> StoreSettings:
        return StoreSettings(
            bucket=bucket or self.bucket, endpoint=self.endpoint, region=self.region, path_style=self.path_style,
            keys=keys, profile=self.profile, verify=self.ca_bundle or self.verify_ssl,
            max_connections=self.max_connections, connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout, retry_deadline=self.retry_deadline,
        )


T = TypeVar("T", bound=S3Options)
_OPTIONAL: dict[object, type] = {str | None: str, int | None: int, float | None: float}


def _coerce(kind: object, is_size: bool, value: Any) -> object:
    """`value` as a `kind`; Any: raw input, whose TypeError/ValueError `apply` reports."""
    if is_size:
        return value if isinstance(value, int) and not isinstance(value, bool) else parse_size(str(value))
    if kind in _OPTIONAL:
        return None if value in (None, "", "none") else _OPTIONAL[kind](value)
    if kind is bool:
        return parse_bool(value)
    if kind in (int, float):
        return kind(value)
    if kind == tuple[str, ...]:
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        return tuple(str(i).strip() for i in items if str(i).strip())
    if isinstance(value, dict | list | bool):
        raise ValueError("expected a single value")
    return str(value)


def apply(cfg: T, values: Mapping[str, object], origin: str) -> T:
    """`cfg` with `values` applied; unknown names and bad values are a ConfigError naming `origin`."""
    by_name = {f.name: f for f in fields(cfg)}
    hints = get_type_hints(type(cfg))
    changes: dict[str, Any] = {}  # each value coerced to its field's type by _coerce
    for raw, value in values.items():
        name, value = normalize(raw, value)
        if name not in by_name:
            raise ConfigError(f"unknown option {raw!r} ({origin})")
        try:
            changes[name] = _coerce(hints[name], bool(by_name[name].metadata.get("size")), value)
        except ConfigError as exc:  # e.g. "not a size": say which option, and where it was set
            raise ConfigError(f"{name}: {exc} ({origin})") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad value for {name}: {value!r} ({origin})") from exc
    return replace(cfg, **changes)


def parse_assignments(items: list[str]) -> dict[str, object]:
    """`--set name=value` flags → {"name": "value"}."""
    out: dict[str, object] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set needs NAME=VALUE, got {item!r}")
        out[name.strip()] = value
    return out


def load(cfg: T, section: str, environ: dict[str, str], config_file: str | None, flags: dict[str, object]) -> T:
    """`cfg` (the defaults) with `[s3]` + `[section]` of the file, then FSGATEWAY_<SECTION>_*, then flags."""
    found = read_config_file(config_file, environ)
    if found:
        path, text = found
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
        for name in ("s3", section):
            table = doc.get(name, {})
            if not isinstance(table, dict):
                raise ConfigError(f"config file {path}: [{name}] must be a table")
            cfg = apply(cfg, table, f"config file {path} [{name}]")
    prefix = f"FSGATEWAY_{section.upper()}_"
    env = {k[len(prefix):].lower(): v for k, v in environ.items() if k.startswith(prefix)}
    cfg = apply(cfg, env, "environment")
    return validation.checked(apply(cfg, flags, "command line"))

