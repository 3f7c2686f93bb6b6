"""What every part of the filesystem shares: configuration, the store, the inode table, the name caches, the feed.

Also the few rules they all apply the same way: a node's key, name checks, how a
node takes what the bucket says about it, and how a change is announced in the feed.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from dataclasses import replace
from typing import Unpack

import trio

from fsgateway.formats import reserved
from fsgateway.formats.feed import EventFields
from fsgateway.formats.keys import KEY_MAX, Unmappable, name_problem
from fsgateway.formats.s3format import SHA256_META, Attrs, Defaults, decode_attrs
from fsgateway.mount import metrics
from fsgateway.mount.fs.inodes import InodeTable, Node
from fsgateway.mount.fs.names import NameCaches, Remote
from fsgateway.mount.options import Config
from fsgateway.store import deadline
from fsgateway.store.client import ObjectInfo, ObjectStore
from fsgateway.store.errors import GatewayError
from fsgateway.store.feedwriter import FeedWriter

log = logging.getLogger("fsgateway.core")

#: Largest file size: what a multipart upload of `multipart_size` parts (10,000 at most) can hold,
#: and never over S3's 5 TiB object limit.
MAX_OBJECT = 5 << 40
MAX_PARTS = 10_000


class FsError(GatewayError):
    """A POSIX answer decided by the filesystem itself (ENOENT, EEXIST, ENOTEMPTY, ...)."""


class SpoiledPages(GatewayError):
    """EIO for a read that failed the file's checksum: the kernel may cache bytes of inode `ino` handed
    out before the mismatch showed, which must go (the FUSE layer drops them; no open keeps them)."""

    def __init__(self, ino: int, message: str) -> None:
        super().__init__(errno.EIO, message)
        self.ino = ino


class FsContext:
    def __init__(self, cfg: Config, store: ObjectStore, nursery: trio.Nursery, host_id: str, run_id: str) -> None:
        self.cfg = cfg
        self.store = store
        self.nursery = nursery
        self.defaults = Defaults(uid=cfg.uid if cfg.uid is not None else os.getuid(),
                                 gid=cfg.gid if cfg.gid is not None else os.getgid(),
                                 umask=cfg.umask if cfg.umask is not None else 0o022)
        root = Attrs(self.defaults.mode(stat.S_IFDIR), self.defaults.uid, self.defaults.gid, time.time_ns())
        self.table = InodeTable(root)
        self.names = NameCaches(cfg.negative_ttl, cfg.negative_cache_entries, cfg.metadata_cache_entries)
        self.max_file_size = min(MAX_OBJECT, cfg.multipart_size * MAX_PARTS)
        self._next_fh = 1  # file and directory handles share one sequence
        self._reported: set[str] = set()
        self.feed = FeedWriter(store, host_id, run_id) if cfg.feed else None
        if self.feed is not None:
            nursery.start_soon(self.feed.run)

    # ------------------------------------------------------------------ nodes and keys
    def key(self, node: Node) -> str:
        return self.cfg.prefix + node.path()

    def dir_prefix(self, node: Node) -> str:
        path = node.path()
        return f"{self.cfg.prefix}{path}/" if path else self.cfg.prefix

    def node(self, ino: int) -> Node:
        n = self.table.get(ino)
        if n is None:
            raise FsError(errno.ESTALE)
        return n

    def dir(self, ino: int) -> Node:
        n = self.node(ino)
        if not n.is_dir:
            raise FsError(errno.ENOTDIR)
        return n

    def new_fh(self) -> int:
        self._next_fh += 1
        return self._next_fh

    def checked_key(self, parent: Node, name: str, suffix: str = "") -> str:
        """The key of parent/name (plus `suffix`); ENAMETOOLONG past S3's 1,024 bytes, before any request."""
        key = self.dir_prefix(parent) + name + suffix
        if len(key.encode("utf-8", "surrogateescape")) > KEY_MAX:
            raise FsError(errno.ENAMETOOLONG, f"key longer than {KEY_MAX} bytes")
        return key

    # ------------------------------------------------------------------ names
    def name(self, name: str) -> str:
        problem = name_problem(name.encode("utf-8", "surrogateescape"))
        if problem == "name_too_long":
            raise FsError(errno.ENAMETOOLONG)
        if problem:
            raise FsError(errno.EINVAL, f"invalid name: {problem}")
        return name

    def new_name(self, name: str) -> str:
        """A name to create: valid, and not the gateway's reserved folder (at any depth: see reserved.py)."""
        name = self.name(name)
        if reserved.is_reserved_name(name):
            raise FsError(errno.EPERM, f"{name} is reserved for the gateway")
        return name

    def check_writable(self) -> None:
        if self.cfg.ro:
            raise FsError(errno.EROFS)

    def report(self, problem: Unmappable) -> None:
        metrics.UNMAPPABLE.labels(problem.reason).inc()
        if problem.key not in self._reported and len(self._reported) < 100_000:
            self._reported.add(problem.key)
            log.warning("key cannot be shown as a file name (%s): %r", problem.reason, problem.key)

    # ------------------------------------------------------------------ attributes
    def new_attrs(self, kind: int, mode: int, uid: int, gid: int) -> Attrs:
        return Attrs(kind | stat.S_IMODE(mode), uid, gid, time.time_ns())

    def implicit_dir_attrs(self) -> Attrs:
        """A directory with no marker object (or not HEADed): defaults, dated like the root."""
        return Attrs(self.defaults.mode(stat.S_IFDIR), self.defaults.uid, self.defaults.gid,
                     self.table.root.attrs.mtime_ns)

    def fresh(self, node: Node) -> bool:
        """Its attributes can be answered without asking the bucket."""
        return node.dirty is not None or not node.in_bucket or node.expires > time.monotonic()

    def set_remote(self, node: Node, remote: Remote) -> None:
        """The node shows what the bucket holds (just read, or just written by us)."""
        node.attrs, node.etag, node.sha256 = remote.attrs, remote.etag, remote.sha256
        node.in_bucket = True
        node.remote_at = time.monotonic()
        node.expires = node.remote_at + self.cfg.stat_ttl
        if not node.is_dir:
            self.names.metadata.put(self.key(node), remote)

    def remote_from_info(self, info: ObjectInfo, is_dir_key: bool) -> Remote:
        attrs = decode_attrs(info.metadata, is_dir_key=is_dir_key, content_type=info.content_type,
                             size=info.size, last_modified=info.last_modified, defaults=self.defaults)
        return Remote(attrs, info.etag, info.metadata.get(SHA256_META))

    def visible_attrs(self, node: Node) -> Attrs:
        """Attributes as shown: live size while written; `uid=`, `gid=`, `umask=` applied."""
        a = node.attrs
        if node.dirty is not None:
            a = replace(a, size=node.dirty.size)
        if self.cfg.uid is not None or self.cfg.gid is not None:
            a = replace(a, uid=self.defaults.uid if self.cfg.uid is not None else a.uid,
                        gid=self.defaults.gid if self.cfg.gid is not None else a.gid)
        if self.cfg.umask is not None:
            a = replace(a, mode=a.mode & ~self.cfg.umask)
        changed_ns = self.names.dir(node).changed_ns if node.is_dir else 0
        if changed_ns > min(a.mtime_ns, a.ctime_ns):
            a = replace(a, mtime_ns=max(a.mtime_ns, changed_ns), ctime_ns=max(a.ctime_ns, changed_ns))
        return a

    def nlink(self, node: Node) -> int:
        """2 + subdirectories for a directory (1 when not known: fts's "unknown"); 0 once unlinked."""
        if node.is_dir:
            subdirs = self.names.dir(node).subdirs
            return 2 + subdirs if subdirs is not None else 1
        return 0 if node.detached else 1

    # ------------------------------------------------------------------ the feed
    async def announce(self, op: str, key: str, **fields: Unpack[EventFields]) -> None:
        """Put a change in the feed; returns once it is durable: in the fsync'd local write-ahead log, or stored
        as a journal object when the log is off or full (syncd reads the journals).

        Bounded by the caller's deadline: the change itself is done, and a journal
        that comes later (or never) is caught by syncd's reconcile.
        """
        if self.feed is not None:
            with trio.move_on_at(deadline.current(self.cfg.retry_deadline)) as scope:
                await self.feed.announce(self.feed.event(op, key, **fields))
            if scope.cancelled_caught:
                log.warning("change feed: %s %s not confirmed within retry_deadline", op, key)

    async def announce_renames(self, moved: list[tuple[str, str, int]]) -> None:
        """A directory rename: one event per key moved, all in one journal object (up to 1,000)."""
        if self.feed is not None and moved:
            await self.feed.announce(*(self.feed.event("rename", new, src=old, size=size) for old, new, size in moved))
