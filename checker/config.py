"""Checker configuration: `[s3]` + `[checker]` of the shared file, FSGATEWAY_CHECKER_*, flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from fsgateway.daemon.config import ConfigError, S3Options


@dataclass(frozen=True)
class CheckerConfig(S3Options):
    prefix: str = ""  # where the pipeline lives in the bucket ("" or "dir/"): incoming/, releases/, ...
    mount_dir: str = ""  # the fsgateway mount of that prefix, watched with inotify; "" = reconcile only
    state_dir: str = "/var/lib/fsgateway/checker"
    database: str = ""  # sqlite:///PATH or postgresql://...; default sqlite under state_dir
    online_key: str = ""  # Ed25519 key for targets/snapshot/timestamp; default state_dir/online.key
    pending_deadline: float = 900.0  # seconds a package may stay incomplete before it is rejected
    reconcile_interval: float = 30.0  # full listing of incoming/ (other hosts, other tools)
    targets_expiry: float = 30 * 86400.0
    timestamp_expiry: float = 86400.0
    timestamp_max_age: int = 60  # Cache-Control max-age of timestamp.json, seconds
    concurrency: int = 4  # packages judged at once
    feed: bool = True  # announce releases, metadata, quarantine and incoming/ deletes in the change feed
    metrics_address: str = "127.0.0.1:9878"

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite://{os.path.join(self.state_dir, 'versions.db')}"

    @property
    def online_key_path(self) -> str:
        return self.online_key or os.path.join(self.state_dir, "online.key")

    def key(self, name: str) -> str:
        """A pipeline key (incoming/…, releases/…) inside the configured prefix."""
        return f"{self.prefix}{name}"


def validate(cfg: CheckerConfig, need_bucket: bool = True) -> CheckerConfig:
    if need_bucket and not cfg.bucket:
        raise ConfigError("no bucket: set bucket in [s3], FSGATEWAY_CHECKER_BUCKET or --bucket")
    prefix = cfg.prefix.strip("/")
    cfg = replace(cfg, prefix=f"{prefix}/" if prefix else "")
    if cfg.pending_deadline <= 0 or cfg.reconcile_interval <= 0:
        raise ConfigError("pending_deadline and reconcile_interval must be > 0")
    if cfg.timestamp_expiry < 120:
        raise ConfigError("timestamp_expiry must be at least 120 seconds")
    if cfg.concurrency < 1:
        raise ConfigError("concurrency must be >= 1")
    if not 0 <= cfg.timestamp_max_age <= cfg.timestamp_expiry / 2:
        raise ConfigError("timestamp_max_age must be >= 0 and at most half of timestamp_expiry (a CDN may serve "
                          "a cached timestamp.json that long)")
    if cfg.targets_expiry <= 0:
        raise ConfigError("targets_expiry must be > 0")
    scheme = cfg.database.partition("://")[0] if "://" in cfg.database else ""
    if scheme not in ("", "sqlite", "postgresql", "postgres"):
        raise ConfigError(f"database must be sqlite:///PATH or postgresql://..., got {scheme}://...")
    return cfg
