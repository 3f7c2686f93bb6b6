"""Open files: file handles, a file's pending data (`node.dirty`) and its commits.

`node.lock` orders writes, truncates, commits, unlink and rename of one file, so a
commit never races the data it uploads or the name it uses. The methods here that
take a node and touch `node.dirty` expect that lock held; the ones that take a
handle take it themselves.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial

from fsgateway.formats.feed import EventFields
from fsgateway.formats.s3format import content_type_for, encode_metadata
from fsgateway.mount.fs.context import FsContext, FsError, SpoiledPages
from fsgateway.mount.fs.inodes import Node
from fsgateway.mount.fs.names import Remote, same_etag
from fsgateway.mount.io.reader import ContentMismatch, ObjectReader
from fsgateway.mount.io.writer import Committed, DirtyFile, StagingArea, UploadContext
from fsgateway.store.concurrency import gather
from fsgateway.store.errors import GatewayError

log = logging.getLogger("fsgateway.core")

READ_CHUNK = 4 << 20  # one ranged GET; the default read_ahead is a few of these (options.py)


def _event(result: Committed) -> EventFields:
    """The feed event's fields for a stored file."""
    return {"size": result.size, "sha256": result.sha256, "etag": result.etag}


@dataclass
class Handle:
    node: Node
    writable: bool
    reader: ObjectReader | None = None
    reader_version: int = -1
    wrote: bool = False  # its flush commits: written or ftruncated through since the last flush (or O_CREAT|O_RDONLY)


