"""fsgateway: an S3-compatible bucket mounted through FUSE, for firmware uploads.

Layers, each seeing only the one below: `fuse_ops` (pyfuse3 adapter) →
`core` (inodes, handles, caches; no FUSE) → `writer` / `reader` (upload and
download paths) → `store` (boto3 in worker threads, retries, metrics).
"""
