"""Read path: ranged GETs in fixed chunks with read-ahead, checked against our checksum.

Reads are served from `chunk_size` pieces fetched with ranged GETs pinned to
the ETag seen at open (a concurrent overwrite gives ESTALE instead of a mix of
two versions). While reads move forward, chunks ahead of them are fetched in
parallel; with the chunk being read and the one before it (kept for reads that
arrive slightly out of order) a reader holds at most `read_ahead` plus one
chunk, each received straight into its buffer. The buffer of a chunk the window
has left is kept (one spare) for the next fetch: a new one costs a fresh
mapping, faulted in and zeroed page by page. A chunk a read waits for is never
evicted under it, even when a concurrent read (the kernel sends several at once)
has moved the window away: evicted on arrival, it was fetched again, forever.
Chunks are hashed in order as they arrive, in a worker thread (the loop serves
FUSE requests meanwhile); when the object carries our SHA-256, the read that
hands out its last bytes waits for the whole object to have gone through, and a
mismatch fails it with EIO (logged and counted). A read waits until the chunks
before its own went through the hash before it moves the window: the kernel
sends a sequential reader's reads several at once, and under CPU load they ran
ahead of the hash, which then switched itself off to bound memory, so large
files were handed out unchecked. Only a skipped or failed chunk turns it off.

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


class ContentMismatch(ReadError):
    """The object's bytes do not match its stored SHA-256 (EIO): what was handed out before is suspect."""


