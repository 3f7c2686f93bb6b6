"""Attributes and extended attributes: getattr, setattr (chmod, chown, truncate, utimensat), user.* xattrs.

Owns what the mount learned about the server's directory markers (`dir_metadata_kept`).
Stored attributes are rewritten by a self-copy (a file) or a new marker (a directory),
under the node's lock so they never race a commit of the same file.
"""

from __future__ import annotations

import errno
import logging
import stat
import time
from dataclasses import replace

from fsgateway.formats.s3format import (
    DIR_CONTENT_TYPE,
    METADATA_LIMIT,
    Attrs,
    content_type_for,
    encode_metadata,
    metadata_size,
)
from fsgateway.mount.fs.context import FsContext, FsError
from fsgateway.mount.fs.files import OpenFiles
from fsgateway.mount.fs.inodes import Node
from fsgateway.mount.fs.names import Remote
from fsgateway.store.errors import GatewayError

log = logging.getLogger("fsgateway.core")

XATTR_PREFIX = "user.fsgateway."  # read-only attributes the gateway shows; other `user.*` ones are stored


class Attributes:
    def __init__(self, ctx: FsContext, files: OpenFiles) -> None:
        self.ctx = ctx
        self.files = files
        # Does the server keep user metadata on `dir/` objects? None until a write shows it (SeaweedFS: no).
        self.dir_metadata_kept: bool | None = None

    async def getattr(self, ino: int) -> Node:
        ctx = self.ctx
        node = ctx.node(ino)
        if node.is_dir or ctx.fresh(node) or node.detached:
            return node
        info = await ctx.store.head(ctx.key(node))
        if info is not None:
            ctx.set_remote(node, ctx.remote_from_info(info, False))
        return node

    async def load_metadata(self, node: Node) -> None:
        """Listed attributes are defaults, old ones may be stale: take what the bucket stores (one HEAD)."""
        ctx = self.ctx
        if (node.dirty is not None or not node.in_bucket or node.detached or node is ctx.table.root
                or node.remote_at + ctx.cfg.stat_ttl >= time.monotonic()):
            return
        info = await ctx.store.head(ctx.key(node) + ("/" if node.is_dir else ""))
        if info is not None:
            ctx.set_remote(node, ctx.remote_from_info(info, node.is_dir))

    async def setattr(self, ino: int, *, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                      size: int | None = None, atime_ns: int | None = None, mtime_ns: int | None = None,
                      fh: int | None = None) -> Node:
        """chmod, chown, truncate, utimensat; ctime moves with any of them and is stored with the rest.

        An ftruncate arrives with its descriptor's `fh`: that descriptor's close then commits it.
        """
        ctx = self.ctx
        ctx.check_writable()
        node = ctx.node(ino)
        if size is not None and node.is_dir:
            raise FsError(errno.EISDIR)
        if size is not None and size > ctx.max_file_size:
            raise FsError(errno.EFBIG, f"{size} bytes is more than one object can hold here ({ctx.max_file_size})")
        changed = tuple(f for f, v in (("mode", mode), ("uid", uid), ("gid", gid), ("atime_ns", atime_ns),
                                       ("mtime_ns", mtime_ns)) if v is not None)
        if not changed and size is None:
            return node
        async with node.lock:
            await self.load_metadata(node)
            a = node.attrs
            now = time.time_ns()
            new = replace(
                a,
                mode=stat.S_IFMT(a.mode) | stat.S_IMODE(mode) if mode is not None else a.mode,
                uid=uid if uid is not None else a.uid,
                gid=gid if gid is not None else a.gid,
                atime_ns=atime_ns if atime_ns is not None else a.atime_ns,
                mtime_ns=mtime_ns if mtime_ns is not None else (now if size is not None else a.mtime_ns),
                ctime_ns=now,
            )
            if size is not None:
                node.attrs = new
                dirty = await self.files.ensure_dirty(node, truncating_to=size)
                await dirty.truncate(size)
                if fh is not None:
                    self.files.handle(fh).wrote = True
            if node.dirty is not None:
                node.attrs = new
                if node.open_count == 0:
                    try:
                        await self.files.commit(node)
                    except GatewayError:
                        await self.files.abandon(node)  # nobody holds it open: nothing could retry it
                        raise
                return node
            if node.detached:
                node.attrs = new
                return node
            await self._store_attrs(node, new, changed)
        return node

    async def _store_attrs(self, node: Node, new: Attrs, changed: tuple[str, ...]) -> None:
        """Make `new` the node's attributes in the bucket; on failure the node shows what is stored."""
        if node is self.ctx.table.root:
            if all(getattr(new, f) == getattr(node.attrs, f) for f in changed):
                return  # asks for what it shows already
            raise FsError(errno.EPERM, "the mount's root has no object to keep attributes in")
        old, node.attrs = node.attrs, new
        try:
            await self._rewrite_metadata(node, changed)
        except GatewayError:
            node.attrs = old
            raise
        if node.is_dir and "mtime_ns" in changed:
            self.ctx.names.dir(node).changed_ns = 0  # an explicit mtime wins over our own entry changes

    async def check_dir_metadata(self, marker: str, wanted: Attrs, changed: tuple[str, ...]) -> None:
        """Refuse (EPERM; ENOTSUP for xattrs) what a `dir/` marker written with `wanted` would not keep.

        SeaweedFS drops all user metadata on `dir/` objects, so there a directory shows
        the defaults. The first marker written is read back to learn whether this server
        keeps it; after that this makes no request.
        """
        if self.dir_metadata_kept:
            return
        if self.dir_metadata_kept is None:
            info = await self.ctx.store.head(marker)
            if info is not None and any(k.lower() == "mode" for k in info.metadata):
                self.dir_metadata_kept = True
                return
            log.warning("the server keeps no user metadata on directory objects: a directory's mode, owner, "
                        "times and xattrs stay the defaults, and changes to them are refused")
            self.dir_metadata_kept = False
        plain = self.ctx.implicit_dir_attrs()
        lost = [f for f in changed if getattr(plain, f) != getattr(wanted, f)]
        if lost:
            code = errno.ENOTSUP if lost == ["xattrs"] else errno.EPERM
            raise FsError(code, f"the server keeps no metadata on directory objects ({', '.join(lost)})")

    async def _rewrite_metadata(self, node: Node, changed: tuple[str, ...] = ()) -> None:
        """Store changed attributes: a self-copy with new metadata (directories: a new marker, checked)."""
        ctx = self.ctx
        if node.is_dir:
            marker = ctx.key(node) + "/"
            if self.dir_metadata_kept is False:
                await self.check_dir_metadata(marker, node.attrs, changed)  # known: refused before any write
            etag = await ctx.store.put(marker, b"", encode_metadata(node.attrs), DIR_CONTENT_TYPE)
            node.in_bucket = True
            await ctx.announce("meta", marker, size=0, etag=etag)
            await self.check_dir_metadata(marker, node.attrs, changed)
            return
        meta = encode_metadata(node.attrs, node.sha256)
        key = ctx.key(node)
        etag = await ctx.store.copy(key, key, node.attrs.size, meta, content_type_for(node.attrs.mode))
        if not etag:  # RGW answers a multipart completion with an empty ETag
            info = await ctx.store.head(key)
            etag = info.etag if info else ""
        ctx.set_remote(node, Remote(node.attrs, etag, node.sha256))
        await ctx.announce("meta", key, size=node.attrs.size, sha256=node.sha256, etag=etag)

    # ------------------------------------------------------------------ extended attributes
    def _gateway_xattrs(self, node: Node) -> dict[str, bytes]:
        """Read-only attributes that expose what the bucket knows: key, ETag, our SHA-256."""
        out = {XATTR_PREFIX + "key": self.ctx.key(node).encode()}
        if node.etag:
            out[XATTR_PREFIX + "etag"] = node.etag.strip('"').encode()
        if node.sha256:
            out[XATTR_PREFIX + "sha256"] = node.sha256.encode()
        return out

    async def getxattr(self, ino: int, name: str) -> bytes:
        """Other namespaces (security.*, system.posix_acl_*) answer ENODATA at once: `ls -l` asks for each file."""
        node = self.ctx.node(ino)
        if name.startswith(XATTR_PREFIX):
            value = self._gateway_xattrs(node).get(name)
        elif name.startswith("user."):
            await self.load_metadata(node)
            value = dict(node.attrs.xattrs).get(name)
        else:
            value = None
        if value is None:
            raise FsError(errno.ENODATA)
        return value

    async def listxattr(self, ino: int) -> list[str]:
        node = self.ctx.node(ino)
        await self.load_metadata(node)
        return [*self._gateway_xattrs(node), *(name for name, _ in node.attrs.xattrs)]

    async def setxattr(self, ino: int, name: str, value: bytes) -> None:
        await self._change_xattr(ino, name, value)

    async def removexattr(self, ino: int, name: str) -> None:
        await self._change_xattr(ino, name, None)

    async def _change_xattr(self, ino: int, name: str, value: bytes | None) -> None:
        """Set (None: remove) one `user.*` attribute, stored in the object's metadata as s3fs's use_xattr does."""
        self.ctx.check_writable()
        if not name.startswith("user."):
            raise FsError(errno.ENOTSUP, f"only user.* attributes can be stored ({name})")  # POSIX ACLs too
        if name.startswith(XATTR_PREFIX):
            raise FsError(errno.EPERM, f"{name} is read-only")
        node = self.ctx.node(ino)
        async with node.lock:
            await self.load_metadata(node)
            xattrs = dict(node.attrs.xattrs)
            if value is not None:
                xattrs[name] = value
            elif xattrs.pop(name, None) is None:
                raise FsError(errno.ENODATA)
            new = replace(node.attrs, xattrs=tuple(sorted(xattrs.items())), ctime_ns=time.time_ns())
            if metadata_size(encode_metadata(new, "0" * 64)) > METADATA_LIMIT:
                raise FsError(errno.ENOSPC, f"an object's user metadata is limited to {METADATA_LIMIT} bytes")
            if node.dirty is not None or node.detached:
                node.attrs = new  # stored by the commit of the open file (or nowhere: it is unlinked)
                return
            await self._store_attrs(node, new, ("xattrs",))
