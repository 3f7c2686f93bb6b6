"""syncd's Prometheus metrics, in the spirit of S3 replication's; served on metrics_address (127.0.0.1:9879).

S3 requests by bucket role and kind are `fsgateway_s3_requests_total{role="primary"|"backup",...}`,
shared with every daemon. Labels are bounded sets, never keys.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()  # this module's series only; see fsgateway.metrics_server

PENDING_OBJECTS = Gauge(
    "fsgateway_syncd_pending_objects", "Changed keys not yet replicated to the backup", registry=REGISTRY
)
PENDING_BYTES = Gauge(
    "fsgateway_syncd_pending_bytes", "Size of the changed objects not yet replicated", registry=REGISTRY
)
BEHIND = Gauge(
    "fsgateway_syncd_behind_seconds", "Age of the oldest change not yet replicated (0 when none)", registry=REGISTRY
)
FAILING = Gauge(
    "fsgateway_syncd_failing_objects", "Pending keys whose last replication attempt failed", registry=REGISTRY
)
COPIES = Counter(
    "fsgateway_syncd_copies_total",
    "Objects written to the backup, by method (server_side, streamed, metadata) and outcome",
    ["method", "outcome"],
    registry=REGISTRY,
)
COPIED_BYTES = Counter(
    "fsgateway_syncd_copied_bytes_total",
    "Bytes of objects written to the backup, by outcome",
    ["outcome"],
    registry=REGISTRY,
)
DAMAGED = Counter(
    "fsgateway_syncd_damaged_reads_total",
    "Streamed copies abandoned before the backup had them: the bytes read did not match the primary's "
    "fsg-sha256 (damaged on the way or at rest; tried again)",
    registry=REGISTRY,
)
UNCHANGED = Counter(
    "fsgateway_syncd_unchanged_total",
    "Changed keys found already equal in the backup, by how (compare: size+checksum+metadata, hash)",
    ["how"],
    registry=REGISTRY,
)
DELETES = Counter(
    "fsgateway_syncd_deletes_total",
    "Backup objects deleted because the primary deleted them (outcome done, held, error)",
    ["outcome"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "fsgateway_syncd_reconcile_duration_seconds",
    "Duration of full reconciles",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
RECONCILES = Counter(
    "fsgateway_syncd_reconciles_total", "Full reconciles by outcome (ok, error)", ["outcome"], registry=REGISTRY
)
DRIFT = Counter(
    "fsgateway_syncd_drift_objects_total",
    "Keys a reconcile found out of sync, by kind (missing, changed, extra)",
    ["kind"],
    registry=REGISTRY,
)
LAST_RECONCILE = Gauge(
    "fsgateway_syncd_last_reconcile_success_timestamp_seconds",
    "When the last successful full reconcile ended (Unix time)",
    registry=REGISTRY,
)
FEED_LAG = Gauge(
    "fsgateway_syncd_feed_cursor_lag_seconds",
    "Seconds since the cursor last reached the end of the change feed (grows while polls fail)",
    registry=REGISTRY,
)
FEED_JOURNALS = Counter(
    "fsgateway_syncd_feed_journal_objects_total",
    "Journal objects read from the change feed, by outcome (applied, malformed)",
    ["outcome"],
    registry=REGISTRY,
)
FEED_EXPIRED = Counter(
    "fsgateway_syncd_feed_journal_objects_expired_total",
    "Journal objects deleted after feed_retention",
    registry=REGISTRY,
)
UP = Gauge("fsgateway_syncd_up", "1 while syncd is serving", registry=REGISTRY)
VANISHED = Counter(
    "fsgateway_syncd_vanished_total",
    "Keys deleted from the primary between being listed or announced and being copied (not errors)",
    registry=REGISTRY,
)
