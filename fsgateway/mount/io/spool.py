"""A streamed file's full parts on local disk while they upload, so their memory is free at once.

As s3fs does (bench/PROFILE.md): a full part is written to the file's spool file
(`pwrite`: the page cache) in a worker thread together with its MD5, its buffer
goes back to the pool, and the part's request streams its body from the file
(`FileSlice`, never read back into one `bytes`). Memory (`write_buffer_size`)
then bounds only the parts being filled and written out, not the parts in
flight: up to `parallel` per file, and `max_connections` for the whole mount.

The spool file is a ring of part-sized slots, each counted against `cache_size`
from its first use until the file is removed. A slot is used again only once its
part's request has answered: one abandoned at its deadline may still be reading
it. No free slot, no room in `cache_size`, or a write that fails (ENOSPC, EIO):
the part stays in memory and uploads from there, as it would without a spool,
and a write never fails for want of spool. The file is opened by its path for
each write and each request, so removing it (commit, abort, failure) never
leaves a thread with a descriptor number that may be reused; what a crashed run
left is removed at start with the staging files (`StagingArea`).
"""

from __future__ import annotations

import contextlib
import logging
import os

import trio

from fsgateway.mount.io.upload import UploadContext, WriteError, md5_hex
from fsgateway.store.client import FileSlice, write_exactly

log = logging.getLogger("fsgateway.writer")


class PartSpool:
    """The spool file of one streamed file. Slots are taken and given back on the event loop only."""

    def __init__(self, ctx: UploadContext) -> None:
        self.ctx = ctx
        self.path: str | None = None
        self.slots = 0  # slots made so far, each counted against cache_size
        self.free: list[int] = []
        self.broken = False  # a write failed: the rest of this file's parts stay in memory

    def take(self) -> int | None:
        """A slot for the next part (and one of the mount's), or None: that part stays in memory."""
        if self.broken:
            return None
        try:
            self.ctx.spool_slots.acquire_nowait()
        except trio.WouldBlock:
            return None
        if self.free:
            return self.free.pop()
        if self.slots < self.ctx.parallel and self._new_slot():
            self.slots += 1
            return self.slots - 1
        self.ctx.spool_slots.release()
        return None

    def _new_slot(self) -> bool:
        """Room in `cache_size` for one more slot (and the file, made on first use); False if there is none."""
        try:
            self.ctx.staging.reserve(self.ctx.part_size)
        except WriteError:
            return False
        if self.path is None:
            try:
                self.path, fd = self.ctx.staging.create("spool-")
            except WriteError as exc:
                self.ctx.staging.reserve(-self.ctx.part_size)
                self._broke(exc)
                return False
            os.close(fd)
        return True

    def _broke(self, exc: BaseException) -> None:
        self.broken = True
        log.warning("spool: %s; the parts of this file stay in memory", exc)

    def give(self, slot: int, reusable: bool) -> None:
        """A part's request is over; its slot is used again only if that request answered."""
        self.ctx.spool_slots.release()
        if reusable:
            self.free.append(slot)

    async def write(self, slot: int, data: bytearray | bytes) -> tuple[str, FileSlice | None]:
        """The part's MD5, and the part written to its slot, in one worker thread; returns the MD5 and the
        body to send from the file, or None if the write failed (the part is then sent from memory)."""
        path, offset = self.path, slot * self.ctx.part_size
        assert path is not None  # a slot exists only with the file

        def write() -> str:
            md5 = md5_hex(data)
            fd = os.open(path, os.O_WRONLY)
            try:
                write_exactly(fd, data, offset)
            finally:
                os.close(fd)
            return md5

        try:
            md5 = await trio.to_thread.run_sync(write)
        except OSError as exc:
            self._broke(exc)
            return await trio.to_thread.run_sync(md5_hex, data), None
        return md5, FileSlice(path, offset, len(data))

    def remove(self) -> None:
        """Remove the file and give its room back (its parts are done or no longer needed)."""
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self.ctx.staging.reserve(-self.slots * self.ctx.part_size)
        self.path, self.slots, self.free = None, 0, []
        self.broken = True
