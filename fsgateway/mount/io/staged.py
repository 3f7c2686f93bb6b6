"""A file's content in a local staging file, for any write that is not an append to a new file.

Random and backward writes, truncates of existing data and appends to an
existing object work here (as rclone's write cache does), in `cache_dir`,
bounded by `cache_size`. Commit reads the file once to hash it (the SHA-256
stored with the object, and the MD5 of each part to check each part's ETag),
then uploads it: one PUT with Content-MD5 below one part, else a multipart
upload straight to the real key, its parts streamed from the file in worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
from functools import partial

import trio

from fsgateway.formats.s3format import SHA256_META
from fsgateway.mount import metrics
from fsgateway.mount.io.upload import (
    Committed,
    UploadContext,
    WriteError,
    check_complete,
    check_etag,
    check_length,
    local_io,
)
from fsgateway.store.client import FileSlice, write_exactly
from fsgateway.store.concurrency import gather

log = logging.getLogger("fsgateway.writer")

HASH_CHUNK = 8 << 20
BLOCK_SLACK = 64 << 10  # a write may allocate up to this much beyond its bytes at either end (file system blocks)


class StagedFile:
    """A dirty file's bytes in one staging file, its real blocks counted against `cache_size`.

    Not locked itself: the holder (`writer.DirtyFile`) calls it under the file's lock.
    """

    def __init__(self, ctx: UploadContext, path: str, fd: int) -> None:
        self.ctx = ctx
        self.path = path
        self.fd = fd
        self.size = 0
        self.reserved = 0  # counted against cache_size
        self.closed = False

    @classmethod
    def create(cls, ctx: UploadContext, size: int) -> StagedFile:
        """A staging file with room for `size` bytes already taken (ENOSPC now, with nothing left behind)."""
        path, fd = ctx.staging.create()
        staged = cls(ctx, path, fd)
        try:
            staged._reserve(size)
            staged._allocate(0, size)
        except BaseException:
            staged.discard_now()
            raise
        staged.size = size
        return staged

    @classmethod
    async def from_object(cls, ctx: UploadContext, key: str, size: int, etag: str, sha256: str | None) -> StagedFile:
        """A staged copy of an existing object (checked against `sha256`, ours), for modifying it in place."""
        staged = cls.create(ctx, size)
        try:
            await download_checked(ctx, key, size, staged.path, etag, sha256)
        except BaseException:
            staged.discard_now()
            raise
        return staged

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
            with local_io("staging file"):
                os.posix_fallocate(self.fd, off, length)

    def _settle(self) -> None:
        """Count only the staging file's real bytes: a hole (a sparse truncate or a write far out) costs none."""
        real = os.fstat(self.fd).st_blocks * 512
        if real < self.reserved:
            self.ctx.staging.reserve(real - self.reserved)
            self.reserved = real

    def put(self, off: int, data: bytes | bytearray | memoryview) -> None:
        """Write `data` at `off`; its blocks are reserved and allocated first, so a full cache is ENOSPC."""
        self._reserve(self.reserved + len(data) + 2 * BLOCK_SLACK)  # at most this many new real bytes
        try:
            self._allocate(off, len(data))
            with local_io("staging file"):
                write_exactly(self.fd, data, off)
        finally:
            self._settle()
        self.size = max(self.size, off + len(data))

    def fill(self, off: int, data: bytes | bytearray | memoryview) -> None:
        """Write into the room `create` already reserved and allocated."""
        with local_io("staging file"):
            write_exactly(self.fd, data, off)

    def read(self, off: int, end: int) -> bytes:
        """Bytes [off, end), all of them or EIO."""
        with local_io("staging file"):
            data = os.pread(self.fd, end - off, off)
        if len(data) != end - off:
            raise WriteError(errno.EIO, f"staging file: {len(data)} of {end - off} bytes read")
        return data

    def truncate(self, size: int) -> None:
        with local_io("staging file"):
            os.ftruncate(self.fd, size)
        self._settle()
        self.size = size

    async def commit(self, key: str, metadata: dict[str, str], content_type: str) -> Committed:
        """Upload the file to `key`; every part's ETag and the completed object are checked.

        A failed or cancelled multipart upload is aborted; the staging file stays, so
        the commit may be tried again.
        """
        part = self.ctx.part_size
        def read_through() -> tuple[str, list[str]]:
            self._restore_if_removed()  # before the file is read by its name
            return hash_file(self.path, self.size, part)

        with local_io("staging file"):
            sha, md5s = await trio.to_thread.run_sync(read_through)
        if self.size < part:
            return await self.ctx.put(key, FileSlice(self.path, 0, self.size), metadata, content_type, sha, md5s[0],
                                      self.size)
        meta = {**metadata, SHA256_META: sha}
        store = self.ctx.store
        slices = [FileSlice(self.path, start, min(part, self.size - start)) for start in range(0, self.size, part)]
        check_length(key, sum(s.length for s in slices), self.size)
        upload_id = await store.create_multipart(key, meta, content_type)

        async def send(number: int, body: FileSlice) -> str:
            etag = await store.upload_part(key, upload_id, number, body, md5s[number - 1])  # streamed from the file
            check_etag(key, f"part {number}", etag, md5s[number - 1])
            return etag

        try:
            etags = await gather([partial(send, n, body) for n, body in enumerate(slices, 1)],
                                 limit=self.ctx.parallel)
            await store.complete_multipart(key, upload_id, etags)
        except BaseException:
            await self.ctx.abort(key, upload_id)
            raise
        info = check_complete(key, await store.head(key), self.size, etags)
        return Committed(info.etag, sha, self.size)

    def _restore_if_removed(self) -> None:
        """A staging file removed under the mount (`cache_dir` emptied) is copied from its descriptor to a
        new one: the uploads read it by name, and the writes it took must not be lost."""
        if os.fstat(self.fd).st_nlink:
            return
        path, fd = self.ctx.staging.create()
        try:
            for start, end in _extents(self.fd, self.size):  # holes stay holes: a sparse file costs what it holds
                while start < end:
                    n = os.copy_file_range(self.fd, fd, end - start, start, start)
                    if n <= 0:
                        raise OSError(errno.EIO, f"staging file shorter than {self.size} bytes")
                    start += n
            os.ftruncate(fd, self.size)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        os.close(self.fd)
        log.warning("staging file %s was removed while in use; copied to %s", self.path, path)
        self.path, self.fd = path, fd
        self._settle()

    def discard_now(self) -> None:
        """Close and remove the staging file and give its space back."""
        if self.closed:
            return
        self.closed = True
        os.close(self.fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.ctx.staging.reserve(-self.reserved)
        self.reserved = 0


def _extents(fd: int, size: int) -> list[tuple[int, int]]:
    """The ranges of [0, size) of a file that hold data (SEEK_DATA/SEEK_HOLE), in order."""
    out: list[tuple[int, int]] = []
    off = 0
    while off < size:
        try:
            start = os.lseek(fd, off, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after `off`
                break
            raise
        if start >= size:
            break
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        out.append((start, end))
        off = end
    return out


async def download_checked(ctx: UploadContext, key: str, size: int, path: str, etag: str,
                           sha256: str | None) -> None:
    """Copy the object into the staging file at `path`, checked against its SHA-256 (if known).

    Nothing checks a GET's body on its way, and the staging file is what the next commit
    hashes: unchecked, a damaged copy would be stored under a new, matching checksum. A
    mismatch is downloaded once more (damage on the way), then EIO (damage at rest).
    """
    for attempt in (1, 2):
        with local_io("staging file"):
            got = await ctx.store.download_to(key, size, path, etag or None, ctx.part_size, digest=sha256 is not None)
        if sha256 is None or got == sha256:
            return
        metrics.CHECKSUM_MISMATCHES.inc()
        log.error("checksum mismatch copying %s to a staging file (attempt %d): SHA-256 %s, expected %s",
                  key, attempt, got, sha256)
    raise WriteError(errno.EIO, f"{key}: content does not match its SHA-256; not modified")


def hash_file(path: str, size: int, part_size: int) -> tuple[str, list[str]]:
    """SHA-256 of the first `size` bytes of `path` and the MD5 of each `part_size` part, in one read.

    An empty file has one (empty) part. A file shorter than `size` is EIO.
    """
    sha = hashlib.sha256()
    md5s: list[str] = []
    with open(path, "rb") as f:
        for start in range(0, max(size, 1), part_size):
            md5 = hashlib.md5()
            remaining = min(part_size, size - start)
            while remaining:
                block = f.read(min(HASH_CHUNK, remaining))
                if not block:
                    raise OSError(errno.EIO, "staging file shorter than expected")
                sha.update(block)
                md5.update(block)
                remaining -= len(block)
            md5s.append(md5.hexdigest())
    return sha.hexdigest(), md5s
