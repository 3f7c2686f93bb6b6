"""The FUSE-free filesystem (`fsgateway.mount.fs`) driven directly, against a real S3 server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from fsgateway.mount.fs.core import Filesystem
from fsgateway.mount.options import Config
from fsgateway.store.client import ObjectStore
from fsgateway.store.credentials import Keys


def run_fs(server: Any, bucket: str, tmp_path: Any, body: Callable[[Filesystem], Awaitable[None]],
           **cfg_overrides: Any) -> None:
    """Run `body(fs)` in trio with a Filesystem on `bucket`; its background tasks end with it."""
    cfg = Config(bucket=bucket, mountpoint="/nowhere", endpoint=server.endpoint, path_style=True,
                 ca_bundle=server.ca_bundle, cache_dir=str(tmp_path / "cache"), multipart_size=5 << 20,
                 write_buffer_size=10 << 20, **cfg_overrides)
    settings = cfg.store_settings(Keys(server.access_key, server.secret_key))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            fs = Filesystem(cfg, ObjectStore(settings), nursery, "testhost", "run1")
            await body(fs)
            nursery.cancel_scope.cancel()

    trio.run(main)
