"""Write path: data written to a file until it is complete in the bucket.

Two modes, as in mountpoint-s3's streaming upload and rclone's write cache:

* stream — appends go to a memory buffer; every full part is uploaded in the
  background while the application keeps writing (a multipart upload to a
  hidden staging key), memory bounded by `write_buffer_size` for the whole
  mount. On commit the last part is sent, the upload is completed and checked
  (its size, and the part count its ETag names), then copied server-side to
  the real key with its metadata, including the SHA-256 of the whole file
  computed while writing; a HEAD checks the copy's size and that SHA-256 in
  its metadata. The real key never shows a partial file.
* staged — any other write (random, backwards, truncate of existing data,
  append to an existing object) works on a local staging file in `cache_dir`,
  bounded by `cache_size`; commit hashes it and uploads it directly.

Small files (below one part) are a single PUT with Content-MD5.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import trio

from fsgateway.formats.keys import STAGING_PREFIX
from fsgateway.formats.s3format import FILE_CONTENT_TYPE, SHA256_META
from fsgateway.mount import metrics
from fsgateway.mount.housekeeping import Janitor
from fsgateway.store import deadline
from fsgateway.store.client import FileSlice, ObjectInfo, ObjectStore, StoreError, write_exactly
from fsgateway.store.concurrency import gather
from fsgateway.store.errors import GatewayError

log = logging.getLogger("fsgateway.writer")

HASH_CHUNK = 8 << 20
BLOCK_SLACK = 64 << 10  # a write may allocate up to this much beyond its bytes at either end (file system blocks)


class WriteError(GatewayError):
    """A write-path failure with the errno the application gets."""


@contextlib.contextmanager
def _local(what: str) -> Iterator[None]:
    """Local staging-file I/O: its OSError (ENOSPC on a full disk) reaches the caller as that errno."""
    try:
        yield
    except OSError as exc:
        raise WriteError(exc.errno or errno.EIO, f"{what}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class Committed:
    etag: str
    sha256: str
    size: int


class StagingArea:
    """Local staging files of one mount, their total size bounded by `cache_size`.

    The directory is the mount's own (several mounts may share `cache_dir`), so
    what a crashed run left there can be removed at start.
    """

    def __init__(self, directory: str, limit: int) -> None:
        self.directory = directory
        self.limit = limit
        self.used = 0
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for stale in os.listdir(directory):  # left by a crash: their data was never acknowledged
            if stale.startswith("staging-"):
                os.unlink(os.path.join(directory, stale))

    def create(self) -> str:
        path = os.path.join(self.directory, f"staging-{uuid.uuid4().hex}")
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.close(fd)
        return path

    def reserve(self, delta: int) -> None:
        if delta > 0 and self.used + delta > self.limit:
            raise WriteError(errno.ENOSPC, f"staging space exhausted ({self.used + delta} > cache_size {self.limit})")
        self.used += delta
        metrics.STAGING_BYTES.set(self.used)


class UploadContext:
    """What every dirty file shares: the store, the limits, the background nursery."""

    def __init__(self, store: ObjectStore, staging: StagingArea, part_size: int, parallel: int,
                 write_buffer_size: int, nursery: trio.Nursery, host_id: str, run_id: str) -> None:
        self.store = store
        self.retry_deadline = store.settings.retry_deadline
        self.staging = staging
        self.part_size = part_size
        self.parallel = parallel
        self.part_tokens = trio.Semaphore(max(2, write_buffer_size // part_size))
        self.nursery = nursery
        self.host_id = host_id
        self.run_id = run_id
        self.janitor = Janitor(store, self.retry_deadline)
        nursery.start_soon(self.janitor.run)

    def staging_key(self) -> str:
        """`<host>/<run>-<uuid>`: start-up clean-up removes this host's keys of other runs only."""
        return f"{STAGING_PREFIX}{self.host_id}/{self.run_id}-{uuid.uuid4().hex}"


