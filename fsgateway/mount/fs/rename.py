"""Renames: a file is a server-side copy and a delete; a directory, every key below it (copies first).

Both files' locks are taken in inode order, so a rename waits for commits in
progress on either and two renames never deadlock.
"""

from __future__ import annotations

import errno
import time
from contextlib import AsyncExitStack
from dataclasses import replace
from functools import partial

from fsgateway.formats import reserved
from fsgateway.formats.keys import KEY_MAX
from fsgateway.formats.s3format import DIR_CONTENT_TYPE, content_type_for, encode_metadata
from fsgateway.mount.fs.context import FsContext, FsError
from fsgateway.mount.fs.files import OpenFiles
from fsgateway.mount.fs.inodes import Node
from fsgateway.mount.fs.names import Remote
from fsgateway.mount.fs.namespace import Namespace
from fsgateway.store.client import ObjectInfo
from fsgateway.store.concurrency import gather
from fsgateway.store.errors import GatewayError


class Renamer:
    def __init__(self, ctx: FsContext, namespace: Namespace, files: OpenFiles) -> None:
        self.ctx = ctx
        self.namespace = namespace
        self.files = files

    async def rename(self, old_parent: int, old_name: str, new_parent: int, new_name: str,
                     noreplace: bool) -> None:
        ctx = self.ctx
        ctx.check_writable()
        src_dir, dst_dir = ctx.dir(old_parent), ctx.dir(new_parent)
        src = await self.namespace.resolve(src_dir, ctx.name(old_name))
        if src is None:
            raise FsError(errno.ENOENT)
        new_name = ctx.new_name(new_name)
        dst = await self.namespace.resolve(dst_dir, new_name)
        if dst is src:
            return
        if dst is not None:
            if noreplace:
                raise FsError(errno.EEXIST)
            if dst.is_dir and not src.is_dir:
                raise FsError(errno.EISDIR)
            if src.is_dir and not dst.is_dir:
                raise FsError(errno.ENOTDIR)
            if dst.is_dir and not await self.namespace.dir_is_empty(dst):
                raise FsError(errno.ENOTEMPTY)
        new_key = ctx.dir_prefix(dst_dir) + new_name
        async with AsyncExitStack() as locks:
            # Commits in progress on either file finish first; inode order rules out deadlock.
            for n in sorted([src] if dst is None else [src, dst], key=lambda n: n.ino):
                await locks.enter_async_context(n.lock)
            # A renamed entry's ctime moves (as on Linux): stored with a file, kept in memory for a directory.
            if src.is_dir:
                src.attrs = replace(src.attrs, ctime_ns=time.time_ns())
                await self._rename_dir(src, dst, dst_dir, new_key)
            else:
                await self._rename_file(src, dst, new_key)
            # A file not uploaded yet replaces the target only when its commit stores it:
            # until then the bucket keeps the old object, and keeps it if the upload fails.
            ctx.table.move(src, dst_dir, new_name)
            src.version += 1
        ctx.names.removed(src_dir, old_name)
        ctx.names.added(dst_dir, new_name)
        ctx.names.dir(src_dir).entries_changed(-1 if src.is_dir else 0)
        ctx.names.dir(dst_dir).entries_changed(
            (1 if src.is_dir else 0) - (1 if dst is not None and dst.is_dir else 0))

    async def _rename_file(self, src: Node, dst: Node | None, new_key: str) -> None:
        ctx = self.ctx
        kept: ObjectInfo | None = None
        if src.in_bucket and src.dirty is None:
            # The copy replaces the metadata (for the new ctime): start from what is stored, and keep
            # what other tools put there (their metadata, the Content-Type), as s3fs does.
            kept = await ctx.store.head(ctx.key(src))
            if kept is not None:
                ctx.set_remote(src, ctx.remote_from_info(kept, False))
        src.attrs = replace(src.attrs, ctime_ns=time.time_ns())
        if dst is not None and dst.in_bucket:
            await self.files.keep_for_open_handles(dst)
        if not src.in_bucket:
            return
        old_key = ctx.key(src)
        meta = {**(kept.metadata if kept else {}), **encode_metadata(src.attrs, src.sha256)}
        content_type = (kept.content_type if kept else None) or content_type_for(src.attrs.mode)
        etag = await ctx.store.copy(old_key, new_key, src.attrs.size, meta, content_type) or src.etag
        await ctx.store.delete(old_key)
        src.etag = etag
        ctx.names.metadata.discard(old_key)
        ctx.names.metadata.put(new_key, Remote(src.attrs, etag, src.sha256))
        await ctx.announce("rename", new_key, src=old_key, size=src.attrs.size, sha256=src.sha256, etag=etag)

    async def _rename_dir(self, src: Node, dst: Node | None, dst_dir: Node, new_key: str) -> None:
        ctx = self.ctx
        old_prefix = ctx.dir_prefix(src)
        keys = await self._tree_keys(old_prefix)
        if any(len((new_key + "/" + k[len(old_prefix):]).encode("utf-8", "surrogateescape")) > KEY_MAX
               for k, _ in keys):
            raise FsError(errno.ENAMETOOLONG, f"a key below the new name would be over {KEY_MAX} bytes")
        if dst is not None and dst.in_bucket:
            await ctx.store.delete(ctx.dir_prefix(dst))  # the empty target's marker, before the copy
            await ctx.announce("delete", ctx.dir_prefix(dst))
        try:
            moved = await self._rename_tree(old_prefix, new_key + "/", keys)
        except GatewayError:
            ctx.names.dir(dst_dir).forgotten()  # some keys may already exist under the new name
            raise
        await ctx.announce_renames(moved)

    async def _tree_keys(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every key below `prefix`."""
        return [(e.key, e.size) async for page in self.ctx.store.list_all(prefix) for e in page.entries]

    async def _rename_tree(self, old_prefix: str, new_prefix: str, keys: list[tuple[str, int]]
                           ) -> list[tuple[str, str, int]]:
        """Copy every key below old_prefix, then delete the originals (nothing lost if a copy fails).

        Returns (old key, new key, size) of every key moved.
        """
        if any(reserved.is_reserved(key[len(old_prefix):]) for key, _ in keys):
            raise FsError(errno.EPERM, f"{old_prefix} holds the gateway's reserved folder")
        parallel = self.ctx.cfg.parallel
        await gather([partial(self._copy_key, key, new_prefix + key[len(old_prefix):], size)
                      for key, size in keys], limit=parallel)
        await gather([partial(self.ctx.store.delete, key) for key, _ in keys], limit=parallel)
        return [(key, new_prefix + key[len(old_prefix):], size) for key, size in keys]

    async def _copy_key(self, src: str, dst: str, size: int) -> None:
        """Server-side copy; directory markers are re-created (SeaweedFS cannot copy them)."""
        store = self.ctx.store
        if not src.endswith("/"):
            await store.copy(src, dst, size, None, None)
            return
        info = await store.head(src)
        await store.put(dst, b"", info.metadata if info else {}, DIR_CONTENT_TYPE)
