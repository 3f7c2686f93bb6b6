"""Prometheus metrics of the mount, served on `metrics_address` (127.0.0.1 by default).

The S3 client's own metrics, shared with the other daemons, are in `store_metrics`.

Names follow the Prometheus conventions: base units in the name, `_total` on
counters. Labels are bounded sets (request kinds, outcomes, reasons), never
keys, paths or credentials.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

UPLOAD_SECONDS = Histogram(
    "fsgateway_upload_duration_seconds", "From close()/fsync() to the object complete in the bucket",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
UPLOADS = Counter("fsgateway_uploads_total", "Objects written (close/fsync) by outcome", ["outcome"])
UPLOADS_IN_FLIGHT = Gauge("fsgateway_uploads_in_flight", "Files with data not yet complete in the bucket")
CACHE = Counter("fsgateway_cache_requests_total", "Metadata cache lookups by cache and result", ["cache", "result"])
UNMAPPABLE = Counter(
    "fsgateway_unmappable_keys_total", "Object keys that cannot be shown as file names, by reason", ["reason"]
)
CHECKSUM_MISMATCHES = Counter(
    "fsgateway_checksum_mismatches_total", "Whole-object SHA-256 or part ETag mismatches detected"
)
STAGING_BYTES = Gauge("fsgateway_staging_bytes", "Bytes held in local staging files (random writes)")
STALE_UPLOADS_ABORTED = Counter(
    "fsgateway_stale_uploads_aborted_total", "Multipart uploads and staging objects left by a crash, removed"
)
FUSE_ERRORS = Counter("fsgateway_fuse_errors_total", "Filesystem operations answered with an error", ["op", "errno"])
UP = Gauge("fsgateway_mount_up", "1 while the filesystem is mounted and serving")


def parse_address(address: str) -> tuple[str, int] | None:
    """`host:port`, `[::1]:port` or `:port` (means 127.0.0.1); None for `off`."""
    if address.strip().lower() in ("off", "none", ""):
        return None
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ValueError(f"metrics_address needs host:port, got {address!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def serve(address: str) -> None:
    """Start the /metrics HTTP server in a daemon thread (OSError if the port is taken)."""
    parsed = parse_address(address)
    if parsed is not None:
        start_http_server(parsed[1], addr=parsed[0])
