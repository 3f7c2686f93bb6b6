"""fsgateway: an S3-compatible bucket mounted through FUSE, for firmware uploads, and the shared floor
of the pipeline's three daemons.

- `formats/`: the on-bucket formats (s3fs attributes, key ↔ name mapping, reserved keys, feed journal);
  pure logic.
- `store/`: the object-store client (boto3 in worker threads, retries under a deadline, typed results,
  role metrics, credentials) and the change-feed writer every writer of the bucket uses.
- `daemon/`: what every daemon does the same way (config loader, validation, preflight, signals and
  watchdog, sd_notify, logs, the metrics HTTP server, identity, owner-only files, progress bars).
- `mount/`: the `fsgateway` command. Nothing outside it imports it (tests/test_layering.py).
"""
