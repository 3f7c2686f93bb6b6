"""Prometheus metrics of the checker (127.0.0.1:9878 by default). Labels are bounded: outcomes and reasons."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()  # this module's series only; see fsgateway.metrics_server

VERDICTS = Counter(
    "fsgateway_checker_verdicts_total",
    "Packages judged, by outcome (accepted, rejected, duplicate) and reason",
    ["outcome", "reason"],
    registry=REGISTRY,
)
PENDING = Gauge("fsgateway_checker_pending_packages", "Packages landed but not complete yet", registry=REGISTRY)
OLDEST_PENDING = Gauge(
    "fsgateway_checker_oldest_pending_age_seconds", "Age of the oldest pending package", registry=REGISTRY
)
LATENCY = Histogram(
    "fsgateway_checker_verdict_latency_seconds",
    "From the last part landing to the verdict",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
    registry=REGISTRY,
)
HASHED = Counter("fsgateway_checker_hashed_bytes_total", "Payload bytes hashed (SHA-256)", registry=REGISTRY)
PUBLISHES = Counter(
    "fsgateway_checker_publishes_total", "TUF metadata publications by outcome", ["outcome"], registry=REGISTRY
)
ERRORS = Counter(
    "fsgateway_checker_errors_total", "Failures that will be retried, by stage", ["stage"], registry=REGISTRY
)
TIMESTAMP_EXPIRY = Gauge(
    "fsgateway_checker_timestamp_expiry_timestamp_seconds",
    "When the published timestamp.json expires (Unix time)",
    registry=REGISTRY,
)
LAST_RECONCILE = Gauge(
    "fsgateway_checker_last_reconcile_timestamp_seconds",
    "When the last full listing of incoming/ completed (Unix time)",
    registry=REGISTRY,
)
EVENTS = Counter(
    "fsgateway_checker_events_total", "Filesystem events from the mount, by kind", ["kind"], registry=REGISTRY
)
# The settings the alert rules compare with (fsgateway-rules.yml), set once at start.
PENDING_DEADLINE = Gauge(
    "fsgateway_checker_pending_deadline_seconds",
    "pending_deadline: how long a package may stay incomplete before it is rejected",
    registry=REGISTRY,
)
TIMESTAMP_LIFETIME = Gauge(
    "fsgateway_checker_timestamp_lifetime_seconds",
    "timestamp_expiry: how long a freshly signed timestamp.json is valid",
    registry=REGISTRY,
)
MOUNT_UP = Gauge(
    "fsgateway_checker_mount_up",
    "1 while the watched mount is mounted; 0: no verdicts until it is back (only with a mount_dir)",
    ["mount_dir"],
    registry=REGISTRY,
)
TAMPERED = Counter(
    "fsgateway_checker_tampered_objects_total",
    "Objects found changed behind the checker's back: a staged copy being hashed (staged), "
    "a release key holding other bytes (release)",
    ["where"],
    registry=REGISTRY,
)
QUEUED = Gauge("fsgateway_checker_queued_packages", "Packages waiting for a worker", registry=REGISTRY)
METADATA_EXPIRY = Gauge(
    "fsgateway_checker_metadata_expiry_timestamp_seconds",
    "When the published TUF metadata of each role expires (Unix time)",
    ["role"],
    registry=REGISTRY,
)
