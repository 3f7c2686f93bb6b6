"""The filesystem core: POSIX semantics over an object store, free of FUSE.

Operations take inode numbers and names and raise `FsError(errno)`; the
pyfuse3 adapter only translates. Caches: node attributes are trusted for
`stat_ttl`, a bounded negative cache remembers recent misses, listings are
one LIST per page (no HEAD per entry), and every open of a file not being
written revalidates with one HEAD. Our own changes update the caches directly.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Unpack

import trio

from fsgateway.formats import reserved
from fsgateway.formats.feed import EventFields
from fsgateway.formats.keys import KEY_MAX, Unmappable, name_problem, split_listing
from fsgateway.formats.s3format import (
    DIR_CONTENT_TYPE,
    METADATA_LIMIT,
    SHA256_META,
    SPECIAL_KINDS,
    Attrs,
    Defaults,
    content_type_for,
    decode_attrs,
    encode_metadata,
    metadata_size,
)
from fsgateway.mount import metrics
from fsgateway.mount.fs.inodes import InodeTable, Node
from fsgateway.mount.io.reader import ObjectReader
from fsgateway.mount.io.writer import DirtyFile, StagingArea, UploadContext
from fsgateway.mount.options import Config
from fsgateway.store import deadline
from fsgateway.store.client import ObjectInfo, ObjectStore
from fsgateway.store.concurrency import gather
from fsgateway.store.errors import GatewayError
from fsgateway.store.feedwriter import FeedWriter

log = logging.getLogger("fsgateway.core")

READ_CHUNK = 8 << 20
MAX_KNOWN_NAMES = 10_000  # larger directories are not remembered whole
XATTR_PREFIX = "user.fsgateway."  # read-only attributes the gateway shows; other `user.*` ones are stored
#: Largest file size: what a multipart upload of `multipart_size` parts (10,000 at most) can hold,
#: and never over S3's 5 TiB object limit.
MAX_OBJECT = 5 << 40
MAX_PARTS = 10_000


class FsError(GatewayError):
    """A POSIX answer decided by the core itself (ENOENT, EEXIST, ENOTEMPTY, ...)."""


@dataclass
class Handle:
    node: Node
    writable: bool
    reader: ObjectReader | None = None
    reader_version: int = -1
    wrote: bool = False  # its flush commits: written or ftruncated through since the last flush (or O_CREAT|O_RDONLY)


@dataclass
class DirHandle:
    node: Node
    entries: list[tuple[str, Attrs, str]] = field(default_factory=list)  # name, listed attrs, etag
    base: int = 0  # index of entries[0] in the whole listing
    names: set[str] | None = field(default_factory=set)  # all names so far (None past MAX_KNOWN_NAMES)
    listed_at: float = 0.0
    names_gen: int = 0  # the directory's names_gen when the listing started
    subdirs: int = 0  # directories listed so far
    token: str | None = None
    started: bool = False
    done: bool = False


class NegativeCache:
    """Recent "no such entry" answers: bounded LRU with a TTL."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._d: OrderedDict[tuple[int, str], float] = OrderedDict()

    def hit(self, parent: int, name: str) -> bool:
        exp = self._d.get((parent, name))
        if exp is None:
            return False
        if exp < time.monotonic():
            del self._d[(parent, name)]
            return False
        return True

    def add(self, parent: int, name: str) -> None:
        if self.ttl <= 0 or self.max_entries <= 0:
            return
        self._d[(parent, name)] = time.monotonic() + self.ttl
        self._d.move_to_end((parent, name))
        while len(self._d) > self.max_entries:
            self._d.popitem(last=False)

    def discard(self, parent: int, name: str) -> None:
        self._d.pop((parent, name), None)


@dataclass(frozen=True)
class Remote:
    """What the bucket says about one name."""

    attrs: Attrs
    etag: str = ""
    sha256: str | None = None


