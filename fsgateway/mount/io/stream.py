"""Appends to a new file, streamed to the bucket while the application writes.

As in mountpoint-s3's streaming upload: appended bytes collect in memory
(`StreamTail`); every full part goes to a background multipart upload to a
hidden staging key while the application keeps writing. A full part is written
to the file's spool on disk (`spool.py`) and uploads from there, its memory free
at once; without room in the spool it uploads from memory. Memory is bounded by
`write_buffer_size` for the whole mount, parts in flight by `parallel` per file.
Each part's MD5 is computed in a worker thread and sent as its Content-MD5 (the
server checks it; the mount's bodies are not hashed again for the signature),
its SHA-256 in file order meanwhile; its ETag must be that MD5. On commit the
last part is sent, the upload is completed and checked (size, part count,
multipart ETag), then copied server-side to the real key with its metadata,
including the SHA-256 of the whole file; a HEAD checks the copy's size and that
SHA-256 in its metadata. The real key never shows a partial file.
A file that never reached one part is a single PUT with Content-MD5.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
from dataclasses import dataclass

import trio

from fsgateway.formats.s3format import FILE_CONTENT_TYPE, SHA256_META
from fsgateway.mount import metrics
from fsgateway.mount.io.buffers import PartBuffers
from fsgateway.mount.io.spool import PartSpool
from fsgateway.mount.io.staged import StagedFile, download_checked
from fsgateway.mount.io.upload import (
    Committed,
    UploadContext,
    WriteError,
    check_complete,
    check_etag,
    check_length,
    md5_hex,
)
from fsgateway.store import deadline
from fsgateway.store.client import FileSlice, ObjectInfo


@dataclass
class _Multipart:
    """The staging upload, begun with the first full part."""

    key: str
    upload_id: str
    ended: bool = False  # completed (the staging object exists) or aborted: its upload id is gone


def _digests(data: bytes) -> tuple[str, str]:
    return hashlib.sha256(data).hexdigest(), md5_hex(data)


class StreamUpload:
    """A new file written only by appends: its parts upload in the background as they fill.

    Not locked itself: the holder (`writer.DirtyFile`) calls it under the file's lock. Its part
    tasks run in the mount's nursery and report through `error`, `in_flight` and `parts_done`.
    Once `error` is set (a part could not be sent, the upload could not be completed or
    copied) the data is incomplete in the bucket and this upload can never be committed.
    """

    def __init__(self, ctx: UploadContext) -> None:
        self.ctx = ctx
        self.size = 0
        self.tail = StreamTail(ctx.buffers)
        self.hasher = hashlib.sha256()
        self.hashed = trio.Event()  # set when the latest submitted part is in the hasher
        self.hashed.set()
        self.upload: _Multipart | None = None
        self.spool: PartSpool | None = None  # made with the first part
        self.parts: dict[int, str] = {}
        self.next_part = 1
        self.in_flight = 0
        self.parts_done = trio.Condition()
        self.error: BaseException | None = None

    # ------------------------------------------------------------ file operations
    async def append(self, data: bytes) -> None:
        """Append at the end; every full part leaves for the bucket (blocks while the memory budget is used)."""
        view = memoryview(data)
        while view:
            n = self.tail.fill(view, self.ctx.part_size)
            view = view[n:]
            self.size += n
            if self.tail.size == self.ctx.part_size:
                await self._submit(self.tail.take())

    def read_tail(self, off: int, end: int) -> bytes | None:
        """Bytes [off, end) if they are still in memory; None if they left with a part."""
        start = self.size - self.tail.size
        return self.tail.peek(off - start, end - start) if off >= start else None

    def empty(self) -> bool:
        """Truncate to zero if nothing was sent yet; False if the data is partly in the bucket."""
        if self.upload is not None:
            return False
        self.tail.clear()
        self.size = 0
        return True

    async def commit(self, key: str, metadata: dict[str, str], content_type: str) -> Committed:
        """Store the file at `key`: a single PUT if no part was cut, else complete, check, copy, check."""
        upload = self.upload
        if upload is None:
            data = self.tail.peek(0, self.tail.size)
            check_length(key, len(data), self.size)
            # Hashed inline up to 32 KiB (12 µs for 4 KiB, 85 µs for 32): a worker thread costs ~100 µs.
            sha, md5 = _digests(data) if len(data) <= 32 << 10 else await trio.to_thread.run_sync(_digests, data)
            result = await self.ctx.put(key, data, metadata, content_type, sha, md5, self.size)
            self.tail.clear()
            return result
        await self._finish(upload)
        self._remove_spool()
        sha = self.hasher.hexdigest()
        meta = {**metadata, SHA256_META: sha}
        try:
            await self.ctx.store.copy(upload.key, key, self.size, meta, content_type)
            info = await self.ctx.store.head(key)
        finally:
            await self.ctx.remove(upload.key)
        if info is None or info.size != self.size or info.metadata.get(SHA256_META) != sha:
            metrics.CHECKSUM_MISMATCHES.inc()
            raise WriteError(errno.EIO, f"{key}: object after copy has {info and info.size} bytes, expected "
                             f"{self.size} with SHA-256 {sha}")
        return Committed(info.etag, sha, self.size)

    async def to_staged(self) -> StagedFile:
        """A staged file with everything written so far, for a write that is not an append.

        ENOSPC (no room in `cache_size` or on the disk) comes before anything changes: this
        upload goes on as it was. Any later failure sets `error`. On success this upload is used
        up: its staging object is gone and the returned file is the one to use.
        """
        staged = StagedFile.create(self.ctx, self.size)
        try:
            upload = self.upload
            if upload is None:
                staged.fill(0, self.tail.peek(0, self.tail.size))
            else:
                info = await self._finish(upload)
                try:  # checked against the SHA-256 of all that was sent
                    await download_checked(self.ctx, upload.key, self.size, staged.path, info.etag,
                                           self.hasher.hexdigest())
                finally:
                    await self.ctx.remove(upload.key)
        except BaseException as exc:
            self.error = self.error or exc
            staged.discard_now()
            raise
        self.tail.clear()
        self._remove_spool()
        return staged

    async def abort(self) -> None:
        """Abort the staging upload (after its parts in flight are done); shielded, with its own deadline."""
        upload = self.upload
        if upload is not None and not upload.ended:
            with trio.CancelScope(shield=True), deadline.own(self.ctx.retry_deadline), \
                    contextlib.suppress(WriteError):
                await self._wait_parts()
            await self.ctx.abort(upload.key, upload.upload_id)
            upload.ended = True
        self._remove_spool()

    def discard_now(self) -> None:
        """Drop the bytes held in memory and the spool."""
        self.tail.clear()
        self._remove_spool()

    def _remove_spool(self) -> None:
        if self.spool is not None:
            self.spool.remove()

    # ------------------------------------------------------------ parts
    async def _submit(self, data: bytearray) -> None:
        """Hand one full part to a background task; blocks while the file has `parallel` parts in flight
        or the mount's memory budget is used.

        The part has left the buffer: if it cannot be sent, `error` is set and the file can
        never be committed without it.
        """
        try:
            async with self.parts_done:
                while self.in_flight >= self.ctx.parallel:
                    await self.parts_done.wait()
            await self.ctx.part_tokens.acquire()
        except BaseException as exc:
            self.error = self.error or exc
            raise
        try:
            upload = self.upload
            if upload is None:
                key = self.ctx.staging_key()
                upload_id = await self.ctx.store.create_multipart(key, {}, FILE_CONTENT_TYPE)
                upload = self.upload = _Multipart(key, upload_id)
                self.spool = PartSpool(self.ctx)
        except BaseException as exc:
            self.error = self.error or exc
            self.ctx.part_tokens.release()
            raise
        assert self.spool is not None
        number = self.next_part
        self.next_part += 1
        self.in_flight += 1
        previous, self.hashed = self.hashed, trio.Event()
        self.ctx.nursery.start_soon(self._part, upload, self.spool, number, data, previous, self.hashed)

    async def _part(self, upload: _Multipart, spool: PartSpool, number: int, data: bytearray, previous: trio.Event,
                    hashed: trio.Event) -> None:
        """One part: its MD5, then its upload with that Content-MD5; meanwhile its SHA-256, in part order.

        The hashes and the spool write run in worker threads. The part's memory token and
        buffer are given back when its bytes are no longer needed in memory: once hashed and
        in the spool, or else once its upload answered (a request abandoned at its deadline
        may still be reading the buffer, which is then never reused).
        """
        slot = spool.take()
        in_memory = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._hash_in_order, data, previous, hashed)
                if slot is not None:
                    md5, spooled = await spool.write(slot, data)
                else:
                    md5, spooled = await trio.to_thread.run_sync(md5_hex, data), None
                metrics.STREAM_PARTS.labels("memory" if spooled is None else "spool").inc()
                if spooled is None:
                    await self._send(upload, number, data, md5)
            if spooled is not None:
                self._free(data, True)
                in_memory = False
                del data  # a buffer the pool did not keep is unmapped now, not when the upload ends
                await self._send(upload, number, spooled, md5)
            if number in self.parts:
                check_etag(upload.key, f"part {number}", self.parts[number], md5)
        except Exception as exc:  # recorded and reported to the writer; never crashes the mount
            self.error = self.error or exc
        finally:
            if in_memory:
                self._free(data, number in self.parts)
                del data
            if slot is not None:
                spool.give(slot, number in self.parts)
            self.in_flight -= 1
            async with self.parts_done:
                self.parts_done.notify_all()

    def _free(self, data: bytearray, reusable: bool) -> None:
        """A part's bytes leave memory: its token back, its buffer to the pool if nothing may still read it."""
        if reusable:
            self.ctx.buffers.give(data)
        self.ctx.part_tokens.release()

    async def _hash_in_order(self, data: bytearray, previous: trio.Event, hashed: trio.Event) -> None:
        try:
            await previous.wait()
            await trio.to_thread.run_sync(self.hasher.update, data)
        finally:
            hashed.set()

    async def _send(self, upload: _Multipart, number: int, body: bytearray | FileSlice, md5: str) -> None:
        try:
            with deadline.own(self.ctx.retry_deadline):
                self.parts[number] = await self.ctx.store.upload_part(upload.key, upload.upload_id, number, body,
                                                                      md5)
        except Exception as exc:  # recorded and reported to the writer; never crashes the mount
            self.error = self.error or exc

    async def _wait_parts(self) -> None:
        async with self.parts_done:
            while self.in_flight:
                await self.parts_done.wait()
        if self.error is not None:
            raise WriteError(getattr(self.error, "errno", None) or errno.EIO, f"upload failed earlier: {self.error}")

    async def _finish(self, upload: _Multipart) -> ObjectInfo:
        """Send the last part, complete the staging upload and check it; returns the staging object's HEAD.

        If anything fails from the completion on, the staging object is removed at once (a
        failure before it leaves the upload for `abort`).
        """
        if self.tail.size:
            await self._submit(self.tail.take())
        await self._wait_parts()
        count = self.next_part - 1
        if len(self.parts) != count:
            raise WriteError(errno.EIO, f"{upload.key}: {count - len(self.parts)} parts missing")
        etags = [self.parts[n] for n in range(1, count + 1)]
        try:
            await self.ctx.store.complete_multipart(upload.key, upload.upload_id, etags)
            upload.ended = True
            return check_complete(upload.key, await self.ctx.store.head(upload.key), self.size, etags)
        except BaseException:
            await self.ctx.remove(upload.key)
            raise


