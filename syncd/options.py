"""syncd's configuration: `[s3]` (the primary bucket) plus `[syncd]`, env FSGATEWAY_SYNCD_*, `--set`.

The backup bucket is reached with the primary's connection settings unless
`backup_endpoint`, `backup_passwd_file`, `backup_profile` or
`backup_ca_bundle` say otherwise. When both buckets share endpoint and
credentials, objects are copied server-side.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fsgateway.daemon import validation
from fsgateway.daemon.config import SIZE, ConfigError, S3Options
from fsgateway.store.client import StoreSettings
from fsgateway.store.credentials import Keys

DEFAULT_STATE_DIR = "/var/lib/fsgateway/syncd"


@dataclass(frozen=True)
class SyncdOptions(S3Options):
    backup_bucket: str = ""
    backup_endpoint: str | None = None
    backup_region: str | None = None
    backup_passwd_file: str | None = None
    backup_profile: str | None = None
    backup_ca_bundle: str | None = None
    state_dir: str = DEFAULT_STATE_DIR
    delete: str = "keep"  # keep | mirror
    max_delete: int = 100  # mirror mode: most deletes per run; a run that would delete more deletes nothing
    include: tuple[str, ...] = ()  # globs or prefixes (ending in /); empty = everything
    exclude: tuple[str, ...] = ()
    concurrency: int = 8  # objects copied at once
    bandwidth_limit: int = field(default=0, metadata=SIZE)  # bytes/s through this host (streamed copies); 0 = none
    part_size: int = field(default=16 << 20, metadata=SIZE)  # streamed copies: GET range / upload part size
    copy_buffers: int = 8  # streamed copies: parts held in memory at once (memory = copy_buffers * part_size)
    reconcile_interval: float = 3600.0  # seconds between full reconciles (and one at start when due)
    feed_poll_interval: float = 1.0
    feed_lookback: float = 300.0  # re-read this far behind the cursor: clock skew + journal PUT retries
    feed_retention: float = 7 * 86400.0  # delete journal objects older than this; 0 keeps them
    retry_max_interval: float = 300.0  # a failing object is retried with backoff up to this interval
    metrics_address: str = "127.0.0.1:9879"

    def validate(self) -> SyncdOptions:
        if not self.bucket:
            raise ConfigError("no primary bucket: set bucket in [s3] or --set bucket=NAME")
        if not self.backup_bucket:
            raise ConfigError("no backup bucket: set backup_bucket in [syncd] or --set backup_bucket=NAME")
        if self.bucket == self.backup_bucket and self.backup_endpoint in (None, self.endpoint):
            raise ConfigError("the backup bucket is the primary bucket")
        if self.delete not in ("keep", "mirror"):
            raise ConfigError(f"delete must be keep or mirror, got {self.delete!r}")
        if self.max_delete < 0 or self.concurrency < 1 or self.copy_buffers < 1:
            raise ConfigError("max_delete must be >= 0, concurrency and copy_buffers >= 1")
        if self.part_size < 5 << 20:
            raise ConfigError("part_size must be at least 5M (the S3 minimum part size)")
        if min(self.feed_poll_interval, self.reconcile_interval, self.retry_max_interval) <= 0:
            raise ConfigError("feed_poll_interval, reconcile_interval and retry_max_interval must be > 0")
        if self.feed_lookback < 0 or self.feed_retention < 0:
            raise ConfigError("feed_lookback and feed_retention must be >= 0")
        validation.check_endpoint(self.backup_endpoint, "backup_endpoint")
        validation.check_region(self.backup_region, "backup_region")
        validation.check_profile(self.backup_profile, "backup_profile")
        validation.check_file(self.backup_passwd_file, "backup_passwd_file", must_exist=False)
        validation.check_file(self.backup_ca_bundle, "backup_ca_bundle")
        return self

    def backup_store_settings(self, keys: Keys | None) -> StoreSettings:
        return replace(self.store_settings(keys, self.backup_bucket),
                       endpoint=self.backup_endpoint or self.endpoint, region=self.backup_region or self.region,
                       profile=self.backup_profile or self.profile,
                       verify=self.backup_ca_bundle or self.ca_bundle or self.verify_ssl)

    def backup_has_own_credentials(self) -> bool:
        return bool(self.backup_passwd_file or self.backup_profile)
