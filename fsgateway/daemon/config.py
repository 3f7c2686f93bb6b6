"""The one layered configuration loader of every daemon: defaults < TOML file < environment < flags.

Every daemon reads the same file: `[s3]` (how to reach the object store, plus
logging and metrics, the same for all) and its own section (`[mount]`,
`[checker]`, `[syncd]`), flattened into one frozen dataclass that extends
`S3Options`. A daemon declares its options once, as dataclass fields with
defaults; values are coerced from the field types (`metadata=SIZE` for
`64M`-style sizes, `metadata={"parse": fn}` for anything else). Pure: the
caller hands in the environment and the file name.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar, get_type_hints

from fsgateway.store.client import StoreSettings
from fsgateway.store.credentials import Keys

DEFAULT_CONFIG_FILE = "/etc/fsgateway/fsgateway.toml"
CONFIG_VARIABLE = "FSGATEWAY_CONFIG"
#: Environment prefixes of the daemons with a prefix of their own; the mount's `FSGATEWAY_` leaves them alone.
DAEMON_ENV_PREFIXES = ("FSGATEWAY_CHECKER_", "FSGATEWAY_SYNCD_")

#: s3fs spellings of `[s3]` options, accepted by every daemon.
S3_ALIASES = {"url": "endpoint", "use_path_request_style": "path_style", "endpoint_url": "endpoint",
              "ssl_verify_hostname": "verify_ssl"}
# an AWS-style region name (us-east-1, eu-west-3, us-gov-west-1): what s3fs's `endpoint=` holds
AWS_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+$")


class ConfigError(ValueError):
    """A bad option or value; the message is the one-line reason shown to the user."""


def parse_size(text: str) -> int:
    """`64M`, `1GiB`, `4096` → bytes."""
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in "kmgt" else (t, "")
    try:
        value = int(float(num) * units[unit])
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"not a size: {text!r} (use e.g. 64M, 1G)") from exc
    if value < 0:
        raise ConfigError(f"negative size: {text!r}")
    return value


def parse_bool(text: object) -> bool:
    if isinstance(text, bool):
        return text
    t = str(text).strip().lower()
    if t in ("", "1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"not a boolean: {text!r}")


def _size(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else parse_size(str(value))


SIZE = {"parse": _size}  # field(metadata=SIZE): accepts 64M, 1G, ...


@dataclass(frozen=True)
class S3Options:
    """The `[s3]` section, shared by every daemon: how to reach the object store, logging, metrics.

    max_connections is 32 for every daemon: it caps a pool that opens connections
    only when needed, and the mount (8 parallel requests per file, several
    files at once) and syncd (8 copies at once, each a GET and a PUT, plus
    the feed and listings) both need more than 16 under load.
    """

    #: s3fs spellings this dataclass accepts (a daemon's subclass adds its own).
    ALIASES: ClassVar[Mapping[str, str]] = S3_ALIASES
    #: Fields the daemon takes from its command's arguments, never from an option; `[s3]` values are left to
    #: the other daemons, anywhere else they are unknown options.
    FIXED: ClassVar[frozenset[str]] = frozenset()

    bucket: str = ""
    endpoint: str | None = None
    region: str = "us-east-1"
    path_style: bool = False
    passwd_file: str | None = None
    profile: str | None = None
    ca_bundle: str | None = None
    verify_ssl: bool = True
    max_connections: int = 32
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retry_deadline: float = 60.0  # after this, an operation fails (the mount: EIO)
    log_level: str = "info"
    log_format: str = "text"
    metrics_address: str = "off"  # HOST:PORT or "off"; each daemon has its own default port

    def store_settings(self, keys: Keys | None, bucket: str | None = None) -> StoreSettings:
        """The object-store client's settings for `bucket` (default: the configured one)."""
        return StoreSettings(
            bucket=bucket or self.bucket, endpoint=self.endpoint, region=self.region, path_style=self.path_style,
            keys=keys, profile=self.profile, verify=self.ca_bundle or self.verify_ssl,
            max_connections=self.max_connections, connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout, retry_deadline=self.retry_deadline,
        )