@dataclass
class _Chunk:
    done: trio.Event = field(default_factory=trio.Event)
    data: bytearray = field(default_factory=bytearray)
    error: StoreError | None = None
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)  # its fetch; the reader's close cancels it

    def ok(self) -> bool:
        return self.done.is_set() and self.error is None


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
        self.waited: dict[int, int] = {}  # chunk -> reads that want it: never evicted under them; coming for the hash
        self.hasher = hashlib.sha256() if sha256 else None
        self.hash_next = 0  # chunks before it went through the hasher
        self.hashing: _Chunk | None = None  # the chunk a worker thread is hashing
        self.hash_moved = trio.Event()  # set (and replaced) when hashing advanced or stopped, or its next chunk started
        self.spare: bytearray | None = None  # an evicted chunk's buffer, for the next fetch
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
            if index == self.hash_next:
                self._wake_hash_waiters()  # a read held back for the hash may wait for this chunk to start
            into = None
            if (index + 1) * self.chunk_size <= self.size:  # a whole chunk: the spare buffer fits
                into, self.spare = self.spare, None
            self.nursery.start_soon(self._fetch, index, chunk, into)
        return chunk

    async def _fetch(self, index: int, chunk: _Chunk, into: bytearray | None) -> None:
        """Fetch a chunk, into `into` if given: lost if this fails or is cancelled (its thread may still fill it)."""
        start = index * self.chunk_size
        end = min(self.size, start + self.chunk_size)
        try:
            # read-ahead outlives the read that started it: a deadline of its own, the reader's cancel scope
            with chunk.scope, deadline.own(self.retry_deadline):
                chunk.data = await self.store.get_buffer(self.key, start, end, self.etag, into)
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
        """Hash the chunks next in order that have arrived, unless that is under way already."""
        if self.hasher is not None and self.hashing is None and not self.closed:
            chunk = self.chunks.get(self.hash_next)
            if chunk is not None and chunk.ok():
                self.hashing = chunk
                self.nursery.start_soon(self._hash_in_order, self.hasher, chunk)

    async def _hash_in_order(self, hasher: hashlib._Hash, chunk: _Chunk) -> None:
        """Feed chunks to `hasher` in order in a worker thread; compare when the whole object went through.

        Only this task updates the hasher, one chunk at a time. It stops at the
        first chunk not yet arrived (its fetch starts it again), or once the
        hasher was dropped (`_evict`, a jump, `close`).
        """
        try:
            while True:
                await trio.to_thread.run_sync(hasher.update, chunk.data)
                if self.hasher is not hasher:
                    return
                self.hash_next += 1
                self._wake_hash_waiters()
                if self.hash_next == self._n_chunks():
                    self._compare(hasher.hexdigest())
                    return
                if self.closed or (nxt := self.chunks.get(self.hash_next)) is None or not nxt.ok():
                    return
                self.hashing = chunk = nxt
        finally:
            self.hashing = None
            self._wake_hash_waiters()

    def _compare(self, digest: str) -> None:
        if digest != self.sha256:
            self.corrupt = True
            metrics.CHECKSUM_MISMATCHES.inc()
            log.error("checksum mismatch reading %s: SHA-256 %s, metadata says %s", self.key, digest, self.sha256)
        self.hasher = None

    def _wake_hash_waiters(self) -> None:
        self.hash_moved.set()
        self.hash_moved = trio.Event()

    def _skipped(self, index: int) -> bool:
        """Chunk `index` failed, or is neither fetched nor coming (no read waits for it): the hash cannot pass it."""
        chunk = self.chunks.get(index)
        if chunk is None:
            return index not in self.waited
        return chunk.done.is_set() and chunk.error is not None

    async def _hashed_up_to(self, target: int) -> None:
        """Wait until the chunks before `target` went through the hasher, as long as they are fetched or coming.

        A skipped chunk leaves nothing to wait for: the bytes go out unchecked,
        as for random reads (and `_hash_within_reach` turns the hash off).
        """
        while self.hasher is not None and self.hash_next < target:
            if self._skipped(self.hash_next):
                return
            chunk = self.chunks.get(self.hash_next)
            if chunk is None:
                await self.hash_moved.wait()  # the read waiting for it starts it, or gives up
            elif not chunk.done.is_set():
                await chunk.done.wait()
            else:
                self._advance_hash()  # normally under way already: started when the chunk arrived
                await self.hash_moved.wait()

    async def _hash_within_reach(self, first: int) -> None:
        """Hold a read back until the chunks before `first` went through the hash, or switch the hash off.

        The hash goes in order, so every chunk from the next one to hash on stays
        in memory: a read that moved the window further (the kernel sends a
        sequential reader's reads several at once) would hold more than the
        window. It waits while every chunk in between is fetched or coming; a
        skipped one means in-order verification is no longer possible, and the
        hash is off.
        """
        while self.hasher is not None and self.hash_next < first:
            if any(self._skipped(i) for i in range(self.hash_next, first)):
                self.hasher = None
                return
            await self._hashed_up_to(first)

    async def read(self, off: int, size: int) -> bytes | memoryview:
        """Bytes [off, off+size); a zero-copy view when they lie in one chunk (pyfuse3 takes any buffer)."""
        end = min(self.size, off + size)
        if off >= end:
            return b""
        first, last = off // self.chunk_size, (end - 1) // self.chunk_size
        span = range(first, last + 1)
        for index in span:
            self.waited[index] = self.waited.get(index, 0) + 1
        try:
            await self._hash_within_reach(first)
            if first in (self.last_index, self.last_index + 1) or first == 0:
                self.ahead = min(self.max_ahead, self.ahead * 2)
            else:
                self.ahead = 1  # a jump: random access, stop reading ahead
            self.last_index = last
            self.current = first
            for index in range(first, min(self._n_chunks(), max(last, first + self.ahead) + 1)):
                self._start(index)
            chunks = await self._ready(first, last)
        finally:
            for index in span:
                if self.waited[index] == 1:
                    del self.waited[index]
                else:
                    self.waited[index] -= 1
            if self.hash_next in span:
                self._wake_hash_waiters()  # a wait for this chunk to start must not outlive the read that would
        if self.corrupt:
            raise ContentMismatch(errno.EIO, f"{self.key}: content does not match its stored SHA-256")
        out = []
        for index, chunk in zip(range(first, last + 1), chunks, strict=True):
            lo = max(off, index * self.chunk_size) - index * self.chunk_size
            hi = min(end, (index + 1) * self.chunk_size) - index * self.chunk_size
            out.append(memoryview(chunk.data)[lo:hi])
        reply = b"".join(out) if len(out) > 1 else out[0]
        # A view of a chunk's buffer: pyfuse3 copies it to /dev/fuse as this returns, before another task runs
        # (one that could evict the chunk and refill its buffer)
        self._evict(first)
        return reply

    async def _ready(self, first: int, last: int) -> list[_Chunk]:
        """Chunks `first`..`last`, arrived, checked after the last await: none was evicted (its buffer reused).

        With the hash on, the chunks before the previous one have been hashed, and
        with the object's last chunk among them, the whole object has been
        compared with its SHA-256.
        """
        while True:
            for index in range(first, last + 1):
                chunk = self._start(index)  # a concurrent read may have evicted it or dropped a failure
                if not chunk.done.is_set():
                    await chunk.done.wait()
                if chunk.error is not None:
                    if self.chunks.get(index) is chunk:
                        del self.chunks[index]  # let a later read try again
                    raise ReadError(chunk.error.errno, str(chunk.error))
            if self.hasher is not None:
                # all of it before the last bytes go out; else hashing keeps up (only the previous chunk
                # may wait for it), so the chunks kept for it stay within the window
                await self._hashed_up_to(self._n_chunks() if last == self._n_chunks() - 1 else first - 1)
            chunks = [c for index in range(first, last + 1) if (c := self.chunks.get(index)) is not None and c.ok()]
            if len(chunks) == last - first + 1:
                return chunks

    def _evict(self, current: int) -> None:
        keep = range(current - 1, current + self.max_ahead + 1)  # the previous, the current, the window
        for index in [i for i in self.chunks if i not in keep]:
            if index < current and self.hasher is not None and index >= self.hash_next:
                continue  # still needed for in-order hashing
            if index in self.waited:
                continue  # a concurrent read waits for it: evicted, it would be fetched again, and again
            chunk = self.chunks[index]
            if chunk.done.is_set():
                del self.chunks[index]
                if chunk.ok() and chunk is not self.hashing and len(chunk.data) == self.chunk_size:
                    self.spare = chunk.data

    def close(self) -> None:
        """Cancel the fetches under way (their GETs are abandoned at once) and let every chunk go."""
        self.closed = True
        for chunk in self.chunks.values():
            chunk.scope.cancel()
        self.chunks.clear()
        self.spare = None
        self.hasher = None
        self._wake_hash_waiters()  # a read held back for the hash gets EBADF now, like one waiting for a chunk
