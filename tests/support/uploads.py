"""The mount's data paths (fsgateway/mount/io) driven directly against a real S3 server, no mount."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trio

from fsgateway.mount.io.staging import StagingArea
from fsgateway.mount.io.upload import UploadContext
from fsgateway.store import metrics as store_metrics
from fsgateway.store.client import ObjectStore, StoreSettings
from fsgateway.store.credentials import Keys
from tests.support.s3 import S3Server

PART = 5 << 20  # the S3 minimum part size: the smallest files that stream in parts


def store_for(server: S3Server, bucket: str, endpoint: str | None = None, role: str = "primary",
              retry_deadline: float = 10) -> ObjectStore:
    """A store on `bucket`, through `endpoint` (a fault proxy) if given; `role` keeps its metrics apart."""
    return ObjectStore(StoreSettings(bucket=bucket, endpoint=endpoint or server.endpoint, region="us-east-1",
                                     path_style=True, keys=Keys(server.access_key, server.secret_key), profile=None,
                                     verify=server.ca_bundle or True, max_connections=8, connect_timeout=10,
                                     read_timeout=30, retry_deadline=retry_deadline), role=role)


def run_uploads(store: ObjectStore, staging_dir: Path, body: Callable[[UploadContext], Awaitable[None]],
                cache_size: int = 1 << 30, write_buffer_size: int = 4 * PART) -> None:
    """Run `body` with an upload context like the mount's (parts of `PART` bytes) in a trio loop of its own."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ctx = UploadContext(store, StagingArea(str(staging_dir), cache_size), PART, 4, write_buffer_size,
                                nursery, "testhost", "run1")
            await body(ctx)
            nursery.cancel_scope.cancel()

    trio.run(main)


def requests(role: str, kind: str, outcome: str = "ok") -> float:
    """How many `kind` requests the store of `role` counted with `outcome`."""
    return store_metrics.REGISTRY.get_sample_value(
        "fsgateway_s3_requests_total", {"role": role, "kind": kind, "outcome": outcome}) or 0.0


async def until(cond: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll `cond` inside a trio loop until it is true; fail the test at the deadline."""
    with trio.move_on_after(timeout):
        while not cond():
            await trio.sleep(0.02)
        return
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def staging_leftovers(s3, bucket: str) -> list[str]:
    """Staging uploads and staging objects the bucket still holds."""
    uploads = [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    objects = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=".fsgateway/").get("Contents", [])]
    return uploads + objects


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str, inodes: int | None = None) -> Iterator[Path]:
    """A tmpfs of `size` (and at most `inodes` files) at `path` (needs root): a disk to fill up."""
    path.mkdir()
    limit = f",nr_inodes={inodes}" if inodes else ""
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700{limit}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
