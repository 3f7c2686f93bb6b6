"""Metrics of the object-store client, shared by every daemon that talks to S3.

`role` tells the buckets of one process apart (the mount and the checker
have one, `primary`; syncd has `primary` and `backup`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()  # this module's series only; see fsgateway.metrics_server

REQUESTS = Counter(
    "fsgateway_s3_requests_total",
    "S3 requests by bucket role, kind and outcome (ok, not_found, precondition_failed, transient, error)",
    ["role", "kind", "outcome"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "fsgateway_s3_request_duration_seconds",
    "Latency of single S3 requests",
    ["role", "kind"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RETRIES = Counter(
    "fsgateway_s3_retries_total", "S3 requests retried after a transient failure", ["role", "kind"], registry=REGISTRY
)
BYTES_UP = Counter("fsgateway_s3_uploaded_bytes_total", "Bytes sent to the object store", ["role"], registry=REGISTRY)
BYTES_DOWN = Counter(
    "fsgateway_s3_downloaded_bytes_total", "Bytes received from the object store", ["role"], registry=REGISTRY
)
