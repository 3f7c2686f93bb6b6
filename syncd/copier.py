"""Writing one object to the backup: server-side copy, or streamed through this host.

Server-side CopyObject when both buckets share endpoint and credentials (no
bytes pass through syncd; user metadata, Content-Type and every other header
kept by the server). Otherwise a streamed copy: a GET (its response carries
the metadata, so no HEAD) and a PUT for small objects; ranged GETs pinned to
the first response's ETag feeding a multipart upload for large ones. Memory
is bounded by `copy_buffers` parts for the whole process, and the bandwidth
limit paces every byte that passes through. Directory markers (`dir/`) are
always re-created with a PUT: SeaweedFS cannot CopyObject them.
"""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import trio

from fsgateway.formats.s3format import SHA256_META
from fsgateway.store.client import MAX_SINGLE_COPY, ObjectInfo, ObjectStore, StoreError
from fsgateway.store.concurrency import gather
from fsgateway.store.hashing import sha256_of

from . import metrics
from .state import State
from .throttle import Throttle

DEFAULT_CONTENT_TYPE = "binary/octet-stream"  # what S3 assumes when an object has none


@dataclass(frozen=True)
class Written:
    """The backup's new object, as a later listing of the backup will show it."""

    size: int
    etag: str
    method: str


def _check(key: str, hasher: hashlib._Hash, expected: str | None) -> None:
    """The bytes read from the primary against its `fsg-sha256` (objects without it: nothing to compare)."""
    if expected is not None and hasher.hexdigest() != expected:
        metrics.DAMAGED.inc()
        raise StoreError("get", key, ValueError(f"bytes read have SHA-256 {hasher.hexdigest()}, the object's "
                                                f"{SHA256_META} says {expected}"), errno.EIO)