class DirtyFile:
    """The not-yet-committed content of one file, shared by its open handles.

    Two modes in one class: the `| None` fields of the mode in use (`stage_key`, `upload_id` when
    streaming; `path` when staged) are set, which mypy cannot see; that is the reason of every
    `type: ignore[arg-type]`/`[union-attr]` in this class (one class per mode removes them).
    """

    def __init__(self, ctx: UploadContext, size: int = 0) -> None:
        self.ctx = ctx
        self.size = size
        self.lock = trio.Lock()
        # stream mode
        self.streaming = size == 0
        self.tail = StreamTail()
        self.hasher = hashlib.sha256()
        self.hashed = trio.Event()  # set when every submitted part is in the hasher
        self.hashed.set()
        self.stage_key: str | None = None
        self.upload_id: str | None = None
        self.parts: dict[int, str] = {}
        self.next_part = 1
        self.in_flight = 0
        self.parts_done = trio.Condition()
        self.error: BaseException | None = None
        # staged mode
        self.path: str | None = None
        self.fd: int | None = None
        self.reserved = 0  # counted against cache_size
        self.closed = False
        metrics.UPLOADS_IN_FLIGHT.inc()

    # ------------------------------------------------------------ loading
    @classmethod
    async def from_object(cls, ctx: UploadContext, key: str, size: int, etag: str) -> DirtyFile:
        """A staged copy of an existing object, for modifying it in place."""
        dirty = cls(ctx, size)
        dirty.streaming = False
        dirty._open_staging()
        try:
            dirty._reserve(size)
            dirty._allocate(0, size)
            with _local("staging file"):
                await ctx.store.download_to(key, size, dirty.path, etag or None, ctx.part_size)  # type: ignore[arg-type]
        except BaseException:
            dirty.discard_now()
            raise
        return dirty

    def _open_staging(self) -> None:
        with _local("staging file"):
            self.path = self.ctx.staging.create()

    def _reserve(self, real: int) -> None:
        """Count up to `real` bytes of the staging file against cache_size (ENOSPC past it)."""
        if real > self.reserved:
            self.ctx.staging.reserve(real - self.reserved)
            self.reserved = real

    def _allocate(self, off: int, length: int) -> None:
        """Real disk blocks for [off, off + length) before writing there: a full disk is ENOSPC now.

        Holes stay holes (a sparse truncate costs nothing), but bytes written are never left as a
        hole that reads back as zeros.
        """
        if length > 0:
            with _local("staging file"):
                os.posix_fallocate(self._fd(), off, length)

    def _settle(self) -> None:
        """Count only the staging file's real bytes: a hole (a sparse truncate or a write far out) costs none."""
        real = os.fstat(self._fd()).st_blocks * 512
        if real < self.reserved:
            self.ctx.staging.reserve(real - self.reserved)
            self.reserved = real

    # ------------------------------------------------------------ stream mode
    def _check(self) -> None:
        if self.error is not None:
            raise WriteError(getattr(self.error, "errno", errno.EIO), f"upload failed earlier: {self.error}")

    async def _submit_part(self, data: bytes | bytearray) -> None:
        """Hand one full part to a background upload; blocks while the memory budget is used.

        The part has left the buffer: if it cannot be sent, the file is poisoned
        (every later write, fsync and close fails), never committed without it.
        """
        try:
            await self.ctx.part_tokens.acquire()
        except BaseException as exc:
            self.error = self.error or exc
            raise
        try:
            if self.upload_id is None:
                self.stage_key = self.ctx.staging_key()
                self.upload_id = await self.ctx.store.create_multipart(self.stage_key, {}, FILE_CONTENT_TYPE)
        except BaseException as exc:
            self.error = self.error or exc
            self.ctx.part_tokens.release()
            raise
        number = self.next_part
        self.next_part += 1
        self.in_flight += 1
        uploaded = trio.Event()
        previous, self.hashed = self.hashed, trio.Event()
        self.ctx.nursery.start_soon(self._hash_part, previous, self.hashed, uploaded, data)
        self.ctx.nursery.start_soon(self._upload_part, number, data, uploaded)

    async def _hash_part(self, previous: trio.Event, done: trio.Event, uploaded: trio.Event,
                         data: bytes | bytearray) -> None:
        """SHA-256 in part order, in a worker thread: hashlib releases the GIL, the event loop goes on.

        The part's memory token is returned here, once both the hash and the upload are done with
        its bytes: until then they are in memory, and the budget must say so.
        """
        try:
            await previous.wait()
            try:
                await trio.to_thread.run_sync(self.hasher.update, data)
            finally:
                done.set()
            del data
            await uploaded.wait()
        finally:
            self.ctx.part_tokens.release()

    async def _upload_part(self, number: int, data: bytes | bytearray, uploaded: trio.Event) -> None:
        try:
            with deadline.own(self.ctx.retry_deadline):
                self.parts[number] = await self.ctx.store.upload_part(
                    self.stage_key, self.upload_id, number, data)  # type: ignore[arg-type]
        except Exception as exc:  # recorded and reported to the writer; never crashes the mount
            self.error = self.error or exc
        finally:
            del data
            self.in_flight -= 1
            uploaded.set()
            async with self.parts_done:
                self.parts_done.notify_all()

    async def _wait_parts(self) -> None:
        async with self.parts_done:
            while self.in_flight:
                await self.parts_done.wait()
        self._check()

    async def _abort_stream(self) -> None:
        """Abort the staging upload; clean-up gets a deadline of its own, after the failure used the caller's."""
        if self.upload_id is not None:
            with trio.CancelScope(shield=True), deadline.own(self.ctx.retry_deadline):
                with contextlib.suppress(WriteError):
                    await self._wait_parts()
                try:
                    await self.ctx.store.abort_multipart(self.stage_key, self.upload_id)  # type: ignore[arg-type]
                except StoreError as exc:
                    log.warning("could not abort staging upload %s (retried in the background): %s",
                                self.stage_key, exc)
                    self.ctx.janitor.later(self.stage_key, self.upload_id)  # type: ignore[arg-type]
            self.upload_id = None

    async def _finish_stream_upload(self) -> str:
        """Send the last part, complete the staging upload and check it; returns its ETag.

        If anything fails from the completion on, the staging object is removed
        at once (the caller aborts the upload itself).
        """
        if self.tail.size:
            await self._submit_part(self.tail.take(self.tail.size))
        await self._wait_parts()
        await self.hashed.wait()
        count = len(self.parts)
        if count != self.next_part - 1:
            raise WriteError(errno.EIO, f"{self.stage_key}: {self.next_part - 1 - count} parts missing")
        try:
            await self.ctx.store.complete_multipart(
                self.stage_key, self.upload_id, [self.parts[n] for n in sorted(self.parts)])  # type: ignore[arg-type]
            self.upload_id = None
            info = await self.ctx.store.head(self.stage_key)  # type: ignore[arg-type]
            _check_complete(self.stage_key, info, self.size, count)  # type: ignore[arg-type]
        except BaseException:
            await self._remove_stage_object()
            raise
        return info.etag  # type: ignore[union-attr]

    async def _remove_stage_object(self) -> None:
        """Delete the completed staging object now; if that fails, the janitor retries in the background."""
        with trio.CancelScope(shield=True), deadline.own(self.ctx.retry_deadline):
            try:
                await self.ctx.store.delete(self.stage_key)  # type: ignore[arg-type]
            except StoreError as exc:
                log.warning("could not delete staging object %s (retried in the background): %s",
                            self.stage_key, exc)
                self.ctx.janitor.later(self.stage_key)  # type: ignore[arg-type]

    async def _to_staged(self) -> None:
        """Switch from stream to staged mode, keeping everything written so far."""
        self._check()
        self._open_staging()
        self._reserve(self.size)
        self._allocate(0, self.size)
        if self.upload_id is None and not self.parts:
            with _local("staging file"):
                write_exactly(self._fd(), self.tail.peek(0, self.tail.size), 0)
        else:
            await self._finish_stream_upload()
            try:
                with _local("staging file"):
                    await self.ctx.store.download_to(self.stage_key, self.size, self.path,  # type: ignore[arg-type]
                                                     None, self.ctx.part_size)
            finally:
                await self._remove_stage_object()
        self.tail = StreamTail()
        self.streaming = False

    # ------------------------------------------------------------ file operations
    async def write(self, off: int, data: bytes) -> int:
        async with self.lock:
            self._check()
            if self.streaming and off == self.size:
                self.tail.append(data)
                self.size += len(data)
                while self.tail.size >= self.ctx.part_size:
                    await self._submit_part(self.tail.take(self.ctx.part_size))
                return len(data)
            if self.streaming:
                await self._to_staged()
            end = off + len(data)
            self._reserve(self.reserved + len(data) + 2 * BLOCK_SLACK)  # at most this many new real bytes
            try:
                self._allocate(off, len(data))
                with _local("staging file"):
                    write_exactly(self._fd(), data, off)
            finally:
                self._settle()
            self.size = max(self.size, end)
            return len(data)

    def _fd(self) -> int:
        """The staging file, opened once for all pread/pwrite of this file."""
        if self.fd is None:
            with _local("staging file"):
                self.fd = os.open(self.path, os.O_RDWR)  # type: ignore[arg-type]
        return self.fd

    async def read(self, off: int, size: int) -> bytes:
        async with self.lock:
            self._check()
            end = min(self.size, off + size)
            if off >= end:
                return b""
            if self.streaming:
                start = self.size - self.tail.size
                if off >= start:
                    return self.tail.peek(off - start, end - start)
                await self._to_staged()
            with _local("staging file"):
                data = os.pread(self._fd(), end - off, off)
            if len(data) != end - off:
                raise WriteError(errno.EIO, f"staging file: {len(data)} of {end - off} bytes read")
            return data

    async def truncate(self, size: int) -> None:
        async with self.lock:
            self._check()
            if size == self.size:
                return
            if self.streaming and size == 0 and self.upload_id is None:
                self.tail = StreamTail()
                self.size = 0
                return
            if self.streaming:
                await self._to_staged()
            with _local("staging file"):
                os.ftruncate(self._fd(), size)
            self._settle()
            self.size = size

    async def commit(self, key: str, metadata: dict[str, str], content_type: str) -> Committed:
        """Make the object complete at `key`; on return it is in the bucket, or this raised."""
        async with self.lock:
            self._check()
            t0 = time.monotonic()
            try:
                result = await (self._commit_stream(key, metadata, content_type) if self.streaming
                                else self._commit_staged(key, metadata, content_type))
            except (StoreError, WriteError, OSError) as exc:
                metrics.UPLOADS.labels("error").inc()
                log.error("upload of %s failed: %s", key, exc)
                self.error = self.error or exc
                await self._abort_stream()
                raise WriteError(getattr(exc, "errno", None) or errno.EIO, str(exc)) from exc
            metrics.UPLOADS.labels("ok").inc()
            metrics.UPLOAD_SECONDS.observe(time.monotonic() - t0)
            return result

    async def _commit_stream(self, key: str, metadata: dict[str, str], content_type: str) -> Committed:
        if self.upload_id is None and not self.parts and self.next_part == 1:
            data = self.tail.peek(0, self.tail.size)
            _check_length(key, len(data), self.size)
            sha = hashlib.sha256(data).hexdigest()
            etag = await self.ctx.store.put(key, data, {**metadata, SHA256_META: sha}, content_type)
            self.tail = StreamTail()
            return Committed(etag, sha, self.size)
        await self._finish_stream_upload()
        sha = self.hasher.hexdigest()
        meta = {**metadata, SHA256_META: sha}
        try:
            await self.ctx.store.copy(self.stage_key, key, self.size, meta, content_type)  # type: ignore[arg-type]
            info = await self.ctx.store.head(key)
        finally:
            await self._remove_stage_object()
        if info is None or info.size != self.size or info.metadata.get(SHA256_META) != sha:
            metrics.CHECKSUM_MISMATCHES.inc()
            raise WriteError(errno.EIO, f"{key}: object after copy has {info and info.size} bytes, expected "
                             f"{self.size} with SHA-256 {sha}")
        return Committed(info.etag, sha, self.size)

    async def _commit_staged(self, key: str, metadata: dict[str, str], content_type: str) -> Committed:
        with _local("staging file"):
            sha = await trio.to_thread.run_sync(partial(_hash_file, self.path, self.size))  # type: ignore[arg-type]
        meta = {**metadata, SHA256_META: sha}
        store, part = self.ctx.store, self.ctx.part_size
        if self.size < part:
            etag = await store.put(key, FileSlice(self.path, 0, self.size), meta, content_type)  # type: ignore[arg-type]
            return Committed(etag, sha, self.size)
        upload_id = await store.create_multipart(key, meta, content_type)
        slices = [FileSlice(self.path, start, min(part, self.size - start))  # type: ignore[arg-type]
                  for start in range(0, self.size, part)]
        _check_length(key, sum(s.length for s in slices), self.size)

        async def send(number: int, body: FileSlice) -> str:
            async with self.ctx.part_tokens:  # a part read into memory counts against write_buffer_size
                return await store.upload_part(key, upload_id, number, body)

        try:
            etags = await gather([partial(send, n, body) for n, body in enumerate(slices, 1)],
                                 limit=self.ctx.parallel)
            await store.complete_multipart(key, upload_id, etags)
        except BaseException:
            with trio.CancelScope(shield=True), deadline.own(self.ctx.retry_deadline):
                try:
                    await store.abort_multipart(key, upload_id)
                except StoreError:
                    self.ctx.janitor.later(key, upload_id)
            raise
        info = await store.head(key)
        _check_complete(key, info, self.size, len(slices))
        return Committed(info.etag, sha, self.size)  # type: ignore[union-attr]

    # ------------------------------------------------------------ teardown
    def discard_now(self) -> None:
        """Drop local state (staging file, memory); the caller aborts remote uploads."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.path = None
        if self.reserved:
            self.ctx.staging.reserve(-self.reserved)
            self.reserved = 0
        self.tail = StreamTail()
        if not self.closed:
            self.closed = True
            metrics.UPLOADS_IN_FLIGHT.dec()

    async def discard(self) -> None:
        await self._abort_stream()
        self.discard_now()


class StreamTail:
    """Appended bytes not yet cut into a part: a list of chunks, moved once into the part's buffer.

    A part is assembled chunk by chunk while the chunks are let go, so cutting it
    costs about one part of memory, not two (allocations of this size are mapped
    memory, see `memory.tune_allocator`, and grow without copying).
    """

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0

    def append(self, data: bytes) -> None:
        self.chunks.append(bytes(data))
        self.size += len(data)

    def take(self, n: int) -> bytearray:
        part = bytearray()
        while self.chunks and len(part) < n:
            chunk = self.chunks.popleft()
            room = n - len(part)
            if len(chunk) > room:
                self.chunks.appendleft(chunk[room:])
                chunk = chunk[:room]
            part += chunk
            del chunk
        self.size -= len(part)
        return part

    def peek(self, start: int, end: int) -> bytes:
        return b"".join(self.chunks)[start:end]


def _check_length(key: str, stored: int, size: int) -> None:
    """What a commit is about to store is exactly the file's size, or nothing is stored."""
    if stored != size:
        raise WriteError(errno.EIO, f"{key}: {stored} bytes to store, the file has {size}")


def _check_complete(key: str, info: ObjectInfo | None, size: int, parts: int) -> None:
    """After CompleteMultipartUpload: the object exists with our size and part count.

    Transit integrity comes from SigV4's signed payload hash (HTTP) or TLS; the
    content itself is covered by the SHA-256 we store and check on read. RGW may
    answer Complete with an empty ETag; HEAD has the right one.
    """
    if info is None or info.size != size:
        metrics.CHECKSUM_MISMATCHES.inc()
        raise WriteError(errno.EIO, f"{key}: completed object has {info and info.size} bytes, expected {size}")
    etag = info.etag.strip('"')
    if "-" in etag and etag.rsplit("-", 1)[1] != str(parts):
        metrics.CHECKSUM_MISMATCHES.inc()
        raise WriteError(errno.EIO, f"{key}: completed object has ETag {etag}, expected {parts} parts")


def _hash_file(path: str, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        remaining = size
        while remaining:
            block = f.read(min(HASH_CHUNK, remaining))
            if not block:
                raise OSError(errno.EIO, "staging file shorter than expected")
            h.update(block)
            remaining -= len(block)
    return h.hexdigest()