class MetadataCache:
    """Full attributes (from HEAD or our own writes) by key, bounded LRU.

    A listing has no metadata; when the listed ETag and size still match an
    entry here, the listing shows the stored mode, owner, mtime and type (a
    symlink stays a symlink) without a HEAD per entry.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._d: OrderedDict[str, Remote] = OrderedDict()

    def put(self, key: str, remote: Remote) -> None:
        if not remote.etag or self.max_entries <= 0:
            return
        self._d[key] = remote
        self._d.move_to_end(key)
        while len(self._d) > self.max_entries:
            self._d.popitem(last=False)

    def matching(self, key: str, etag: str, size: int) -> Remote | None:
        r = self._d.get(key)
        if r is None or r.etag != etag or r.attrs.size != size:
            return None
        self._d.move_to_end(key)
        return r

    def discard(self, key: str) -> None:
        self._d.pop(key, None)


class Filesystem:
    def __init__(self, cfg: Config, store: ObjectStore, nursery: trio.Nursery, host_id: str, run_id: str) -> None:
        self.cfg = cfg
        self.store = store
        self.nursery = nursery
        self.defaults = Defaults(uid=cfg.uid if cfg.uid is not None else os.getuid(),
                                 gid=cfg.gid if cfg.gid is not None else os.getgid(),
                                 umask=cfg.umask if cfg.umask is not None else 0o022)
        now_ns = time.time_ns()
        root = Attrs(self.defaults.mode(stat.S_IFDIR), self.defaults.uid, self.defaults.gid, now_ns)
        self.table = InodeTable(root)
        self.negative = NegativeCache(cfg.negative_ttl, cfg.negative_cache_entries)
        self.metadata = MetadataCache(cfg.metadata_cache_entries)
        staging = StagingArea(os.path.join(cfg.cache_dir, "staging", host_id), cfg.cache_size)
        self.uploads = UploadContext(store, staging, cfg.multipart_size, cfg.parallel, cfg.write_buffer_size,
                                     nursery, host_id, run_id)
        self.handles: dict[int, Handle] = {}
        self.dir_handles: dict[int, DirHandle] = {}
        self._next_fh = 1
        self._reported: set[str] = set()
        self.closing = False  # set at unmount: no new writes are accepted
        # Does the server keep user metadata on `dir/` objects? None until a write shows it (SeaweedFS: no).
        self.dir_metadata_kept: bool | None = None
        self.max_file_size = min(MAX_OBJECT, cfg.multipart_size * MAX_PARTS)
        self.feed = FeedWriter(store, host_id, run_id) if cfg.feed else None
        if self.feed is not None:
            nursery.start_soon(self.feed.run)

    # ------------------------------------------------------------------ helpers
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

    def _dir(self, ino: int) -> Node:
        n = self.node(ino)
        if not n.is_dir:
            raise FsError(errno.ENOTDIR)
        return n

    def _fresh(self, node: Node) -> bool:
        return node.dirty is not None or not node.in_bucket or node.expires > time.monotonic()

    def _checked_key(self, parent: Node, name: str, suffix: str = "") -> str:
        """The key of parent/name (plus `suffix`); ENAMETOOLONG past S3's 1,024 bytes, before any request."""
        key = self.dir_prefix(parent) + name + suffix
        if len(key.encode("utf-8", "surrogateescape")) > KEY_MAX:
            raise FsError(errno.ENAMETOOLONG, f"key longer than {KEY_MAX} bytes")
        return key

    def _entries_changed(self, parent: Node, subdirs: int = 0) -> None:
        """This mount added or removed an entry of `parent`: its mtime and ctime move.

        Kept in memory only (SEMANTICS.md): storing them would cost a PUT of the
        directory marker for every file created. The count of subdirectories follows.
        """
        parent.entries_changed_ns = time.time_ns()
        if parent.subdirs is not None:
            parent.subdirs = max(0, parent.subdirs + subdirs)

    def nlink(self, node: Node) -> int:
        """2 + subdirectories for a directory (1 when not known: fts's "unknown"); 0 once unlinked."""
        if node.is_dir:
            return 2 + node.subdirs if node.subdirs is not None else 1
        return 0 if node.detached else 1

    async def _vacant(self, parent_ino: int, name: str) -> tuple[Node, str]:
        """Parent and checked name for a new entry; EEXIST when the name is taken."""
        self._check_writable()
        parent = self._dir(parent_ino)
        name = self._new_name(parent, name)
        if await self._resolve(parent, name) is not None:
            raise FsError(errno.EEXIST)
        return parent, name

    def _new_name(self, parent: Node, name: str) -> str:
        """A name to create: valid, and not the gateway's reserved folder (at any depth: see reserved.py)."""
        name = self._name(name)
        if reserved.is_reserved_name(name):
            raise FsError(errno.EPERM, f"{name} is reserved for the gateway")
        return name

    def _name(self, name: str) -> str:
        problem = name_problem(name.encode("utf-8", "surrogateescape"))
        if problem == "name_too_long":
            raise FsError(errno.ENAMETOOLONG)
        if problem:
            raise FsError(errno.EINVAL, f"invalid name: {problem}")
        return name

    def _check_writable(self) -> None:
        if self.cfg.ro:
            raise FsError(errno.EROFS)

    def _fh(self) -> int:
        self._next_fh += 1
        return self._next_fh

    def _new_attrs(self, kind: int, mode: int, uid: int, gid: int) -> Attrs:
        return Attrs(kind | stat.S_IMODE(mode), uid, gid, time.time_ns())

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
        if node.entries_changed_ns > min(a.mtime_ns, a.ctime_ns):
            a = replace(a, mtime_ns=max(a.mtime_ns, node.entries_changed_ns),
                        ctime_ns=max(a.ctime_ns, node.entries_changed_ns))
        return a

    def _implicit_dir_attrs(self) -> Attrs:
        """A directory with no marker object (or not HEADed): defaults, dated like the root."""
        return Attrs(self.defaults.mode(stat.S_IFDIR), self.defaults.uid, self.defaults.gid,
                     self.table.root.attrs.mtime_ns)

    async def _announce(self, op: str, key: str, **fields: Unpack[EventFields]) -> None:
        """Put a change in the feed; returns once it is stored there (syncd reads it).

        Bounded by the caller's deadline: the change itself is done, and a journal
        that comes later (or never) is caught by syncd's reconcile.
        """
        if self.feed is not None:
            with trio.move_on_at(deadline.current(self.cfg.retry_deadline)) as scope:
                await self.feed.announce(self.feed.event(op, key, **fields))
            if scope.cancelled_caught:
                log.warning("change feed: %s %s not confirmed within retry_deadline", op, key)

    def _report(self, problem: Unmappable) -> None:
        metrics.UNMAPPABLE.labels(problem.reason).inc()
        if problem.key not in self._reported and len(self._reported) < 100_000:
            self._reported.add(problem.key)
            log.warning("key cannot be shown as a file name (%s): %r", problem.reason, problem.key)

    def _set_remote(self, node: Node, remote: Remote) -> None:
        node.attrs, node.etag, node.sha256 = remote.attrs, remote.etag, remote.sha256
        node.in_bucket = True
        node.remote_at = time.monotonic()
        node.expires = node.remote_at + self.cfg.stat_ttl
        if not node.is_dir:
            self.metadata.put(self.key(node), remote)

    def _remote_from_info(self, info: ObjectInfo, is_dir_key: bool) -> Remote:
        attrs = decode_attrs(info.metadata, is_dir_key=is_dir_key, content_type=info.content_type,
                             size=info.size, last_modified=info.last_modified, defaults=self.defaults)
        return Remote(attrs, info.etag, info.metadata.get(SHA256_META))

    async def _stat_remote(self, parent: Node, name: str) -> Remote | None:
        """HEAD `name`, HEAD `name/` and LIST `name/` at once: one round trip, any producer's layout."""
        key = self.dir_prefix(parent) + name

        async def probe_dir() -> bool:
            page = await self.store.list_page(key + "/", None, delimiter="/", max_keys=1)
            return bool(page.entries or page.prefixes)

        probes: list[Callable[[], Awaitable[ObjectInfo | bool | None]]] = [
            partial(self.store.head, key), partial(self.store.head, key + "/"), probe_dir]
        file_info, marker, implicit = await gather(probes)
        if isinstance(marker, ObjectInfo):
            return self._remote_from_info(marker, True)
        if implicit:
            if file_info is not None:
                self._report(Unmappable("shadowed_by_directory", key))
            return Remote(self._implicit_dir_attrs())
        if isinstance(file_info, ObjectInfo):
            return self._remote_from_info(file_info, False)
        return None

    def _known_absent(self, parent: Node, name: str) -> bool:
        return parent.names is not None and parent.names_until > time.monotonic() and name not in parent.names

    def _name_added(self, parent: Node, name: str) -> None:
        """A name now exists in `parent`: both name caches learn it."""
        self.negative.discard(parent.ino, name)
        parent.names_gen += 1
        if parent.names is not None:
            parent.names.add(name)
            if len(parent.names) > MAX_KNOWN_NAMES:
                parent.names = None

    def _name_forgotten(self, parent: Node, name: str) -> None:
        """Whether `name` exists in `parent` is no longer known here: the next lookup asks the bucket."""
        self.negative.discard(parent.ino, name)
        parent.names_gen += 1
        parent.names = None

    def _name_removed(self, parent: Node, name: str) -> None:
        """A name no longer exists in `parent`: both name caches learn it."""
        self.negative.add(parent.ino, name)
        parent.names_gen += 1
        if parent.names is not None:
            parent.names.discard(name)

    async def _resolve(self, parent: Node, name: str) -> Node | None:
        """The node at parent/name, asking the bucket when the cache cannot answer."""
        if reserved.is_reserved_name(name):
            raise FsError(errno.EACCES, f"{name} is reserved for the gateway")
        self._checked_key(parent, name)
        child = self.table.child(parent, name)
        if child is not None and self._fresh(child):
            metrics.CACHE.labels("attr", "hit").inc()
            return child
        if child is None and (self.negative.hit(parent.ino, name) or self._known_absent(parent, name)):
            metrics.CACHE.labels("negative", "hit").inc()
            return None
        metrics.CACHE.labels("attr", "miss").inc()
        remote = await self._stat_remote(parent, name)
        child = self.table.child(parent, name)  # may have changed while we waited
        if child is not None and (child.dirty is not None or not child.in_bucket):
            return child
        if remote is None:
            if child is not None:
                self.table.detach(child)
            self._name_removed(parent, name)
            return None
        self._name_added(parent, name)  # maybe from elsewhere
        if child is None or stat.S_IFMT(child.attrs.mode) != stat.S_IFMT(remote.attrs.mode):
            child = self.table.add(parent, name, remote.attrs)
        self._set_remote(child, remote)
        return child

    # ------------------------------------------------------------------ lookup & attributes
    async def lookup(self, parent_ino: int, name: str) -> Node:
        parent = self._dir(parent_ino)
        if name == ".":
            node = parent
        elif name == "..":
            node = parent.parent or parent
        else:
            found = await self._resolve(parent, self._name(name))
            if found is None:
                raise FsError(errno.ENOENT)
            node = found
        node.lookups += 1
        return node

    def forget(self, items: Sequence[tuple[int, int]]) -> None:
        for ino, n in items:
            self.table.forget(ino, n)

    async def getattr(self, ino: int) -> Node:
        node = self.node(ino)
        if node.is_dir or self._fresh(node) or node.detached:
            return node
        info = await self.store.head(self.key(node))
        if info is not None:
            self._set_remote(node, self._remote_from_info(info, False))
        return node

    async def _load_metadata(self, node: Node) -> None:
        """Listed attributes are defaults, old ones may be stale: take what the bucket stores (one HEAD)."""
        if (node.dirty is not None or not node.in_bucket or node.detached or node is self.table.root
                or node.remote_at + self.cfg.stat_ttl >= time.monotonic()):
            return
        info = await self.store.head(self.key(node) + ("/" if node.is_dir else ""))
        if info is not None:
            self._set_remote(node, self._remote_from_info(info, node.is_dir))

    async def setattr(self, ino: int, *, mode: int | None = None, uid: int | None = None, gid: int | None = None,
                      size: int | None = None, atime_ns: int | None = None, mtime_ns: int | None = None,
                      fh: int | None = None) -> Node:
        """chmod, chown, truncate, utimensat; ctime moves with any of them and is stored with the rest.

        An ftruncate arrives with its descriptor's `fh`: that descriptor's close then commits it.
        """
        self._check_writable()
        node = self.node(ino)
        if size is not None and node.is_dir:
            raise FsError(errno.EISDIR)
        if size is not None and size > self.max_file_size:
            raise FsError(errno.EFBIG, f"{size} bytes is more than one object can hold here ({self.max_file_size})")
        changed = tuple(f for f, v in (("mode", mode), ("uid", uid), ("gid", gid), ("atime_ns", atime_ns),
                                       ("mtime_ns", mtime_ns)) if v is not None)
        if not changed and size is None:
            return node
        async with node.lock:
            await self._load_metadata(node)
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
                dirty = await self._ensure_dirty(node, truncating_to=size)
                await dirty.truncate(size)
                if fh is not None:
                    self.handle(fh).wrote = True
            if node.dirty is not None:
                node.attrs = new
                if node.open_count == 0:
                    try:
                        await self._commit(node)
                    except GatewayError:
                        await self._abandon(node)  # nobody holds it open: nothing could retry it
                        raise
                return node
            if node.detached:
                node.attrs = new
                return node
            await self._store_attrs(node, new, changed)
        return node

    async def _store_attrs(self, node: Node, new: Attrs, changed: tuple[str, ...]) -> None:
        """Make `new` the node's attributes in the bucket; on failure the node shows what is stored."""
        if node is self.table.root:
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
            node.entries_changed_ns = 0  # an explicit mtime wins over our own entry changes

    async def _check_dir_metadata(self, marker: str, wanted: Attrs, changed: tuple[str, ...]) -> None:
        """Refuse (EPERM; ENOTSUP for xattrs) what a `dir/` marker written with `wanted` would not keep.

        SeaweedFS drops all user metadata on `dir/` objects, so there a directory shows
        the defaults. The first marker written is read back to learn whether this server
        keeps it; after that this makes no request.
        """
        if self.dir_metadata_kept:
            return
        if self.dir_metadata_kept is None:
            info = await self.store.head(marker)
            if info is not None and any(k.lower() == "mode" for k in info.metadata):
                self.dir_metadata_kept = True
                return
            log.warning("the server keeps no user metadata on directory objects: a directory's mode, owner, "
                        "times and xattrs stay the defaults, and changes to them are refused")
            self.dir_metadata_kept = False
        plain = self._implicit_dir_attrs()
        lost = [f for f in changed if getattr(plain, f) != getattr(wanted, f)]
        if lost:
            code = errno.ENOTSUP if lost == ["xattrs"] else errno.EPERM
            raise FsError(code, f"the server keeps no metadata on directory objects ({', '.join(lost)})")

    async def _rewrite_metadata(self, node: Node, changed: tuple[str, ...] = ()) -> None:
        """Store changed attributes: a self-copy with new metadata (directories: a new marker, checked)."""
        if node.is_dir:
            marker = self.key(node) + "/"
            if self.dir_metadata_kept is False:
                await self._check_dir_metadata(marker, node.attrs, changed)  # known: refused before any write
            etag = await self.store.put(marker, b"", encode_metadata(node.attrs), DIR_CONTENT_TYPE)
            node.in_bucket = True
            await self._announce("meta", marker, size=0, etag=etag)
            await self._check_dir_metadata(marker, node.attrs, changed)
            return
        meta = encode_metadata(node.attrs, node.sha256)
        key = self.key(node)
        etag = await self.store.copy(key, key, node.attrs.size, meta, content_type_for(node.attrs.mode))
        if not etag:  # RGW answers a multipart completion with an empty ETag
            info = await self.store.head(key)
            etag = info.etag if info else ""
        self._set_remote(node, Remote(node.attrs, etag, node.sha256))
        await self._announce("meta", key, size=node.attrs.size, sha256=node.sha256, etag=etag)

    # ------------------------------------------------------------------ directories
    async def opendir(self, ino: int) -> int:
        fh = self._fh()
        self.dir_handles[fh] = DirHandle(self._dir(ino))
        return fh

    def releasedir(self, fh: int) -> None:
        self.dir_handles.pop(fh, None)

    async def _load_page(self, dh: DirHandle) -> None:
        prefix = self.dir_prefix(dh.node)
        if not dh.started:
            dh.listed_at = time.monotonic()
            dh.names_gen = dh.node.names_gen
        page = await self.store.list_page(prefix, dh.token)
        token = page.token
        dh.started = True
        listing = split_listing(prefix, page.entries, page.prefixes,
                                hide_reserved=True)
        for problem in listing.rejected:
            self._report(problem)
        dh.subdirs += len(listing.dirs)
        names = sorted(set(listing.files) | listing.dirs)
        if dh.names is not None:
            dh.names.update(names)
            if len(dh.names) > MAX_KNOWN_NAMES:
                dh.names = None
        for name in names:
            if name in listing.dirs:
                dh.entries.append((name, self._implicit_dir_attrs(), ""))
            else:
                obj = listing.files[name]
                etag = obj.etag
                known = self.metadata.matching(prefix + name, etag, obj.size)
                attrs = known.attrs if known else decode_attrs(
                    None, is_dir_key=False, content_type=None, size=obj.size,
                    last_modified=obj.last_modified, defaults=self.defaults)
                metrics.CACHE.labels("metadata", "hit" if known else "miss").inc()
                dh.entries.append((name, attrs, etag))
        dh.token = token
        if token is None:
            dh.done = True
            if dh.node.names_gen == dh.names_gen:
                dh.node.subdirs = dh.subdirs  # a whole listing, and nothing changed here since it started
            if dh.names is not None and dh.node.names_gen == dh.names_gen:
                # the whole directory as of when the listing started, and nothing changed here since
                dh.node.names = dh.names | {n for n, c in dh.node.children.items() if not c.in_bucket}
                dh.node.names_until = dh.listed_at + self.cfg.stat_ttl
            listed = set(names)
            for name, child in list(dh.node.children.items()):  # created here, not uploaded yet
                if name not in listed and not child.in_bucket and not child.detached:
                    dh.entries.append((name, child.attrs, ""))

    async def readdir_entries(self, fh: int, start: int) -> list[tuple[int, str, Attrs, str]]:
        """Entries from index `start`: (index, name, listed attrs, etag); loads a page if needed."""
        dh = self.dir_handles.get(fh)
        if dh is None:
            raise FsError(errno.EBADF)
        if start < dh.base or (start == 0 and dh.started):
            dh.entries, dh.base, dh.token, dh.done, dh.started = [], 0, None, False, False  # rewind
            dh.subdirs = 0
            dh.names = set()
        while not dh.started or (dh.base + len(dh.entries) <= start and not dh.done):
            dh.base += len(dh.entries)  # pages before `start` are not kept: memory stays one page
            dh.entries = []
            await self._load_page(dh)
        del dh.entries[: max(0, start - dh.base)]
        dh.base = max(dh.base, start)
        return [(dh.base + i, name, attrs, etag) for i, (name, attrs, etag) in enumerate(dh.entries)]

    def entry_node(self, fh: int, name: str, attrs: Attrs, etag: str) -> Node | None:
        """The node for a listed entry (lookup count not yet taken), or None to skip it.

        A page may be served a while after its LIST: a name removed here since is
        skipped, and attributes newer than the listing are kept.
        """
        dh = self.dir_handles.get(fh)
        if dh is None:
            raise FsError(errno.EBADF)
        parent = dh.node
        if self.negative.hit(parent.ino, name):
            return None
        child = self.table.child(parent, name)
        if child is not None and stat.S_IFMT(child.attrs.mode) == stat.S_IFMT(attrs.mode):
            if child.dirty is None and child.in_bucket and not child.is_dir and child.remote_at < dh.listed_at and (
                    child.etag != etag or child.attrs.size != attrs.size):
                child.attrs, child.etag, child.sha256 = attrs, etag, None
                child.remote_at = 0.0  # listed, not read from the bucket's metadata
                child.expires = time.monotonic() + self.cfg.stat_ttl
            return child
        child = self.table.add(parent, name, attrs)
        child.etag = etag
        child.expires = time.monotonic() + self.cfg.stat_ttl
        return child

    async def mkdir(self, parent_ino: int, name: str, mode: int, uid: int, gid: int) -> Node:
        parent, name = await self._vacant(parent_ino, name)
        attrs = self._new_attrs(stat.S_IFDIR, mode, uid, gid)
        marker = self._checked_key(parent, name, "/")
        kept = ("mode", "uid", "gid")  # a directory the server cannot keep private is refused, not faked
        if self.dir_metadata_kept is False:
            await self._check_dir_metadata(marker, attrs, kept)  # known: refused before any write
        etag = await self.store.put(marker, b"", encode_metadata(attrs), content_type_for(attrs.mode))
        await self._announce("put", marker, size=0, etag=etag)
        try:
            await self._check_dir_metadata(marker, attrs, kept)
        except GatewayError:
            await self.store.delete(marker)  # mkdir failed: no directory is left behind
            await self._announce("delete", marker)
            raise
        node = self.table.add(parent, name, attrs)
        self._set_remote(node, Remote(attrs))
        node.names, node.names_until = set(), time.monotonic() + self.cfg.stat_ttl  # known empty
        node.subdirs = 0
        self._name_added(parent, name)
        self._entries_changed(parent, +1)
        node.lookups += 1
        return node

    async def _dir_is_empty(self, node: Node) -> bool:
        if any(not c.detached and (not c.in_bucket or c.dirty is not None) for c in node.children.values()):
            return False
        prefix = self.dir_prefix(node)
        page = await self.store.list_page(prefix, None, delimiter="/", max_keys=2)
        return not page.prefixes and all(e.key == prefix for e in page.entries)

    async def rmdir(self, parent_ino: int, name: str) -> None:
        self._check_writable()
        parent = self._dir(parent_ino)
        node = await self._resolve(parent, self._name(name))
        if node is None:
            raise FsError(errno.ENOENT)
        if not node.is_dir:
            raise FsError(errno.ENOTDIR)
        if not await self._dir_is_empty(node):
            raise FsError(errno.ENOTEMPTY)
        await self.store.delete(self.dir_prefix(node))
        await self._announce("delete", self.dir_prefix(node))
        self.table.detach(node)
        self._name_removed(parent, name)
        self._entries_changed(parent, -1)

    # ------------------------------------------------------------------ files
    async def create(self, parent_ino: int, name: str, mode: int, flags: int, uid: int, gid: int
                     ) -> tuple[int, Node]:
        parent, name = await self._vacant(parent_ino, name)
        node = self.table.add(parent, name, self._new_attrs(stat.S_IFREG, mode, uid, gid))
        node.in_bucket = False
        node.dirty = DirtyFile(self.uploads)
        self._name_added(parent, name)
        self._entries_changed(parent)
        node.lookups += 1
        node.open_count += 1
        fh = self._fh()
        # O_CREAT|O_RDONLY can only make an empty file: its close stores it. A writer's close
        # stores what it wrote (an empty file whose writer wrote nothing: at the last close).
        self.handles[fh] = Handle(node, writable=True, wrote=flags & os.O_ACCMODE == os.O_RDONLY)
        return fh, node

    async def mknod(self, parent_ino: int, name: str, mode: int, rdev: int, uid: int, gid: int) -> Node:
        """A FIFO, socket or device is an empty object whose mode carries the type, as s3fs stores it."""
        kind = stat.S_IFMT(mode)
        if kind in SPECIAL_KINDS:
            parent, name = await self._vacant(parent_ino, name)
            attrs = replace(self._new_attrs(kind, mode, uid, gid),
                            rdev=rdev if kind in (stat.S_IFCHR, stat.S_IFBLK) else 0)
            return await self._put_entry(parent, name, attrs, b"")
        if kind not in (0, stat.S_IFREG):
            raise FsError(errno.EINVAL, f"mknod of type {kind:o}")
        fh, node = await self.create(parent_ino, name, mode, os.O_WRONLY, uid, gid)
        try:
            await self.fsync(fh)
        except GatewayError:
            node.lookups -= 1  # the kernel never gets this entry
            raise
        finally:
            await self.release(fh)
        return node

    async def open(self, ino: int, flags: int) -> tuple[int, bool]:
        """Returns (fh, keep_cache). Revalidates with one HEAD unless the file is being written."""
        node = self.node(ino)
        if node.is_dir:
            raise FsError(errno.EISDIR)
        writable = (flags & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)
        if writable or flags & os.O_TRUNC:
            self._check_writable()
        keep_cache = True
        async with node.lock:
            if node.dirty is None and node.in_bucket and not node.detached:
                info = await self.store.head(self.key(node))
                if info is None:
                    self.table.detach(node)
                    raise FsError(errno.ENOENT)
                keep_cache = info.etag == node.etag
                self._set_remote(node, self._remote_from_info(info, False))
                if stat.S_ISLNK(node.attrs.mode):
                    raise FsError(errno.ELOOP)
            if flags & os.O_TRUNC and writable:
                dirty = await self._ensure_dirty(node, truncating_to=0)
                await dirty.truncate(0)
                now = time.time_ns()
                node.attrs = replace(node.attrs, mtime_ns=now, ctime_ns=now)
                keep_cache = False
            node.open_count += 1
        fh = self._fh()
        self.handles[fh] = Handle(node, writable)
        return fh, keep_cache

    def handle(self, fh: int) -> Handle:
        h = self.handles.get(fh)
        if h is None:
            raise FsError(errno.EBADF)
        return h

    # The methods below that start with an underscore and touch `node.dirty` expect
    # `node.lock` to be held: it orders writes, truncates, commits, unlink and rename
    # of one file, so a commit never races the data it uploads or the name it uses.

    async def _ensure_dirty(self, node: Node, truncating_to: int | None = None) -> DirtyFile:
        if node.dirty is None:
            if truncating_to == 0 or node.attrs.size == 0 or not node.in_bucket:
                node.dirty = DirtyFile(self.uploads)
            else:
                node.dirty = await DirtyFile.from_object(self.uploads, self.key(node), node.attrs.size, node.etag)
        return node.dirty

    async def _drop_dirty(self, node: Node) -> None:
        dirty, node.dirty = node.dirty, None
        if dirty is not None:
            await dirty.discard()

    async def _commit(self, node: Node) -> None:
        """Store what is pending under the file's name. A detached file (unlinked, replaced) has no
        name: its pending data stays with its open handles, and goes at the last close."""
        dirty = node.dirty
        if dirty is None:
            return
        if node.detached:
            if node.open_count == 0:
                await self._drop_dirty(node)
            return
        attrs = replace(node.attrs, size=dirty.size)
        result = await dirty.commit(self.key(node), encode_metadata(attrs), content_type_for(attrs.mode))
        node.dirty = None
        node.version += 1
        dirty.discard_now()
        self._set_remote(node, Remote(attrs, result.etag, result.sha256))
        await self._announce("put", self.key(node), size=result.size, sha256=result.sha256, etag=result.etag)

    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:
        h = self.handle(fh)
        node = h.node
        if node.dirty is not None:
            async with node.lock:
                if node.dirty is not None:
                    return await node.dirty.read(off, size)
        if h.reader is None or h.reader_version != node.version:
            # Pinned to the ETag of its first read: a remote overwrite mid-read is ESTALE, never a mix.
            # Only this mount's own commits start it over.
            if h.reader is not None:
                h.reader.close()
            h.reader = ObjectReader(self.store, self.nursery, self.key(node), node.attrs.size, node.etag,
                                    node.sha256, READ_CHUNK, self.cfg.read_ahead)
            h.reader_version = node.version
        h.reader.key = self.key(node)  # follows renames of the file or its directories
        return await h.reader.read(off, size)

    async def write(self, fh: int, off: int, data: bytes) -> int:
        h = self.handle(fh)
        if not h.writable:
            raise FsError(errno.EBADF)
        if self.closing:
            raise FsError(errno.EROFS, "unmounting: open files have been committed")
        if off + len(data) > self.max_file_size:
            raise FsError(errno.EFBIG, f"a file here holds at most {self.max_file_size} bytes")
        async with h.node.lock:
            dirty = await self._ensure_dirty(h.node)
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
                await self._commit(h.node)
        h.wrote = False

    async def fsync(self, fh: int) -> None:
        h = self.handle(fh)
        if h.node.dirty is not None:
            async with h.node.lock:
                await self._commit(h.node)

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
                    await self._commit_or_drop(node)
        finally:
            self.table.release(node)

    async def _commit_or_drop(self, node: Node) -> None:
        """Last close: commit what is pending; data that cannot be committed any more is logged lost."""
        dirty = node.dirty
        if dirty is None:
            return
        if node.detached:
            await self._drop_dirty(node)  # unlinked or replaced while open: its data goes with it
            return
        if dirty.error is not None:
            log.error("data written to %s is lost: its upload failed (%s)", self.key(node), dirty.error)
            await self._abandon(node)
            return
        try:
            await self._commit(node)
        except GatewayError as exc:
            log.error("data written to %s is lost: %s", self.key(node), exc)
            await self._abandon(node)

    async def _abandon(self, node: Node) -> None:
        """Drop data that can no longer be committed; a file that never reached the bucket goes away.

        Its name may still hold an object it was renamed over: the next lookup asks the bucket.
        """
        await self._drop_dirty(node)
        node.etag = ""  # the kernel may cache the lost bytes: the next open must not keep that cache
        node.expires = 0.0
        if not node.in_bucket and node.parent is not None and not node.detached:
            parent, name = node.parent, node.name
            self.table.detach(node)
            self._name_forgotten(parent, name)

    async def unlink(self, parent_ino: int, name: str) -> None:
        self._check_writable()
        parent = self._dir(parent_ino)
        node = await self._resolve(parent, self._name(name))
        if node is None:
            raise FsError(errno.ENOENT)
        if node.is_dir:
            raise FsError(errno.EISDIR)
        async with node.lock:  # waits for a commit in progress, so the file cannot come back
            self.metadata.discard(self.key(node))
            if node.in_bucket:
                await self._keep_for_open_handles(node)
                await self.store.delete(self.key(node))
                await self._announce("delete", self.key(node))
            self.table.detach(node)
            node.attrs = replace(node.attrs, ctime_ns=time.time_ns())  # its link count fell to 0
        self._name_removed(parent, name)
        self._entries_changed(parent)

    async def _keep_for_open_handles(self, node: Node) -> None:
        """Before a file's object goes (unlink, rename over it): a local copy for its open handles.

        As on a local filesystem, they keep reading (and writing) the whole content until the
        last close. The copy is a staging file, bounded by `cache_size`; past it, or if the
        download fails, the handles keep only what they already read (logged).
        """
        if node.open_count == 0 or node.dirty is not None or stat.S_ISLNK(node.attrs.mode):
            return
        try:
            await self._ensure_dirty(node)
        except GatewayError as exc:
            log.warning("%s goes while open: its open handles keep only what they read (%s)", self.key(node), exc)

    async def symlink(self, parent_ino: int, name: str, target: bytes, uid: int, gid: int) -> Node:
        parent, name = await self._vacant(parent_ino, name)
        attrs = replace(self._new_attrs(stat.S_IFLNK, 0o777, uid, gid), size=len(target))
        node = await self._put_entry(parent, name, attrs, target)
        node.symlink_target = target
        return node

    async def _put_entry(self, parent: Node, name: str, attrs: Attrs, body: bytes) -> Node:
        """A small object made whole in one PUT (symlink, FIFO, socket, device) and its new node."""
        key = self.dir_prefix(parent) + name
        etag = await self.store.put(key, body, encode_metadata(attrs), content_type_for(attrs.mode))
        await self._announce("put", key, size=len(body), etag=etag)
        node = self.table.add(parent, name, attrs)
        self._set_remote(node, Remote(attrs, etag))
        self._name_added(parent, name)
        self._entries_changed(parent)
        node.lookups += 1
        return node

    async def readlink(self, ino: int) -> bytes:
        node = self.node(ino)
        if not stat.S_ISLNK(node.attrs.mode):
            raise FsError(errno.EINVAL)
        if node.symlink_target is None:
            node.symlink_target = await self.store.get(self.key(node))
        return node.symlink_target

    # ------------------------------------------------------------------ rename
    async def rename(self, old_parent: int, old_name: str, new_parent: int, new_name: str,
                     noreplace: bool) -> None:
        self._check_writable()
        src_dir, dst_dir = self._dir(old_parent), self._dir(new_parent)
        src = await self._resolve(src_dir, self._name(old_name))
        if src is None:
            raise FsError(errno.ENOENT)
        new_name = self._new_name(dst_dir, new_name)
        dst = await self._resolve(dst_dir, new_name)
        if dst is src:
            return
        if dst is not None:
            if noreplace:
                raise FsError(errno.EEXIST)
            if dst.is_dir and not src.is_dir:
                raise FsError(errno.EISDIR)
            if src.is_dir and not dst.is_dir:
                raise FsError(errno.ENOTDIR)
            if dst.is_dir and not await self._dir_is_empty(dst):
                raise FsError(errno.ENOTEMPTY)
        new_key = self.dir_prefix(dst_dir) + new_name
        async with AsyncExitStack() as locks:
            # Commits in progress on either file finish first; inode order rules out deadlock.
            for n in sorted([src] if dst is None else [src, dst], key=lambda n: n.ino):
                await locks.enter_async_context(n.lock)
            kept: ObjectInfo | None = None
            if src.in_bucket and not src.is_dir and src.dirty is None:
                # The copy replaces the metadata (for the new ctime): start from what is stored, and keep
                # what other tools put there (their metadata, the Content-Type), as s3fs does.
                kept = await self.store.head(self.key(src))
                if kept is not None:
                    self._set_remote(src, self._remote_from_info(kept, False))
            # A renamed entry's ctime moves (as on Linux): stored with a file, kept in memory for a directory.
            src.attrs = replace(src.attrs, ctime_ns=time.time_ns())
            if dst is not None and not dst.is_dir and dst.in_bucket:
                await self._keep_for_open_handles(dst)
            if src.is_dir:
                old_prefix = self.dir_prefix(src)
                keys = await self._tree_keys(old_prefix)
                if any(len((new_key + "/" + k[len(old_prefix):]).encode("utf-8", "surrogateescape")) > KEY_MAX
                       for k, _ in keys):
                    raise FsError(errno.ENAMETOOLONG, f"a key below the new name would be over {KEY_MAX} bytes")
                if dst is not None and dst.in_bucket:
                    await self.store.delete(self.dir_prefix(dst))  # the empty target's marker, before the copy
                    await self._announce("delete", self.dir_prefix(dst))
                try:
                    moved = await self._rename_tree(old_prefix, new_key + "/", keys)
                except GatewayError:
                    dst_dir.names = None  # some keys may already exist under the new name
                    raise
                await self._announce_renames(moved)
            elif src.in_bucket:
                old_key = self.key(src)
                meta = {**(kept.metadata if kept else {}), **encode_metadata(src.attrs, src.sha256)}
                content_type = (kept.content_type if kept else None) or content_type_for(src.attrs.mode)
                etag = await self.store.copy(old_key, new_key, src.attrs.size, meta, content_type) or src.etag
                await self.store.delete(old_key)
                src.etag = etag
                self.metadata.discard(old_key)
                self.metadata.put(new_key, Remote(src.attrs, etag, src.sha256))
                await self._announce("rename", new_key, src=old_key, size=src.attrs.size, sha256=src.sha256,
                                     etag=etag)
            # A file not uploaded yet replaces the target only when its commit stores it:
            # until then the bucket keeps the old object, and keeps it if the upload fails.
            self.table.move(src, dst_dir, new_name)
            src.version += 1
        self._name_removed(src_dir, old_name)
        self._name_added(dst_dir, new_name)
        self._entries_changed(src_dir, -1 if src.is_dir else 0)
        self._entries_changed(dst_dir, (1 if src.is_dir else 0) - (1 if dst is not None and dst.is_dir else 0))

    async def _announce_renames(self, moved: list[tuple[str, str, int]]) -> None:
        """A directory rename: one event per key moved, all in one journal object (up to 1,000)."""
        if self.feed is not None and moved:
            await self.feed.announce(*(self.feed.event("rename", new, src=old, size=size) for old, new, size in moved))

    async def _tree_keys(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every key below `prefix`."""
        return [(e.key, e.size) async for page in self.store.list_all(prefix) for e in page.entries]

    async def _rename_tree(self, old_prefix: str, new_prefix: str, keys: list[tuple[str, int]]
                           ) -> list[tuple[str, str, int]]:
        """Copy every key below old_prefix, then delete the originals (nothing lost if a copy fails).

        Returns (old key, new key, size) of every key moved.
        """
        if any(reserved.is_reserved(key[len(old_prefix):]) for key, _ in keys):
            raise FsError(errno.EPERM, f"{old_prefix} holds the gateway's reserved folder")
        await gather([partial(self._copy_key, key, new_prefix + key[len(old_prefix):], size)
                      for key, size in keys], limit=self.cfg.parallel)
        await gather([partial(self.store.delete, key) for key, _ in keys], limit=self.cfg.parallel)
        return [(key, new_prefix + key[len(old_prefix):], size) for key, size in keys]

    async def _copy_key(self, src: str, dst: str, size: int) -> None:
        """Server-side copy; directory markers are re-created (SeaweedFS cannot copy them)."""
        if not src.endswith("/"):
            await self.store.copy(src, dst, size, None, None)
            return
        info = await self.store.head(src)
        await self.store.put(dst, b"", info.metadata if info else {}, DIR_CONTENT_TYPE)

    # ------------------------------------------------------------------ extended attributes
    def _gateway_xattrs(self, node: Node) -> dict[str, bytes]:
        """Read-only attributes that expose what the bucket knows: key, ETag, our SHA-256."""
        out = {XATTR_PREFIX + "key": self.key(node).encode()}
        if node.etag:
            out[XATTR_PREFIX + "etag"] = node.etag.strip('"').encode()
        if node.sha256:
            out[XATTR_PREFIX + "sha256"] = node.sha256.encode()
        return out

    async def getxattr(self, ino: int, name: str) -> bytes:
        """Other namespaces (security.*, system.posix_acl_*) answer ENODATA at once: `ls -l` asks for each file."""
        node = self.node(ino)
        if name.startswith(XATTR_PREFIX):
            value = self._gateway_xattrs(node).get(name)
        elif name.startswith("user."):
            await self._load_metadata(node)
            value = dict(node.attrs.xattrs).get(name)
        else:
            value = None
        if value is None:
            raise FsError(errno.ENODATA)
        return value

    async def listxattr(self, ino: int) -> list[str]:
        node = self.node(ino)
        await self._load_metadata(node)
        return [*self._gateway_xattrs(node), *(name for name, _ in node.attrs.xattrs)]

    async def setxattr(self, ino: int, name: str, value: bytes) -> None:
        await self._change_xattr(ino, name, value)

    async def removexattr(self, ino: int, name: str) -> None:
        await self._change_xattr(ino, name, None)

    async def _change_xattr(self, ino: int, name: str, value: bytes | None) -> None:
        """Set (None: remove) one `user.*` attribute, stored in the object's metadata as s3fs's use_xattr does."""
        self._check_writable()
        if not name.startswith("user."):
            raise FsError(errno.ENOTSUP, f"only user.* attributes can be stored ({name})")  # POSIX ACLs too
        if name.startswith(XATTR_PREFIX):
            raise FsError(errno.EPERM, f"{name} is read-only")
        node = self.node(ino)
        async with node.lock:
            await self._load_metadata(node)
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

    # ------------------------------------------------------------------ shutdown
    async def flush_all(self) -> None:
        """Commit every dirty file (clean unmount); failures are logged, none is skipped."""
        self.closing = True

        async def commit(node: Node) -> None:
            async with node.lock:
                await self._commit_or_drop(node)

        nodes = {h.node for h in self.handles.values() if h.node.dirty is not None}
        await gather([partial(commit, n) for n in nodes], limit=self.cfg.parallel)
