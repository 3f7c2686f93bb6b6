"""The mount's configuration: `[s3]` + `[mount]` of the shared file, FSGATEWAY_<NAME>, then `-o` options.

The command line is s3fs-style (`-o opt,opt=value`) so that an fstab line
`bucket /srv/firmware fuse.fsgateway _netdev,allow_other,url=... 0 0` works:
s3fs's option names are aliases, and generic mount(8) options are ignored.
The layering itself is the shared loader's (`fsgateway.daemon.config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from fsgateway.daemon import config
from fsgateway.daemon.config import SIZE, ConfigError, S3Options

ENV_PREFIX = "FSGATEWAY_"

#: Generic mount(8) options that mount.fuse passes through and that mean nothing to us.
IGNORED_MOUNT_OPTIONS = frozenset(
    {"rw", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "atime", "noatime", "relatime",
     "nodiratime", "strictatime", "async", "sync", "auto", "noauto", "user", "users", "nouser",
     "_netdev", "nofail", "defaults", "x-systemd.automount"}
)
#: s3fs spellings of mount options, on top of the `[s3]` ones.
MOUNT_ALIASES = {"max_stat_cache_size": "negative_cache_entries", "parallel_count": "parallel",
                 "multipart_threshold": "multipart_size", "readonly": "ro"}


def _octal(value: Any) -> int:
    return int(value, 8) if isinstance(value, str) else int(value)


@dataclass(frozen=True)
class Config(S3Options):
    """Everything the mount daemon needs; field names are the `-o` option names."""

    ALIASES: ClassVar[Mapping[str, str]] = {**config.S3_ALIASES, **MOUNT_ALIASES}
    FIXED: ClassVar[frozenset[str]] = frozenset({"bucket", "prefix", "mountpoint", "foreground"})

    prefix: str = ""  # "" or "some/dir/" inside the bucket
    mountpoint: str = ""
    allow_other: bool = False
    default_permissions: bool = False
    uid: int | None = None  # set: every entry shows this owner (s3fs semantics)
    gid: int | None = None
    umask: int | None = field(default=None, metadata={"parse": _octal})  # set: masks every entry's mode
    ro: bool = False
    nonempty: bool = False  # allow mounting over a directory with files (s3fs's option; they are hidden)
    cache_dir: str = "/var/cache/fsgateway"
    cache_size: int = field(default=10 << 30, metadata=SIZE)  # staging files (random writes) and part spools, bytes
    stat_ttl: float = 5.0  # seconds an attribute or listing is trusted
    negative_ttl: float = 2.0
    negative_cache_entries: int = 10_000
    metadata_cache_entries: int = 100_000
    multipart_size: int = field(default=8 << 20, metadata=SIZE)  # part size; smaller files are one PUT
    parallel: int = 8  # concurrent requests per file (parts, ranged reads)
    # memory for full parts until they are in the spool (or, without room there, uploaded), whole mount
    write_buffer_size: int = field(default=8 << 20, metadata=SIZE)  # one part: spooled within ~20 ms
    read_ahead: int = field(default=12 << 20, metadata=SIZE)  # per sequential reader: 2 chunks of 4M fetched ahead
    # the kernel's read-ahead for this mount (FUSE default 128K); 0 keeps it. 4M keeps four 1 MiB reads in flight
    kernel_read_ahead: int = field(default=4 << 20, metadata=SIZE)
    stale_upload_age: float = 24 * 3600.0  # abort other hosts' staging uploads older than this
    feed: bool = True  # announce every change in the change feed (.fsgateway/feed/), which syncd reads
    feed_flush: float = 1.0  # seconds announcements wait in the local write-ahead log; 0: a journal PUT per close
    feed_wal_size: int = field(default=64 << 20, metadata=SIZE)  # WAL kept while the bucket refuses journals
    metrics_address: str = "127.0.0.1:9877"  # "off" disables
    foreground: bool = False
    fsname: str | None = None

    @property
    def source(self) -> str:
        return f"{self.bucket}:/{self.prefix}" if self.prefix else self.bucket


def validate(cfg: Config) -> Config:
    if cfg.multipart_size < 5 << 20:
        raise ConfigError("multipart_size must be at least 5M (the S3 minimum part size)")
    if cfg.parallel < 1 or cfg.max_connections < cfg.parallel:
        raise ConfigError("parallel must be >= 1 and <= max_connections")
    if cfg.stat_ttl < 0 or cfg.negative_ttl < 0:
        raise ConfigError("stat_ttl and negative_ttl must be >= 0")
    if cfg.write_buffer_size < cfg.multipart_size:
        raise ConfigError("write_buffer_size must hold at least one part (multipart_size)")
    if cfg.feed_flush < 0 or cfg.feed_wal_size < 1 << 20:
        raise ConfigError("feed_flush must be >= 0 seconds and feed_wal_size at least 1M")
    return cfg


def parse_o_options(opts: list[str]) -> dict[str, object]:
    """`-o a,b=c -o d` → {"a": True, "b": "c", "d": True}, without the generic mount(8) options."""
    out: dict[str, object] = {}
    for group in opts:
        for item in group.split(","):
            name, sep, value = item.strip().partition("=")
            if name and name.lower() not in IGNORED_MOUNT_OPTIONS:
                out[name] = value if sep else True
    return out


def parse_source(source: str) -> tuple[str, str]:
    """`bucket` or `bucket:/prefix/dir` → (bucket, "prefix/dir/")."""
    bucket, _, prefix = source.partition(":")
    if not bucket:
        raise ConfigError(f"no bucket in {source!r}")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def load(
    source: str,
    mountpoint: str,
    o_options: list[str],
    environ: Mapping[str, str],
    config_file: str | None,
    foreground: bool,
) -> Config:
    """The full precedence chain; reads the config file if one is given or the default exists."""
    bucket, prefix = parse_source(source)
    cfg = config.load(Config(), "mount", environ, config_file, parse_o_options(o_options), env=ENV_PREFIX,
                      flags_origin="-o")
    return validate(replace(cfg, bucket=bucket, prefix=prefix, mountpoint=mountpoint, foreground=foreground))
