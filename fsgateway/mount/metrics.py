"""Prometheus metrics of the mount, served on `metrics_address` (127.0.0.1 by default).

The S3 client's own metrics, shared with the other daemons, are in `store_metrics`.

Names follow the Prometheus conventions: base units in the name, `_total` on
counters. Labels are bounded sets (request kinds, outcomes, reasons), never
keys, paths or credentials.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()  # this module's series only; see fsgateway.metrics_server

UPLOAD_SECONDS = Histogram(
    "fsgateway_upload_duration_seconds",
    "From close()/fsync() to the object complete in the bucket",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
UPLOADS = Counter("fsgateway_uploads_total", "Objects written (close/fsync) by outcome", ["outcome"], registry=REGISTRY)
UPLOADS_IN_FLIGHT = Gauge(
    "fsgateway_uploads_in_flight", "Files with data not yet complete in the bucket", registry=REGISTRY
)
CACHE = Counter(
    "fsgateway_cache_requests_total",
    "Metadata cache lookups by cache and result",
    ["cache", "result"],
    registry=REGISTRY,
)
UNMAPPABLE = Counter(
    "fsgateway_unmappable_keys_total",
    "Object keys that cannot be shown as file names, by reason",
    ["reason"],
    registry=REGISTRY,
)
CHECKSUM_MISMATCHES = Counter(
    "fsgateway_checksum_mismatches_total", "Whole-object SHA-256 or part ETag mismatches detected", registry=REGISTRY
)
STAGING_BYTES = Gauge(
    "fsgateway_staging_bytes", "Bytes of cache_size held by local staging files (random writes) and part spools",
    registry=REGISTRY,
)
STREAM_PARTS = Counter(
    "fsgateway_stream_parts_total",
    "Parts of streamed files handed to their upload, by where the request body comes from (spool: the spool "
    "file on disk; memory: no room in the spool)",
    ["source"], registry=REGISTRY,
)
STALE_UPLOADS_ABORTED = Counter(
    "fsgateway_stale_uploads_aborted_total",
    "Multipart uploads and staging objects left by a crash, removed",
    registry=REGISTRY,
)
FUSE_ERRORS = Counter(
    "fsgateway_fuse_errors_total", "Filesystem operations answered with an error", ["op", "errno"], registry=REGISTRY
)
UP = Gauge("fsgateway_mount_up", "1 while the filesystem is mounted and serving", registry=REGISTRY)
FEED_WAL_BYTES = Gauge(
    "fsgateway_feed_wal_bytes", "Bytes in the change feed's local write-ahead log not yet stored as journal objects",
    registry=REGISTRY,
)
FEED_WAL_FALLBACKS = Counter(
    "fsgateway_feed_wal_fallbacks_total",
    "Announcements that waited for their own journal PUT: the write-ahead log was full or failing",
    ["reason"], registry=REGISTRY,
)
FEED_WAL_TORN = Counter(
    "fsgateway_feed_wal_torn_records_total",
    "Write-ahead log records skipped at flush: torn by a crash before their fsync returned, or corrupt",
    registry=REGISTRY,
)
FEED_WAL_LOST = Counter(
    "fsgateway_feed_wal_lost_segments_total",
    "Write-ahead log segments removed by someone else before they were flushed (their changes wait for a reconcile)",
    registry=REGISTRY,
)
