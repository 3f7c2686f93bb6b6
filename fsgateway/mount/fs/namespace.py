"""Name resolution and the namespace operations: lookup, create, mkdir, mknod, symlink, unlink, rmdir.

A name is resolved from the inode table and the name caches when they can answer.
Else one round trip to the bucket: HEAD name, HEAD name/, LIST name/ at once. A miss
in a directory whose names are not known then lists it whole once (when that takes at
most `MISS_LIST_PAGES` LISTs), so that every later miss there for `stat_ttl` costs no
request: a new file in an existing directory then costs its PUT alone. When that listing
expires, the next miss there lists again at once (one LIST, not the probe and then the LIST).
A name that is there costs no LIST in a directory never listed (a cold path walk stays one
round trip per name).
Every change made here tells the name caches, so the next lookup needs no request.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from functools import partial

import trio

from fsgateway.formats import reserved
from fsgateway.formats.keys import Unmappable
from fsgateway.formats.s3format import SPECIAL_KINDS, Attrs, content_type_for, encode_metadata
from fsgateway.mount import metrics
from fsgateway.mount.fs.attributes import Attributes
from fsgateway.mount.fs.context import FsContext, FsError
from fsgateway.mount.fs.files import OpenFiles
from fsgateway.mount.fs.inodes import Node
from fsgateway.mount.fs.listing import Listing
from fsgateway.mount.fs.names import Remote
from fsgateway.store.client import ObjectInfo
from fsgateway.store.concurrency import gather
from fsgateway.store.errors import GatewayError

log = logging.getLogger("fsgateway.core")

MISS_LIST_PAGES = 1  # a miss lists a directory of up to 1,000 entries; a larger one is probed name by name

# Labelled once: every lookup counts one of them.
_ATTR_HIT, _ATTR_MISS, _NEGATIVE_HIT = (metrics.CACHE.labels(cache, result)
                                        for cache, result in (("attr", "hit"), ("attr", "miss"), ("negative", "hit")))


class Namespace:
    def __init__(self, ctx: FsContext, files: OpenFiles, attributes: Attributes, listing: Listing) -> None:
        self.ctx = ctx
        self.files = files
        self.attributes = attributes
        self.listing = listing
        self._learning: dict[int, trio.Event] = {}  # directories being listed for a miss, by inode

    async def _learn_names(self, parent: Node) -> None:
        """After a miss: list `parent` whole once, so that the name caches answer the next misses.

        Trusted as long as a miss is (`negative_ttl`, at most `stat_ttl`): another host's new
        name shows as soon as it would without the listing (CONTRACT.md "Caching"). Not when
        the names are known, or the directory was found too large within that time. Concurrent
        misses in one directory wait for the one listing.
        """
        ctx = self.ctx
        d = ctx.names.dir(parent)
        ttl = min(ctx.cfg.stat_ttl, ctx.cfg.negative_ttl)
        if ttl <= 0 or not d.worth_listing():
            return
        pending = self._learning.get(parent.ino)
        if pending is not None:
            await pending.wait()
            return
        self._learning[parent.ino] = done = trio.Event()
        try:
            if not await self.listing.list_whole(parent, MISS_LIST_PAGES, ttl):
                d.too_large(ttl)
        except GatewayError as e:  # the miss is answered already; the names stay unknown
            log.warning("listing %r after a miss failed: %s", ctx.dir_prefix(parent), e)
        finally:
            del self._learning[parent.ino]
            done.set()

    def _listed_before(self, parent: Node) -> bool:
        """`parent`'s names were known from a listing that has expired, and would be listed again now.

        New files keep arriving in such a directory (the listing was made for a miss, or by a
        readdir): its next miss lists it again first, and the probe follows only if the name is
        there. A directory never listed keeps its one-round-trip probe: a cold path walk does
        not list the directories it passes through.
        """
        d = self.ctx.names.dir(parent)
        return d.names is not None and d.worth_listing()

    # ------------------------------------------------------------------ resolution
    async def _stat_remote(self, parent: Node, name: str) -> Remote | None:
        """HEAD `name`, HEAD `name/` and LIST `name/` at once: one round trip, any producer's layout."""
        ctx = self.ctx
        key = ctx.dir_prefix(parent) + name

        async def probe_dir() -> bool:
            page = await ctx.store.list_page(key + "/", None, delimiter="/", max_keys=1)
            return bool(page.entries or page.prefixes)

        probes: list[Callable[[], Awaitable[ObjectInfo | bool | None]]] = [
            partial(ctx.store.head, key), partial(ctx.store.head, key + "/"), probe_dir]
        file_info, marker, implicit = await gather(probes)
        if isinstance(marker, ObjectInfo):
            return ctx.remote_from_info(marker, True)
        if implicit:
            if file_info is not None:
                ctx.report(Unmappable("shadowed_by_directory", key))
            return Remote(ctx.implicit_dir_attrs())
        if isinstance(file_info, ObjectInfo):
            return ctx.remote_from_info(file_info, False)
        return None

    async def resolve(self, parent: Node, name: str) -> Node | None:
        """The node at parent/name, asking the bucket when the cache cannot answer."""
        ctx = self.ctx
        if reserved.is_reserved_name(name):
            raise FsError(errno.EACCES, f"{name} is reserved for the gateway")
        ctx.checked_key(parent, name)
        child = ctx.table.child(parent, name)
        if child is not None and ctx.fresh(child):
            _ATTR_HIT.inc()
            return child
        if child is None and ctx.names.known_absent(parent, name):
            _NEGATIVE_HIT.inc()
            return None
        _ATTR_MISS.inc()
        if child is None and self._listed_before(parent):
            await self._learn_names(parent)  # one LIST answers this miss too
            if ctx.table.child(parent, name) is None and ctx.names.known_absent(parent, name):
                return None
        remote = await self._stat_remote(parent, name)
        child = ctx.table.child(parent, name)  # may have changed while we waited
        if child is not None and (child.dirty is not None or not child.in_bucket):
            return child
        if remote is None:
            if child is not None:
                ctx.table.detach(child)
            ctx.names.missing(parent, name)
            await self._learn_names(parent)  # the next miss here (the next new file) costs nothing
            return None
        ctx.names.added(parent, name)  # maybe from elsewhere
        if child is None or stat.S_IFMT(child.attrs.mode) != stat.S_IFMT(remote.attrs.mode):
            child = ctx.table.add(parent, name, remote.attrs)
        ctx.set_remote(child, remote)
        return child

    async def lookup(self, parent_ino: int, name: str) -> Node:
        parent = self.ctx.dir(parent_ino)
        if name == ".":
            node = parent
        elif name == "..":
            node = parent.parent or parent
        else:
            found = await self.resolve(parent, self.ctx.name(name))
            if found is None:
                raise FsError(errno.ENOENT)
            node = found
        self.ctx.table.looked_up(node)
        return node

    def forget(self, items: Sequence[tuple[int, int]]) -> None:
        for ino, n in items:
            self.ctx.table.forget(ino, n)

    async def dir_is_empty(self, node: Node) -> bool:
        if any(not c.detached and (not c.in_bucket or c.dirty is not None) for c in node.children.values()):
            return False
        prefix = self.ctx.dir_prefix(node)
        page = await self.ctx.store.list_page(prefix, None, delimiter="/", max_keys=2)
        return not page.prefixes and all(e.key == prefix for e in page.entries)

    # ------------------------------------------------------------------ new entries
    async def _vacant(self, parent_ino: int, name: str) -> tuple[Node, str]:
        """Parent and checked name for a new entry; EEXIST when the name is taken."""
        self.ctx.check_writable()
        parent = self.ctx.dir(parent_ino)
        name = self.ctx.new_name(name)
        if await self.resolve(parent, name) is not None:
            raise FsError(errno.EEXIST)
        return parent, name

    def _entry_added(self, parent: Node, name: str, attrs: Attrs, subdirs: int = 0) -> Node:
        """A new node at parent/name, made by this mount and handed to the kernel."""
        ctx = self.ctx
        node = ctx.table.add(parent, name, attrs)
        ctx.names.added(parent, name)
        ctx.names.dir(parent).entries_changed(subdirs)
        ctx.table.looked_up(node)
        return node

    async def create(self, parent_ino: int, name: str, mode: int, flags: int, uid: int, gid: int
                     ) -> tuple[int, Node]:
        parent, name = await self._vacant(parent_ino, name)
        node = self._entry_added(parent, name, self.ctx.new_attrs(stat.S_IFREG, mode, uid, gid))
        return self.files.created(node, flags), node

    async def mkdir(self, parent_ino: int, name: str, mode: int, uid: int, gid: int) -> Node:
        ctx = self.ctx
        parent, name = await self._vacant(parent_ino, name)
        attrs = ctx.new_attrs(stat.S_IFDIR, mode, uid, gid)
        marker = ctx.checked_key(parent, name, "/")
        kept = ("mode", "uid", "gid")  # a directory the server cannot keep private is refused, not faked
        if self.attributes.dir_metadata_kept is False:
            await self.attributes.check_dir_metadata(marker, attrs, kept)  # known: refused before any write
        etag = await ctx.store.put(marker, b"", encode_metadata(attrs), content_type_for(attrs.mode))
        await ctx.announce("put", marker, size=0, etag=etag)
        try:
            await self.attributes.check_dir_metadata(marker, attrs, kept)
        except GatewayError:
            await ctx.store.delete(marker)  # mkdir failed: no directory is left behind
            await ctx.announce("delete", marker)
            raise
        node = self._entry_added(parent, name, attrs, subdirs=+1)
        ctx.set_remote(node, Remote(attrs))
        ctx.names.dir(node).created_empty(ctx.cfg.stat_ttl)
        return node

    async def symlink(self, parent_ino: int, name: str, target: bytes, uid: int, gid: int) -> Node:
        parent, name = await self._vacant(parent_ino, name)
        attrs = replace(self.ctx.new_attrs(stat.S_IFLNK, 0o777, uid, gid), size=len(target))
        node = await self._put_entry(parent, name, attrs, target)
        node.symlink_target = target
        return node

    async def _put_entry(self, parent: Node, name: str, attrs: Attrs, body: bytes) -> Node:
        """A small object made whole in one PUT (symlink, FIFO, socket, device) and its new node."""
        ctx = self.ctx
        key = ctx.dir_prefix(parent) + name
        etag = await ctx.store.put(key, body, encode_metadata(attrs), content_type_for(attrs.mode))
        await ctx.announce("put", key, size=len(body), etag=etag)
        node = self._entry_added(parent, name, attrs)
        ctx.set_remote(node, Remote(attrs, etag))
        return node

    async def mknod(self, parent_ino: int, name: str, mode: int, rdev: int, uid: int, gid: int) -> Node:
        """A FIFO, socket or device is an empty object whose mode carries the type, as s3fs stores it."""
        kind = stat.S_IFMT(mode)
        if kind in SPECIAL_KINDS:
            parent, name = await self._vacant(parent_ino, name)
            attrs = replace(self.ctx.new_attrs(kind, mode, uid, gid),
                            rdev=rdev if kind in (stat.S_IFCHR, stat.S_IFBLK) else 0)
            return await self._put_entry(parent, name, attrs, b"")
        if kind not in (0, stat.S_IFREG):
            raise FsError(errno.EINVAL, f"mknod of type {kind:o}")
        fh, node = await self.create(parent_ino, name, mode, os.O_WRONLY, uid, gid)
        try:
            await self.files.fsync(fh)
        except GatewayError:
            node.lookups -= 1  # the kernel never gets this entry
            raise
        finally:
            await self.files.release(fh)
        return node

    async def readlink(self, ino: int) -> bytes:
        node = self.ctx.node(ino)
        if not stat.S_ISLNK(node.attrs.mode):
            raise FsError(errno.EINVAL)
        if node.symlink_target is None:
            node.symlink_target = await self.ctx.store.get(self.ctx.key(node))
        return node.symlink_target

    # ------------------------------------------------------------------ removal
    async def _existing(self, parent_ino: int, name: str, is_dir: bool) -> tuple[Node, Node]:
        """Parent and node of an entry to remove: ENOENT if absent, EISDIR/ENOTDIR if of the other kind."""
        ctx = self.ctx
        ctx.check_writable()
        parent = ctx.dir(parent_ino)
        node = await self.resolve(parent, ctx.name(name))
        if node is None:
            raise FsError(errno.ENOENT)
        if node.is_dir != is_dir:
            raise FsError(errno.ENOTDIR if is_dir else errno.EISDIR)
        return parent, node

    async def unlink(self, parent_ino: int, name: str) -> None:
        ctx = self.ctx
        parent, node = await self._existing(parent_ino, name, is_dir=False)
        async with node.lock:  # waits for a commit in progress, so the file cannot come back
            ctx.names.metadata.discard(ctx.key(node))
            if node.in_bucket:
                await self.files.keep_for_open_handles(node)
                await ctx.store.delete(ctx.key(node))
                await ctx.announce("delete", ctx.key(node))
            ctx.table.detach(node)
            node.attrs = replace(node.attrs, ctime_ns=time.time_ns())  # its link count fell to 0
        ctx.names.removed(parent, name)
        ctx.names.dir(parent).entries_changed()

    async def rmdir(self, parent_ino: int, name: str) -> None:
        ctx = self.ctx
        parent, node = await self._existing(parent_ino, name, is_dir=True)
        if not await self.dir_is_empty(node):
            raise FsError(errno.ENOTEMPTY)
        await ctx.store.delete(ctx.dir_prefix(node))
        await ctx.announce("delete", ctx.dir_prefix(node))
        ctx.table.detach(node)
        ctx.names.removed(parent, name)
        ctx.names.dir(parent).entries_changed(-1)
