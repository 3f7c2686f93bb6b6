"""Mount configuration: defaults < TOML file < environment < command line.

The command line is s3fs-style (`-o opt,opt=value`) so that an fstab line
`bucket /srv/firmware fuse.fsgateway _netdev,allow_other,url=... 0 0` works;
the TOML file is the one shared by every daemon of the pipeline (section
`[s3]` for the connection, `[mount]` for this daemon). Pure parsing: the
caller reads the file and the environment and hands them in.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_FILE = "/etc/fsgateway/fsgateway.toml"
ENV_PREFIX = "FSGATEWAY_"
#: Environment prefixes of the other daemons (`settings`); the mount leaves their variables alone.
OTHER_DAEMON_PREFIXES = ("FSGATEWAY_CHECKER_", "FSGATEWAY_SYNCD_")

#: Generic mount(8) options that mount.fuse passes through and that mean nothing to us.
IGNORED_MOUNT_OPTIONS = frozenset(
    {"rw", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "atime", "noatime", "relatime",
     "nodiratime", "strictatime", "async", "sync", "auto", "noauto", "user", "users", "nouser",
     "_netdev", "nofail", "defaults", "x-systemd.automount"}
)
#: s3fs spellings accepted as aliases.
ALIASES = {"url": "endpoint", "use_path_request_style": "path_style", "endpoint_url": "endpoint",
           "ssl_verify_hostname": "verify_ssl", "max_stat_cache_size": "negative_cache_entries",
           "parallel_count": "parallel", "multipart_threshold": "multipart_size", "readonly": "ro"}


# an AWS-style region name (us-east-1, eu-west-3, us-gov-west-1): what s3fs's `endpoint=` holds
AWS_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+$")


def normalize(raw_name: str, value: object) -> tuple[str, object]:
    """One vocabulary for every command: (canonical name, value) of an option as written.

    s3fs spellings (`url=`, `use_path_request_style`, `no_verify_ssl`, ...) map to ours, and s3fs's
    `endpoint=REGION` (for s3fs, endpoint is the signing region; `url=` is the URL) sets the region.
    """
    name = raw_name.strip().lower().replace("-", "_")
    if name == "no_verify_ssl":
        return "verify_ssl", not parse_bool(value)
    if name == "endpoint" and isinstance(value, str) and AWS_REGION.match(value.strip()):
        return "region", value.strip()
    return ALIASES.get(name, name), value


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


@dataclass(frozen=True)
class Config:
    """Everything the mount daemon needs; field names are the `-o` option names."""

    bucket: str = ""
    prefix: str = ""  # "" or "some/dir/" inside the bucket
    mountpoint: str = ""
    endpoint: str | None = None
    region: str = "us-east-1"
    path_style: bool = False
    passwd_file: str | None = None
    profile: str | None = None
    allow_other: bool = False
    default_permissions: bool = False
    uid: int | None = None  # set: every entry shows this owner (s3fs semantics)
    gid: int | None = None
    umask: int | None = None  # set: masks every entry's mode
    ro: bool = False
    nonempty: bool = False  # allow mounting over a directory with files (s3fs's option; they are hidden)
    cache_dir: str = "/var/cache/fsgateway"
    cache_size: int = 10 << 30  # staging files for random writes, bytes
    stat_ttl: float = 5.0  # seconds an attribute or listing is trusted
    negative_ttl: float = 2.0
    negative_cache_entries: int = 10_000
    metadata_cache_entries: int = 100_000
    multipart_size: int = 16 << 20  # part size; smaller files are one PUT
    parallel: int = 8  # concurrent requests per file (parts, ranged reads)
    max_connections: int = 32
    write_buffer_size: int = 128 << 20  # memory for parts in flight, whole mount
    read_ahead: int = 64 << 20  # per sequential reader
    kernel_read_ahead: int = 1 << 20  # the kernel's read-ahead for this mount (FUSE default 128K); 0 keeps it
    ca_bundle: str | None = None
    verify_ssl: bool = True
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    retry_deadline: float = 60.0  # after this, an operation fails with EIO
    stale_upload_age: float = 24 * 3600.0  # abort other hosts' staging uploads older than this
    feed: bool = True  # announce every change in the change feed (.fsgateway/feed/), which syncd reads
    feed_flush: float = 1.0  # seconds announcements wait in the local write-ahead log; 0: a journal PUT per close
    feed_wal_size: int = 64 << 20  # bytes of write-ahead log kept while the bucket refuses journal objects
    log_level: str = "info"
    log_format: str = "text"
    metrics_address: str = "127.0.0.1:9877"  # "off" disables
    foreground: bool = False
    fsname: str | None = None

    @property
    def source(self) -> str:
        return f"{self.bucket}:/{self.prefix}" if self.prefix else self.bucket


_NUMERIC: dict[str, Callable[[Any], int | float]] = {  # Any: raw input, TypeError/ValueError become ConfigError
    "uid": int,
    "gid": int,
    "umask": lambda v: int(v, 8) if isinstance(v, str) else int(v),
    "parallel": int,
    "max_connections": int,
    "negative_cache_entries": int,
    "metadata_cache_entries": int,
    "stat_ttl": float,
    "negative_ttl": float,
    "connect_timeout": float,
    "read_timeout": float,
    "retry_deadline": float,
    "stale_upload_age": float,
    "feed_flush": float,
}
_SIZES = {"cache_size", "multipart_size", "write_buffer_size", "read_ahead", "kernel_read_ahead", "feed_wal_size"}
_FIELDS = {f.name: f for f in fields(Config)}


def _coerce(name: str, value: object) -> object:
    kind = _FIELDS[name].type
    try:
        if name in _SIZES:
            return value if isinstance(value, int) else parse_size(str(value))
        if name in _NUMERIC:
            return _NUMERIC[name](value)
        if kind == "bool":
            return parse_bool(value)
        if value is True:
            raise ConfigError(f"option {name} needs a value ({name}=...)")
    except ConfigError as exc:  # e.g. "not a size": say which option
        if name in str(exc):
            raise
        raise ConfigError(f"{name}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value for {name}: {value!r}") from exc
    return str(value)


def apply(cfg: Config, values: dict[str, object], origin: str) -> Config:
    """Return `cfg` with `values` applied; unknown names are an error naming `origin`."""
    changes: dict[str, Any] = {}  # each value coerced to its field's type by _coerce
    for raw_name, value in values.items():
        name, value = normalize(raw_name, value)
        if name in IGNORED_MOUNT_OPTIONS:
            continue
        if name not in _FIELDS or name in ("bucket", "prefix", "mountpoint", "foreground"):
            raise ConfigError(f"unknown option {raw_name!r} ({origin})")
        changes[name] = _coerce(name, value)
    new = replace(cfg, **changes)
    return validate(new)


def validate(cfg: Config) -> Config:
    if cfg.multipart_size < 5 << 20:
        raise ConfigError("multipart_size must be at least 5M (the S3 minimum part size)")
    if cfg.parallel < 1 or cfg.max_connections < cfg.parallel:
        raise ConfigError("parallel must be >= 1 and <= max_connections")
    if cfg.stat_ttl < 0 or cfg.negative_ttl < 0:
        raise ConfigError("stat_ttl and negative_ttl must be >= 0")
    if cfg.log_format not in ("text", "json"):
        raise ConfigError("log_format must be text or json")
    if cfg.feed_flush < 0 or cfg.feed_wal_size < 1 << 20:
        raise ConfigError("feed_flush must be >= 0 seconds and feed_wal_size at least 1M")
    if cfg.write_buffer_size < cfg.multipart_size * 2:
        raise ConfigError("write_buffer_size must hold at least two parts (2 * multipart_size)")
    return cfg


def parse_o_options(opts: list[str]) -> dict[str, object]:
    """`-o a,b=c -o d` → {"a": True, "b": "c", "d": True}."""
    out: dict[str, object] = {}
    for group in opts:
        for item in group.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, value = item.partition("=")
            out[name] = value if sep else True
    return out


def parse_source(source: str) -> tuple[str, str]:
    """`bucket` or `bucket:/prefix/dir` → (bucket, "prefix/dir/")."""
    bucket, _, prefix = source.partition(":")
    if not bucket:
        raise ConfigError(f"no bucket in {source!r}")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def from_toml(text: str) -> dict[str, object]:
    """The `[s3]` and `[mount]` sections of the shared config file, flattened."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file: {exc}") from exc
    out: dict[str, object] = {}
    for section in ("s3", "mount"):
        table = doc.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"config file: [{section}] must be a table")
        out.update(table)
    out.pop("bucket", None)  # for the other daemons; the mount's bucket is its first argument
    return out


