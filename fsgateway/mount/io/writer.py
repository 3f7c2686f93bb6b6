"""Write path: data written to a file until it is complete in the bucket.

A `DirtyFile` holds the not-yet-committed content of one file in one of three
states: a `StreamUpload` (a new file written by appends, streamed as a
multipart upload while it is written, `stream.py`), a `StagedFile` (a local
staging file for any other write, `staged.py`), or `Failed` (data was lost on
the way: every later operation gets its errno). The first write that is not
an append turns a stream into a staged file: `StreamUpload.to_staged` returns
the new object and the holder swaps it in. Checks of sizes and ETags are in
`upload.py`; the locking rules in CONCURRENCY.md.
"""

from __future__ import annotations

import errno
import logging
import time
from dataclasses import dataclass

import trio

from fsgateway.mount import metrics
from fsgateway.mount.io.staged import StagedFile
from fsgateway.mount.io.staging import StagingArea
from fsgateway.mount.io.stream import StreamTail, StreamUpload
from fsgateway.mount.io.upload import Committed, UploadContext, WriteError
from fsgateway.store.client import StoreError

__all__ = ["Committed", "DirtyFile", "Failed", "StagingArea", "StreamTail", "UploadContext", "WriteError"]

log = logging.getLogger("fsgateway.writer")


@dataclass(frozen=True)
class Failed:
    """Written data that can no longer reach the bucket: every operation fails with `errno`."""

    error: BaseException
    errno: int
    size: int


class DirtyFile:
    """The not-yet-committed content of one file, shared by its open handles.

    One lock (`lock`) orders every operation on it, including the switch from stream to
    staged and the commit; the stream's background part tasks take no lock (they report
    through the stream's own fields, see CONCURRENCY.md).
    """

    def __init__(self, ctx: UploadContext, state: StreamUpload | StagedFile | None = None) -> None:
        self.ctx = ctx
        self.lock = trio.Lock()
        self.state: StreamUpload | StagedFile | Failed = StreamUpload(ctx) if state is None else state
        self.closed = False
        metrics.UPLOADS_IN_FLIGHT.inc()

    @classmethod
    async def from_object(cls, ctx: UploadContext, key: str, size: int, etag: str, sha256: str | None) -> DirtyFile:
        """A staged copy of an existing object (checked against `sha256`, ours), for modifying it in place."""
        return cls(ctx, await StagedFile.from_object(ctx, key, size, etag, sha256))

    @property
    def size(self) -> int:
        return self.state.size

    @property
    def error(self) -> BaseException | None:
        """Why the data can no longer be committed, or None."""
        state = self.state
        return state.error if isinstance(state, Failed | StreamUpload) else None

    # ------------------------------------------------------------ states
    async def _live(self) -> StreamUpload | StagedFile:
        """The current state; a failure (also one a background part task reported) raises its errno."""
        state = self.state
        if isinstance(state, StreamUpload) and state.error is not None:
            state = await self._fail(state.error)
        if isinstance(state, Failed):
            raise WriteError(state.errno, f"upload failed earlier: {state.error}")
        return state

    async def _fail(self, exc: BaseException) -> Failed:
        """Enter `Failed`: the data is lost, so a stream's upload is aborted and local state let go at once.

        Counted as a failed upload here, once, whether a commit or a background part failed
        (with a small `write_buffer_size` a write is often the first to see a part's failure).
        """
        state = self.state
        if isinstance(state, Failed):
            return state
        metrics.UPLOADS.labels("error").inc()
        log.error("upload failed, its data is lost: %s", exc)
        if isinstance(state, StreamUpload):
            await state.abort()
        state.discard_now()
        failed = self.state = Failed(exc, getattr(exc, "errno", None) or errno.EIO, state.size)
        return failed

    async def _staged(self, stream: StreamUpload) -> StagedFile:
        """Switch to a staged file. ENOSPC (`cache_size`, the disk) leaves the stream as it was; any other
        failure leaves the file `Failed` (its parts were consumed)."""
        try:
            staged = await stream.to_staged()
        except BaseException:
            if stream.error is not None:
                await self._fail(stream.error)
            raise
        self.state = staged
        return staged

    # ------------------------------------------------------------ file operations
    async def write(self, off: int, data: bytes) -> int:
        async with self.lock:
            state = await self._live()
            if isinstance(state, StreamUpload):
                if off == state.size:
                    try:
                        await state.append(data)
                    finally:
                        if state.error is not None:
                            await self._fail(state.error)
                    return len(data)
                state = await self._staged(state)
            state.put(off, data)
            return len(data)

    async def read(self, off: int, size: int) -> bytes:
        async with self.lock:
            state = await self._live()
            end = min(state.size, off + size)
            if off >= end:
                return b""
            if isinstance(state, StreamUpload):
                data = state.read_tail(off, end)
                if data is not None:
                    return data
                state = await self._staged(state)
            return state.read(off, end)

    async def truncate(self, size: int) -> None:
        async with self.lock:
            state = await self._live()
            if size == state.size:
                return
            if isinstance(state, StreamUpload):
                if size == 0 and state.empty():
                    return
                state = await self._staged(state)
            state.truncate(size)

    async def commit(self, key: str, metadata: dict[str, str], content_type: str) -> Committed:
        """Make the object complete at `key`; on return it is in the bucket, or this raised.

        A failed commit leaves the file `Failed`. A cancelled one does too when streaming (its
        parts were consumed); a staged file stays as it was, to be committed again.
        """
        async with self.lock:
            state = await self._live()
            t0 = time.monotonic()
            try:
                result = await state.commit(key, metadata, content_type)
            except (StoreError, WriteError, OSError) as exc:
                log.error("upload of %s failed: %s", key, exc)
                await self._fail(exc)
                raise WriteError(getattr(exc, "errno", None) or errno.EIO, str(exc)) from exc
            except BaseException as exc:
                if isinstance(state, StreamUpload):
                    await self._fail(exc)
                raise
            metrics.UPLOADS.labels("ok").inc()
            metrics.UPLOAD_SECONDS.observe(time.monotonic() - t0)
            return result

    # ------------------------------------------------------------ teardown
    def discard_now(self) -> None:
        """Drop local state (staging file, memory); the caller aborts remote uploads (`discard`)."""
        state = self.state
        if not isinstance(state, Failed):
            state.discard_now()
        if not self.closed:
            self.closed = True
            metrics.UPLOADS_IN_FLIGHT.dec()

    async def discard(self) -> None:
        """Drop everything: a stream's staging upload is aborted, local state let go."""
        if isinstance(self.state, StreamUpload):
            await self.state.abort()
        self.discard_now()