class OpenFiles:
    def __init__(self, ctx: FsContext, host_id: str, run_id: str) -> None:
        self.ctx = ctx
        cfg = ctx.cfg
        staging = StagingArea(os.path.join(cfg.cache_dir, "staging", host_id), cfg.cache_size)
        self.uploads = UploadContext(ctx.store, staging, cfg.multipart_size, cfg.parallel, cfg.write_buffer_size,
                                     ctx.nursery, host_id, run_id, self._announce_put)
        self.handles: dict[int, Handle] = {}
        self.closing = False  # set at unmount: no new writes are accepted

    def handle(self, fh: int) -> Handle:
        h = self.handles.get(fh)
        if h is None:
            raise FsError(errno.EBADF)
        return h

    def created(self, node: Node, flags: int) -> int:
        """A new, empty file made by create(): its pending data and its first handle."""
        node.in_bucket = False
        node.dirty = DirtyFile(self.uploads)
        node.open_count += 1
        fh = self.ctx.new_fh()
        # O_CREAT|O_RDONLY can only make an empty file: its close stores it. A writer's close
        # stores what it wrote (an empty file whose writer wrote nothing: at the last close).
        self.handles[fh] = Handle(node, writable=True, wrote=flags & os.O_ACCMODE == os.O_RDONLY)
        return fh

    async def open(self, ino: int, flags: int) -> tuple[int, bool]:
        """Returns (fh, keep_cache). Revalidates with one HEAD unless the file is being written."""
        ctx = self.ctx
        node = ctx.node(ino)
        if node.is_dir:
            raise FsError(errno.EISDIR)
        writable = (flags & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)
        if writable or flags & os.O_TRUNC:
            ctx.check_writable()
        keep_cache = True
        async with node.lock:
            if node.dirty is None and node.in_bucket and not node.detached:
                info = await ctx.store.head(ctx.key(node))
                if info is None:
                    ctx.table.detach(node)
                    raise FsError(errno.ENOENT)
                keep_cache = same_etag(info.etag, node.etag) and not node.pages_spoiled
                node.pages_spoiled = False  # this open drops the kernel's pages of it
                ctx.set_remote(node, ctx.remote_from_info(info, False))
                if stat.S_ISLNK(node.attrs.mode):
                    raise FsError(errno.ELOOP)
            if flags & os.O_TRUNC and writable:
                dirty = await self.ensure_dirty(node, truncating_to=0)
                await dirty.truncate(0)
                now = time.time_ns()
                node.attrs = replace(node.attrs, mtime_ns=now, ctime_ns=now)
                keep_cache = False
            node.open_count += 1
        fh = ctx.new_fh()
        self.handles[fh] = Handle(node, writable)
        return fh, keep_cache

    async def ensure_dirty(self, node: Node, truncating_to: int | None = None) -> DirtyFile:
        if node.dirty is None:
            if truncating_to == 0 or node.attrs.size == 0 or not node.in_bucket:
                node.dirty = DirtyFile(self.uploads)
            else:
                node.dirty = await DirtyFile.from_object(self.uploads, self.ctx.key(node), node.attrs.size,
                                                         node.etag, node.sha256)
        return node.dirty

    async def drop_dirty(self, node: Node) -> None:
        dirty, node.dirty = node.dirty, None
        if dirty is not None:
            await dirty.discard()

    async def commit(self, node: Node) -> None:
        """Store what is pending under the file's name. A detached file (unlinked, replaced) has no
        name: its pending data stays with its open handles, and goes at the last close."""
        dirty = node.dirty
        if dirty is None:
            return
        if node.detached:
            if node.open_count == 0:
                await self.drop_dirty(node)
            return
        ctx = self.ctx
        key = ctx.key(node)  # the feed names the key the object was stored under
        attrs = replace(node.attrs, size=dirty.size)
        result = await dirty.commit(key, encode_metadata(attrs), content_type_for(attrs.mode))
        node.dirty = None
        node.version += 1
        dirty.discard_now()
        ctx.set_remote(node, Remote(attrs, result.etag, result.sha256))
        if not result.announced:  # a single PUT's was made durable while the PUT was under way
            await ctx.announce("put", key, **_event(result))

    async def _announce_put(self, key: str, expected: Committed, put: Callable[[], Awaitable[Committed]]) -> Committed:
        """A single PUT: what it stores is known before it is sent, so its feed record is written and
        fsync'd meanwhile (the feed holds the record back until the PUT is settled). close() returns
        when both are done: the object complete in the bucket and its announcement durable."""
        feed = self.ctx.feed
        if feed is None:
            return await put()
        result, recorded = await feed.record_during(put, feed.event("put", key, **_event(expected)))
        if not recorded or result.etag != expected.etag:  # the log refused it; an ETag not the MD5 (SSE-KMS)
            await self.ctx.announce("put", key, **_event(result))
        return replace(result, announced=True)

    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:
        h = self.handle(fh)
        node = h.node
        if node.dirty is not None:
            async with node.lock:
                if node.dirty is not None:
                    return await node.dirty.read(off, size)
        ctx = self.ctx
        if h.reader is None or h.reader_version != node.version:
            # Pinned to the ETag of its first read: a remote overwrite mid-read is ESTALE, never a mix.
            # Only this mount's own commits start it over.
            if h.reader is not None:
                h.reader.close()
            h.reader = ObjectReader(ctx.store, ctx.nursery, ctx.key(node), node.attrs.size, node.etag,
                                    node.sha256, READ_CHUNK, ctx.cfg.read_ahead)
            h.reader_version = node.version
        h.reader.key = ctx.key(node)  # follows renames of the file or its directories
        try:
            return await h.reader.read(off, size)
        except ContentMismatch as exc:
            node.pages_spoiled = True
            raise SpoiledPages(node.ino, str(exc)) from exc

    async def write(self, fh: int, off: int, data: bytes) -> int:
        h = self.handle(fh)
        if not h.writable:
            raise FsError(errno.EBADF)
        if self.closing:
            raise FsError(errno.EROFS, "unmounting: open files have been committed")
        if off + len(data) > self.ctx.max_file_size:
            raise FsError(errno.EFBIG, f"a file here holds at most {self.ctx.max_file_size} bytes")
        async with h.node.lock:
            dirty = await self.ensure_dirty(h.node)
            h.wrote = True
            n = await dirty.write(off, data)
            now = time.time_ns()
            h.node.attrs = replace(h.node.attrs, mtime_ns=now, ctime_ns=now)
        return n

    async def flush(self, fh: int) -> None:
        """close() of a descriptor: commit what was written through it.

        A descriptor that wrote nothing commits nothing: its close may be that of a
        dup (`dd of=`, a shell's `>`) while the real writer goes on, and an empty or
        truncated intermediate state must never replace what the name holds. What
        such a handle left pending (a new empty file, an O_TRUNC) is committed at
        the last close.
        """
        h = self.handle(fh)
        if h.wrote and h.node.dirty is not None:
            async with h.node.lock:
                await self.commit(h.node)
        h.wrote = False

    async def fsync(self, fh: int) -> None:
        h = self.handle(fh)
        if h.node.dirty is not None:
            async with h.node.lock:
                await self.commit(h.node)

    async def release(self, fh: int) -> None:
        h = self.handles.pop(fh, None)
        if h is None:
            return
        if h.reader is not None:
            h.reader.close()
        node = h.node
        try:
            if node.open_count == 1 and node.dirty is not None:
                async with node.lock:
                    await self.commit_or_drop(node)
        finally:
            self.ctx.table.release(node)

    async def commit_or_drop(self, node: Node) -> None:
        """Last close: commit what is pending; data that cannot be committed any more is logged lost."""
        dirty = node.dirty
        if dirty is None:
            return
        if node.detached:
            await self.drop_dirty(node)  # unlinked or replaced while open: its data goes with it
            return
        if dirty.error is not None:
            log.error("data written to %s is lost: its upload failed (%s)", self.ctx.key(node), dirty.error)
            await self.abandon(node)
            return
        try:
            await self.commit(node)
        except GatewayError as exc:
            log.error("data written to %s is lost: %s", self.ctx.key(node), exc)
            await self.abandon(node)

    async def abandon(self, node: Node) -> None:
        """Drop data that can no longer be committed; a file that never reached the bucket goes away.

        Its name may still hold an object it was renamed over: the next lookup asks the bucket.
        """
        await self.drop_dirty(node)
        node.etag = ""  # the kernel may cache the lost bytes: the next open must not keep that cache
        node.expires = 0.0
        if not node.in_bucket and node.parent is not None and not node.detached:
            parent, name = node.parent, node.name
            self.ctx.table.detach(node)
            self.ctx.names.forgotten(parent, name)

    async def keep_for_open_handles(self, node: Node) -> None:
        """Before a file's object goes (unlink, rename over it): a local copy for its open handles.

        As on a local filesystem, they keep reading (and writing) the whole content until the
        last close. The copy is a staging file, bounded by `cache_size`; past it, or if the
        download fails, the handles keep only what they already read (logged).
        """
        if node.open_count == 0 or node.dirty is not None or stat.S_ISLNK(node.attrs.mode):
            return
        try:
            await self.ensure_dirty(node)
        except GatewayError as exc:
            log.warning("%s goes while open: its open handles keep only what they read (%s)", self.ctx.key(node), exc)

    async def flush_all(self) -> None:
        """Commit every dirty file (clean unmount); failures are logged, none is skipped."""
        self.closing = True

        async def commit(node: Node) -> None:
            async with node.lock:
                await self.commit_or_drop(node)

        nodes = {h.node for h in self.handles.values() if h.node.dirty is not None}
        await gather([partial(commit, n) for n in nodes], limit=self.ctx.cfg.parallel)