def from_environ(environ: dict[str, str]) -> dict[str, object]:
    """`FSGATEWAY_STAT_TTL=2` style overrides."""
    return {k[len(ENV_PREFIX) :].lower(): v for k, v in environ.items()
            if k.startswith(ENV_PREFIX) and k != ENV_PREFIX + "CONFIG" and not k.startswith(OTHER_DAEMON_PREFIXES)}


def read_config_file(config_file: str | None, environ: dict[str, str]) -> tuple[str, str] | None:
    """(path, text) of the config file: `--config`, else $FSGATEWAY_CONFIG, else the default if it exists."""
    path = config_file or environ.get(ENV_PREFIX + "CONFIG")
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    if not path:
        return None
    try:
        return path, Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc


def load(
    source: str,
    mountpoint: str,
    o_options: list[str],
    environ: dict[str, str],
    config_file: str | None,
    foreground: bool,
) -> Config:
    """The full precedence chain; reads the config file if one is given or the default exists."""
    bucket, prefix = parse_source(source)
    cfg = Config(bucket=bucket, prefix=prefix, mountpoint=mountpoint, foreground=foreground)
    found = read_config_file(config_file, environ)
    if found:
        cfg = apply(cfg, from_toml(found[1]), f"config file {found[0]}")
    cfg = apply(cfg, from_environ(environ), "environment")
    from fsgateway.daemon import validation  # here, not at the top: validation imports ConfigError from this module

    return validation.checked(apply(cfg, parse_o_options(o_options), "-o"))

