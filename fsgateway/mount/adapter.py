"""pyfuse3 `Operations`: translation to and from the core, errno mapping, nothing else."""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Coroutine, Sequence
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar

import pyfuse3
import trio

from fsgateway.formats.s3format import Attrs
from fsgateway.mount import metrics
from fsgateway.mount.fs.context import FsError, SpoiledPages
from fsgateway.mount.fs.core import Filesystem
from fsgateway.mount.fs.inodes import Node
from fsgateway.store import deadline
from fsgateway.store.errors import GatewayError

log = logging.getLogger("fsgateway.fuse")

P = ParamSpec("P")
T = TypeVar("T")
BLOCK = 4096
IO_SIZE = 1 << 20  # st_blksize: cp and cat size their buffers by it


def _decode(name: bytes) -> str:
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise pyfuse3.FUSEError(errno.EILSEQ) from exc


def translate(
    fn: Callable[Concatenate[FuseOperations, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[FuseOperations, P], Coroutine[Any, Any, T]]:
    """Turn FsError into FUSEError, count it, and keep unexpected bugs from killing the mount.

    Typed with ParamSpec so the decorated method keeps its signature, and mypy checks it
    against pyfuse3.Operations."""
    op = fn.__name__

    @wraps(fn)
    async def wrapper(self: FuseOperations, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            with deadline.caller(self.fs.cfg.retry_deadline):  # everything this request does shares it
                return await fn(self, *args, **kwargs)
        except GatewayError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENODATA):  # ordinary answers, not faults
                metrics.FUSE_ERRORS.labels(op, errno.errorcode.get(exc.errno, str(exc.errno))).inc()
            if exc.errno in (errno.EIO, errno.ESTALE, errno.ENOSPC, errno.EACCES):
                log.warning("%s: %s", op, exc)
            raise pyfuse3.FUSEError(exc.errno) from None
        except pyfuse3.FUSEError:
            raise
        except Exception:
            log.exception("internal error in %s", op)
            metrics.FUSE_ERRORS.labels(op, "EIO").inc()
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


async def drop_cached_pages(ino: int) -> None:
    """Have the kernel forget the pages it cached of `ino` (bytes that failed their checksum among them).

    From a worker thread, once the failed read has been answered: the kernel may wait for reads
    of the same file, which this loop must be free to answer."""
    try:
        await trio.to_thread.run_sync(pyfuse3.invalidate_inode, ino, False)
    except OSError as exc:  # ENOENT: the kernel has forgotten the inode already, and its pages with it
        log.debug("invalidating the pages of inode %d: %s", ino, exc)


class FuseOperations(pyfuse3.Operations):
    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, fs: Filesystem, after_init: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.fs = fs
        self.ttl = fs.cfg.stat_ttl
        self.after_init = after_init

    def init(self) -> None:
        """FUSE INIT, answered when this returns: what must follow the kernel's settings is scheduled."""
        if self.after_init is not None:
            self.after_init()

    def _entry(self, node: Node, attrs: Attrs | None = None) -> pyfuse3.EntryAttributes:
        a = attrs or self.fs.visible_attrs(node)
        e = pyfuse3.EntryAttributes()
        e.st_ino = node.ino
        e.generation = 0
        e.entry_timeout = self.ttl
        e.attr_timeout = self.ttl
        e.st_mode = a.mode
        e.st_nlink = self.fs.nlink(node)
        e.st_uid = a.uid
        e.st_gid = a.gid
        e.st_rdev = a.rdev
        e.st_size = a.size
        e.st_blksize = IO_SIZE
        e.st_blocks = (a.size + 511) // 512
        e.st_atime_ns = a.atime_ns
        e.st_mtime_ns = a.mtime_ns
        e.st_ctime_ns = a.ctime_ns
        return e

    @translate
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._entry(await self.fs.lookup(parent_inode, _decode(name)))

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        self.fs.forget(inode_list)

    @translate
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._entry(await self.fs.getattr(inode))

    @translate
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = await self.fs.setattr(  # UTIME_NOW arrives as the current time, UTIME_OMIT as no update
            inode,
            mode=attr.st_mode if fields.update_mode else None,
            uid=attr.st_uid if fields.update_uid else None,
            gid=attr.st_gid if fields.update_gid else None,
            size=attr.st_size if fields.update_size else None,
            atime_ns=attr.st_atime_ns if fields.update_atime else None,
            mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
            fh=fh,
        )
        return self._entry(node)

    @translate
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return await self.fs.readlink(inode)

    @translate
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return await self.fs.opendir(inode)

    @translate
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        def reply(name: str, node: Node, next_id: int) -> bool:
            return pyfuse3.readdir_reply(token, name.encode("utf-8"), self._entry(node), next_id)

        await self.fs.readdir(fh, start_id, reply)

    async def releasedir(self, fh: int) -> None:
        self.fs.releasedir(fh)

    @translate
    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
                    ) -> pyfuse3.EntryAttributes:
        return self._entry(await self.fs.mkdir(parent_inode, _decode(name), mode, ctx.uid, ctx.gid))

    @translate
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.rmdir(parent_inode, _decode(name))

    @translate
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.unlink(parent_inode, _decode(name))

    @translate
    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
                      ) -> pyfuse3.EntryAttributes:
        return self._entry(await self.fs.symlink(parent_inode, _decode(name), target, ctx.uid, ctx.gid))

    @translate
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes,
                     flags: int, ctx: pyfuse3.RequestContext) -> None:
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise FsError(errno.EINVAL, "RENAME_EXCHANGE cannot be atomic on S3")
        await self.fs.rename(parent_inode_old, _decode(name_old), parent_inode_new, _decode(name_new),
                             noreplace=bool(flags & pyfuse3.RENAME_NOREPLACE))

    @translate
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
                   ) -> pyfuse3.EntryAttributes:
        raise FsError(errno.EPERM, "hard links cannot be stored in a bucket")

    @translate
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
                    ) -> pyfuse3.EntryAttributes:
        return self._entry(await self.fs.mknod(parent_inode, _decode(name), mode, rdev, ctx.uid, ctx.gid))

    @translate
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
                     ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        fh, node = await self.fs.create(parent_inode, _decode(name), mode, flags, ctx.uid, ctx.gid)
        return pyfuse3.FileInfo(fh=fh, keep_cache=False), self._entry(node)

    @translate
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        fh, keep_cache = await self.fs.open(inode, flags)
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep_cache)

    @translate  # pyfuse3 replies with any contiguous buffer (PyObject_GetBuffer); its stub says bytes
    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:  # type: ignore[override]
        try:
            return await self.fs.read(fh, off, size)
        except SpoiledPages as exc:
            self.fs.ctx.nursery.start_soon(drop_cached_pages, exc.ino)
            raise

    @translate
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return await self.fs.write(fh, off, buf)

    @translate
    async def flush(self, fh: int) -> None:
        await self.fs.flush(fh)

    @translate
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self.fs.fsync(fh)

    @translate
    async def release(self, fh: int) -> None:
        await self.fs.release(fh)

    @translate
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = BLOCK
        s.f_blocks = s.f_bfree = s.f_bavail = (1 << 50) // BLOCK  # buckets have no fixed size
        s.f_files = s.f_ffree = s.f_favail = 1 << 32
        s.f_namemax = 255
        return s

    @translate
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        return await self.fs.getxattr(inode, _decode(name))

    @translate
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        return [k.encode() for k in await self.fs.listxattr(inode)]

    @translate
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.setxattr(inode, _decode(name), value)

    @translate
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.fs.removexattr(inode, _decode(name))

