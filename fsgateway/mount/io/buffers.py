"""Part-sized buffers reused from one part to the next, and let go when writes stop.

A new part buffer is fresh mapped memory (`memory.tune_allocator`): each first
write to one of its 4 KiB pages faults and the kernel zeroes the page. Filling
parts that way cost 0.2 s of the event loop per 256 MiB written, ten times the
copy itself. A part's buffer comes back here when its upload and its hashes are
done, and the next part is copied into pages that are already there. At most
`keep` buffers wait (the part tokens' count, so the write path's bound is
unchanged); they are unmapped once no part has come or gone for `idle` seconds,
so a mount at rest holds none.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio


class PartBuffers:
    """A free list of `size`-byte bytearrays."""

    def __init__(self, size: int, keep: int, idle: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.keep = keep
        self.idle = idle
        self.clock = clock
        self.free: list[bytearray] = []
        self.last_use = 0.0

    def take(self) -> bytearray:
        """A buffer of `size` bytes; its content is left over: the caller overwrites what it uses."""
        self.last_use = self.clock()
        return self.free.pop() if self.free else bytearray(self.size)

    def give(self, buf: bytearray) -> bool:
        """Return a buffer that nothing uses any more; True if it was kept for reuse."""
        self.last_use = self.clock()
        if len(buf) != self.size or len(self.free) >= self.keep:
            return False
        self.free.append(buf)
        return True

    def expire(self) -> None:
        """Drop the free buffers if no buffer was taken or given for `idle` seconds."""
        if self.free and self.clock() >= self.last_use + self.idle:
            self.free.clear()


async def expire_idle(buffers: PartBuffers) -> None:
    """For the mount's life: every `idle` seconds, unmap what waits unused."""
    while True:
        await trio.sleep(buffers.idle)
        buffers.expire()
