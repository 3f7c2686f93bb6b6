"""fsgateway: an S3-compatible bucket mounted through FUSE, for firmware uploads.

Layers, each importing only those below it: `fuse_ops` (pyfuse3 adapter) →
`core` (inodes, handles, caches; no FUSE) → `writer` / `reader` (upload and
download paths) → `store` (boto3 in worker threads, retries, metrics). `core`
also calls `store` itself (HEAD, listings, copies, deletes).
"""