T = TypeVar("T", bound=S3Options)
_OPTIONAL: dict[object, type] = {str | None: str, int | None: int, float | None: float}


def normalize(raw_name: str, value: object, aliases: Mapping[str, str] = S3_ALIASES) -> tuple[str, object]:
    """One vocabulary for every command: (canonical name, value) of an option as written.

    s3fs spellings (`url=`, `use_path_request_style`, `no_verify_ssl`, ...) map to ours, and s3fs's
    `endpoint=REGION` (for s3fs, endpoint is the signing region; `url=` is the URL) sets the region.
    """
    name = raw_name.strip().lower().replace("-", "_")
    if name == "no_verify_ssl":
        return "verify_ssl", not parse_bool(value)
    if name == "endpoint" and isinstance(value, str) and AWS_REGION.match(value.strip()):
        return "region", value.strip()
    return aliases.get(name, name), value


def _coerce(name: str, kind: object, parse: Callable[[Any], object] | None, value: Any) -> object:
    """`value` as a `kind`; Any: raw input, whose TypeError/ValueError `apply` reports."""
    if parse is not None:
        return parse(value)
    if kind is bool:
        return parse_bool(value)
    if value is True:  # a bare `-o name` for an option that takes a value
        raise ConfigError(f"option {name} needs a value ({name}=...)")
    if kind in _OPTIONAL:
        return None if value in (None, "", "none") else _OPTIONAL[kind](value)
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
        name, value = normalize(raw, value, cfg.ALIASES)
        if name not in by_name or name in cfg.FIXED:
            raise ConfigError(f"unknown option {raw!r} ({origin})")
        try:
            changes[name] = _coerce(name, hints[name], by_name[name].metadata.get("parse"), value)
        except ConfigError as exc:  # e.g. "not a size": say which option, and where it was set
            if name in str(exc):
                raise ConfigError(f"{exc} ({origin})") from exc
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


def read_config_file(config_file: str | None, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(path, text) of the config file: `--config`, else $FSGATEWAY_CONFIG, else the default if it exists."""
    path = config_file or environ.get(CONFIG_VARIABLE)
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    if not path:
        return None
    try:
        return path, Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc


def from_toml(path: str, text: str, sections: tuple[str, ...]) -> list[tuple[str, dict[str, object]]]:
    """(section, table) of each of `sections` in the file, in that order; a missing section is empty."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    out = []
    for name in sections:
        table = doc.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: [{name}] must be a table")
        out.append((name, table))
    return out


def from_environ(environ: Mapping[str, str], prefix: str) -> dict[str, object]:
    """`<PREFIX>STAT_TTL=2` style overrides; never $FSGATEWAY_CONFIG nor another daemon's variables."""
    others = tuple(p for p in DAEMON_ENV_PREFIXES if p != prefix)
    return {k[len(prefix):].lower(): v for k, v in environ.items()
            if k.startswith(prefix) and k != CONFIG_VARIABLE and not k.startswith(others)}


def env_prefix(section: str) -> str:
    """`FSGATEWAY_<SECTION>_`: the environment variables of a daemon's section."""
    return f"FSGATEWAY_{section.upper()}_"


def load(cfg: T, section: str, environ: Mapping[str, str], config_file: str | None, flags: Mapping[str, object],
         *, env: str | None = None, flags_origin: str = "command line") -> T:
    """`cfg` (the defaults) with `[s3]` + `[section]` of the file, then the environment, then `flags`.

    `env` is the environment prefix (default `FSGATEWAY_<SECTION>_`). The shared
    values are checked once every layer is applied; the daemon checks its own.
    """
    found = read_config_file(config_file, environ)
    if found:
        path, text = found
        for name, table in from_toml(path, text, ("s3", section)):
            if name == "s3":
                table = {k: v for k, v in table.items() if normalize(k, v, cfg.ALIASES)[0] not in cfg.FIXED}
            cfg = apply(cfg, table, f"config file {path} [{name}]")
    cfg = apply(cfg, from_environ(environ, env or env_prefix(section)), "environment")
    from fsgateway.daemon import validation  # here, not at the top: validation imports ConfigError from this module

    return validation.checked(apply(cfg, flags, flags_origin))