class Copier:
    def __init__(self, primary: ObjectStore, backup: ObjectStore, state: State, server_side: bool,
                 part_size: int, copy_buffers: int, throttle: Throttle) -> None:
        self.primary = primary
        self.backup = backup
        self.state = state
        self.server_side = server_side
        self.part_size = part_size
        self.copy_buffers = copy_buffers
        self.buffers = trio.CapacityLimiter(copy_buffers)
        self.throttle = throttle

    async def copy(self, key: str, size: int) -> Written:
        """The primary's `key` (about `size` bytes, from a listing or HEAD) written to the backup."""
        try:
            if self.server_side and not key.endswith("/") and size <= MAX_SINGLE_COPY:
                etag = await self.backup.copy_from(self.primary.bucket, key, key)
                written = Written(size, etag or await self._etag(key), "server_side")
            else:
                written = await self._streamed(key, size)
        except BaseException:
            metrics.COPIES.labels("server_side" if self.server_side else "streamed", "error").inc()
            metrics.COPIED_BYTES.labels("error").inc(size)
            raise
        metrics.COPIES.labels(written.method, "ok").inc()
        metrics.COPIED_BYTES.labels("ok").inc(written.size)
        return written

    async def rewrite_metadata(self, key: str, src: ObjectInfo) -> Written:
        """The bytes are already equal: only user metadata and Content-Type change (a self-copy)."""
        ctype = src.content_type or DEFAULT_CONTENT_TYPE
        if key.endswith("/") and src.size == 0:
            etag = await self.backup.put(key, b"", src.metadata, ctype)
        else:
            etag = await self.backup.copy(key, key, src.size, src.metadata, ctype) or await self._etag(key)
        metrics.COPIES.labels("metadata", "ok").inc()
        return Written(src.size, etag, "metadata")

    async def sha256(self, store: ObjectStore, key: str, size: int, etag: str) -> str:
        """The SHA-256 of one version of an object (for objects without our checksum), paced and within
        the process's copy buffers; a changed object or another size is StoreError(ESTALE)."""
        digest, _ = await sha256_of(store, key, size, etag or None, chunk=self.part_size,
                                    before_get=self.throttle.take, buffers=self.buffers)
        return digest

    async def _etag(self, key: str) -> str:
        """The backup's ETag from a HEAD (RGW answers some writes with an empty one)."""
        info = await self.backup.head(key)
        return info.etag if info else ""

    async def _streamed(self, key: str, size: int) -> Written:
        """GET from the primary, PUT (or a multipart upload) to the backup, hashed on the way.

        Nothing checks a GET's body on its way, and the backup's object gets the primary's
        `fsg-sha256`, which would then vouch for damaged bytes (the planner trusts equal
        checksums). So the bytes are hashed in order as they pass and compared with it before
        the object exists in the backup: a mismatch aborts the copy (EIO), to be tried again.
        """
        hasher = hashlib.sha256()
        async with self.buffers:
            first = min(size, self.part_size)
            await self.throttle.take(first)
            if size == 0:
                data, info = await self.primary.get_with_info(key)
            else:
                data, info = await self.primary.get_with_info(key, 0, first)
            ctype = info.content_type or DEFAULT_CONTENT_TYPE
            expected = info.metadata.get(SHA256_META)
            await trio.to_thread.run_sync(hasher.update, data)
            if info.size <= len(data):
                _check(key, hasher, expected)
                etag = await self.backup.put(key, data, info.metadata, ctype)
                return Written(info.size, etag, "streamed")
            upload_id = await self.backup.create_multipart(key, info.metadata, ctype)
            self.state.upload_started(key, upload_id)
            try:
                etags = [await self.backup.upload_part(key, upload_id, 1, data)]
            except BaseException:
                await self._abort(key, upload_id)
                raise
        del data
        try:
            etags += await self._parts(key, upload_id, info.etag, info.size, hasher)
            _check(key, hasher, expected)  # before the parts become an object
            await self.backup.complete_multipart(key, upload_id, etags)
        except BaseException:
            await self._abort(key, upload_id)
            raise
        self.state.upload_ended(upload_id)
        return Written(info.size, await self._etag(key), "streamed")

    async def _parts(self, key: str, upload_id: str, etag: str, size: int, hasher: hashlib._Hash) -> list[str]:
        """Parts 2.. of a streamed copy, within the process's copy buffers; their ETags, in order.

        Each part is fed to `hasher` after the one before it; `gather` takes the buffers in
        part order, so a part waiting for its predecessor's hash never holds the buffer that
        predecessor needs.
        """
        thunks: list[Callable[[], Awaitable[str]]] = []
        hashed = trio.Event()
        hashed.set()
        for number, start in enumerate(range(self.part_size, size, self.part_size), 2):
            previous, hashed = hashed, trio.Event()
            thunks.append(partial(self._part, key, upload_id, etag, number, start, min(size, start + self.part_size),
                                  hasher, previous, hashed))
        return await gather(thunks, limiter=self.buffers)

    async def _part(self, key: str, upload_id: str, etag: str, number: int, start: int, end: int,
                    hasher: hashlib._Hash, previous: trio.Event, hashed: trio.Event) -> str:
        """One part: read (pinned to `etag`: an overwrite is ESTALE, retried), hashed after `previous`, written."""
        await self.throttle.take(end - start)
        data = await self.primary.get(key, start, end, if_match=etag or None)
        await previous.wait()
        await trio.to_thread.run_sync(hasher.update, data)
        hashed.set()
        return await self.backup.upload_part(key, upload_id, number, data)

    async def _abort(self, key: str, upload_id: str) -> None:
        with trio.CancelScope(shield=True):
            try:
                await self.backup.abort_multipart(key, upload_id)
            except Exception:  # recorded in the state: aborted at the next start
                return
            self.state.upload_ended(upload_id)

    async def abort_leftovers(self) -> int:
        """Multipart uploads a killed run left in the backup: abort them (their parts cost storage)."""
        leftovers = self.state.uploads()
        for key, upload_id in leftovers:
            await self._abort(key, upload_id)
        return len(leftovers)
