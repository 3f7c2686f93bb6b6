"""Read path: ranged GETs in fixed chunks with read-ahead, checked against our checksum.

Reads are served from `chunk_size` pieces fetched with ranged GETs pinned to
the ETag seen at open (a concurrent overwrite gives ESTALE instead of a mix of
two versions). While reads move forward, chunks ahead of them are fetched in
parallel; with the chunk being read and the one before it (kept for reads that
arrive slightly out of order) a reader holds at most `read_ahead` plus one
chunk, each fetched straight into its own buffer. Chunks are hashed in order as
they arrive; when the whole object has gone through and it carries our SHA-256,
a mismatch fails the read with EIO (and is logged and counted) before the last
bytes are handed out.

Every fetch runs under a cancel scope of its reader: `close()` (the handle is
released, or a commit of this mount starts the reader over) cancels the
fetches still under way at once, and a closed reader starts none.
"""

from __future__ import annotations

import errno
import hashlib
import logging
from dataclasses import dataclass, field

import trio

from fsgateway.mount import metrics
from fsgateway.store import deadline
from fsgateway.store.client import ObjectStore, StoreError
from fsgateway.store.errors import GatewayError

log = logging.getLogger("fsgateway.reader")


class ReadError(GatewayError):
    """A read-path failure (short read, checksum mismatch) with its errno."""


@dataclass
class _Chunk:
    done: trio.Event = field(default_factory=trio.Event)
    data: bytes | bytearray = b""
    error: StoreError | None = None
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)  # its fetch; the reader's close cancels it


class ObjectReader:
    """Reads of one open object; one per file handle. Its fetches run in `nursery` until `close()`."""

    def __init__(self, store: ObjectStore, nursery: trio.Nursery, key: str, size: int, etag: str,
                 sha256: str | None, chunk_size: int, read_ahead: int) -> None:
        self.store = store
        self.nursery = nursery
        self.retry_deadline = store.settings.retry_deadline
        self.key = key
        self.size = size
        self.etag = etag or None
        self.sha256 = sha256
        self.chunk_size = chunk_size
        self.max_ahead = max(1, read_ahead // chunk_size - 1)  # + the current and the previous chunk
        self.ahead = 1
        self.last_index = -1
        self.current = 0  # the first chunk of the latest read: the window is around it
        self.chunks: dict[int, _Chunk] = {}
        self.hasher = hashlib.sha256() if sha256 else None
        self.hash_next = 0
        self.corrupt = False
        self.closed = False

    def _n_chunks(self) -> int:
        return (self.size + self.chunk_size - 1) // self.chunk_size

    def _start(self, index: int) -> _Chunk:
        if self.closed:
            raise ReadError(errno.EBADF, f"{self.key}: read after close")
        chunk = self.chunks.get(index)
        if chunk is None:
            chunk = self.chunks[index] = _Chunk()
            self.nursery.start_soon(self._fetch, index, chunk)
        return chunk

    async def _fetch(self, index: int, chunk: _Chunk) -> None:
        start = index * self.chunk_size
        end = min(self.size, start + self.chunk_size)
        try:
            # read-ahead outlives the read that started it: a deadline of its own, the reader's cancel scope
            with chunk.scope, deadline.own(self.retry_deadline):
                chunk.data = await self.store.get_buffer(self.key, start, end, self.etag)
                if len(chunk.data) != end - start:
                    raise ReadError(errno.EIO, f"short ranged GET of {self.key}: {len(chunk.data)} != {end - start}")
            if chunk.scope.cancelled_caught:
                chunk.error = StoreError("get", self.key, ReadError(errno.EBADF, "reader closed"), errno.EBADF)
        except StoreError as exc:
            chunk.error = exc
        except Exception as exc:  # reported to the reader as EIO; never crashes the mount
            chunk.error = StoreError("get", self.key, exc, getattr(exc, "errno", None) or errno.EIO)
        finally:
            chunk.done.set()
        if self.closed:
            return
        self._advance_hash()
        self._evict(self.current)  # fetched for a window that has moved on: let it go now

    def _advance_hash(self) -> None:
        """Hash chunks in order as they arrive; compare when the whole object went through."""
        if self.hasher is None:
            return
        while (c := self.chunks.get(self.hash_next)) is not None and c.done.is_set() and c.error is None:
            self.hasher.update(c.data)
            self.hash_next += 1
        if self.hash_next == self._n_chunks():
            if self.hasher.hexdigest() != self.sha256:
                self.corrupt = True
                metrics.CHECKSUM_MISMATCHES.inc()
                log.error("checksum mismatch reading %s: SHA-256 %s, metadata says %s",
                          self.key, self.hasher.hexdigest(), self.sha256)
            self.hasher = None

    async def read(self, off: int, size: int) -> bytes | memoryview:
        """Bytes [off, off+size); a zero-copy view when they lie in one chunk (pyfuse3 takes any buffer)."""
        end = min(self.size, off + size)
        if off >= end:
            return b""
        first, last = off // self.chunk_size, (end - 1) // self.chunk_size
        if first in (self.last_index, self.last_index + 1) or first == 0:
            self.ahead = min(self.max_ahead, self.ahead * 2)
        else:
            self.ahead = 1  # a jump: random access, stop reading ahead
            if self.hasher is not None and first > self.hash_next + self.max_ahead:
                self.hasher = None  # in-order verification is no longer possible
        self.last_index = last
        self.current = first
        for index in range(first, min(self._n_chunks(), max(last, first + self.ahead) + 1)):
            self._start(index)
        out = []
        for index in range(first, last + 1):
            chunk = self._start(index)  # a concurrent read may have evicted it or dropped a failure
            await chunk.done.wait()
            if chunk.error is not None:
                self.chunks.pop(index, None)  # let a later read try again
                raise ReadError(chunk.error.errno, str(chunk.error))
            lo = max(off, index * self.chunk_size) - index * self.chunk_size
            hi = min(end, (index + 1) * self.chunk_size) - index * self.chunk_size
            out.append(memoryview(chunk.data)[lo:hi])
        if self.corrupt:
            raise ReadError(errno.EIO, f"{self.key}: content does not match its stored SHA-256")
        self._evict(first)
        return b"".join(out) if len(out) > 1 else out[0]

    def _evict(self, current: int) -> None:
        if self.hasher is not None and current - self.hash_next > self.max_ahead:
            self.hasher = None  # a chunk was skipped: in-order verification is off, memory stays bounded
        keep = range(current - 1, current + self.max_ahead + 1)  # the previous, the current, the window
        for index in [i for i in self.chunks if i not in keep]:
            if index < current and self.hasher is not None and index >= self.hash_next:
                continue  # still needed for in-order hashing
            if self.chunks[index].done.is_set():
                del self.chunks[index]

    def close(self) -> None:
        """Cancel the fetches under way (their GETs are abandoned at once) and let every chunk go."""
        self.closed = True
        for chunk in self.chunks.values():
            chunk.scope.cancel()
        self.chunks.clear()
