"""Prometheus metrics of the checker (127.0.0.1:9878 by default). Labels are bounded: outcomes and reasons."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

VERDICTS = Counter("fsgateway_checker_verdicts_total", "Packages judged, by outcome (accepted, rejected, "
                   "duplicate) and reason", ["outcome", "reason"])
PENDING = Gauge("fsgateway_checker_pending_packages", "Packages landed but not complete yet")
OLDEST_PENDING = Gauge("fsgateway_checker_oldest_pending_age_seconds", "Age of the oldest pending package")
LATENCY = Histogram("fsgateway_checker_verdict_latency_seconds", "From the last part landing to the verdict",
                    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900))
HASHED = Counter("fsgateway_checker_hashed_bytes_total", "Payload bytes hashed (SHA-256)")
PUBLISHES = Counter("fsgateway_checker_publishes_total", "TUF metadata publications by outcome", ["outcome"])
ERRORS = Counter("fsgateway_checker_errors_total", "Failures that will be retried, by stage", ["stage"])
TIMESTAMP_EXPIRY = Gauge("fsgateway_checker_timestamp_expiry_timestamp_seconds",
                         "When the published timestamp.json expires (Unix time)")
METADATA_EXPIRY = Gauge("fsgateway_checker_metadata_expiry_timestamp_seconds",
                        "When the published TUF metadata of each role expires (Unix time)", ["role"])
LAST_RECONCILE = Gauge("fsgateway_checker_last_reconcile_timestamp_seconds",
                       "When the last full listing of incoming/ completed (Unix time)")
EVENTS = Counter("fsgateway_checker_events_total", "Filesystem events from the mount, by kind", ["kind"])