class StreamTail:
    """Appended bytes not yet sent: the part being filled, one buffer that becomes the part.

    Each FUSE write is copied once, straight to its place in the buffer, and a full
    buffer is handed to the upload as it is: no chunk list, no assembly copy. While
    the file is small the buffer grows with it, so a small file costs only its
    bytes; past `GROW_LIMIT` it moves once into a part-sized buffer from `buffers`,
    whose pages an earlier part has usually faulted in already.
    """

    GROW_LIMIT = 1 << 20

    def __init__(self, buffers: PartBuffers) -> None:
        self.buffers = buffers
        self.buf = bytearray()  # while small: exactly the bytes; once pooled: a part-sized buffer
        self.size = 0

    def fill(self, data: bytes | bytearray | memoryview, limit: int) -> int:
        """Copy as much of `data` as fits below `limit` (the part size) bytes; returns how many were taken."""
        n = min(len(data), max(0, limit - self.size))
        end = self.size + n
        if end > len(self.buf) and end > self.GROW_LIMIT and limit == self.buffers.size:
            pooled = self.buffers.take()
            pooled[:self.size] = self.buf
            self.buf = pooled
        if end > len(self.buf):
            self.buf += data[:n]
        else:
            memoryview(self.buf)[self.size:end] = data[:n]
        self.size = end
        return n

    def take(self) -> bytearray:
        """The bytes, given away whole; the tail starts empty.

        A full part buffer goes as it is (the taker gives it back to `buffers` once nothing
        uses it); a part buffer not full (a file's last part) is copied out and reused at once,
        since a request body must be exactly the part."""
        part = self.buf
        if self.size != len(part):
            part = self.buf[:self.size]
            self.buffers.give(self.buf)
        self.buf, self.size = bytearray(), 0
        return part

    def clear(self) -> None:
        """Drop what is held; a part buffer goes back for reuse."""
        self.buffers.give(self.take())

    def peek(self, start: int, end: int) -> bytes:
        return bytes(memoryview(self.buf)[start:min(end, self.size)])
