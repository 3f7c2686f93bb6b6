"""Directory listings: directory handles and readdir, one LIST page at a time.

The adapter hands `readdir` a reply callback; the entries the kernel takes are
counted here (each is one lookup reference, as with readdirplus), so the adapter
never touches lookup counts. A whole listing teaches the directory's `DirNames`
every name in it, unless this mount changed the directory meanwhile.
"""

from __future__ import annotations

import errno
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from fsgateway.formats.keys import split_listing
from fsgateway.formats.s3format import Attrs, decode_attrs
from fsgateway.mount import metrics
from fsgateway.mount.fs.context import FsContext, FsError
from fsgateway.mount.fs.inodes import Node
from fsgateway.mount.fs.names import MAX_KNOWN_NAMES, same_etag
from fsgateway.store.client import ListEntry

#: The adapter's reply for one entry: (name, its node, index of the next entry) -> False when the buffer is full.
Reply = Callable[[str, Node, int], bool]


@dataclass
class DirHandle:
    node: Node
    ttl: float  # how long its whole listing is trusted
    entries_wanted: bool = True  # False: only the names are learnt (no attributes decoded, no cache counted)
    entries: list[tuple[str, Attrs, str]] = field(default_factory=list)  # name, listed attrs, etag
    base: int = 0  # index of entries[0] in the whole listing
    first: int = 0  # lowest index still served from `entries` (an earlier start lists again)
    names: set[str] | None = field(default_factory=set)  # all names so far (None past MAX_KNOWN_NAMES)
    listed_at: float = 0.0
    names_gen: int = 0  # the directory's DirNames.gen when the listing started
    subdirs: int = 0  # directories listed so far
    token: str | None = None
    started: bool = False
    done: bool = False

    def rewind(self) -> None:
        self.entries, self.base, self.first, self.token, self.done, self.started = [], 0, 0, None, False, False
        self.subdirs = 0
        self.names = set()


class Listing:
    def __init__(self, ctx: FsContext) -> None:
        self.ctx = ctx
        self.dir_handles: dict[int, DirHandle] = {}

    async def opendir(self, ino: int) -> int:
        fh = self.ctx.new_fh()
        self.dir_handles[fh] = DirHandle(self.ctx.dir(ino), self.ctx.cfg.stat_ttl)
        return fh

    def releasedir(self, fh: int) -> None:
        self.dir_handles.pop(fh, None)

    def _handle(self, fh: int) -> DirHandle:
        dh = self.dir_handles.get(fh)
        if dh is None:
            raise FsError(errno.EBADF)
        return dh

    async def readdir(self, fh: int, start: int, reply: Reply) -> None:
        """Reply entries from index `start` until the kernel's buffer is full; each one taken is a lookup."""
        dh = self._handle(fh)
        table = self.ctx.table
        for index, (name, attrs, etag) in await self.entries(fh, start):
            node = self._entry_node(dh, name, attrs, etag)
            if node is None:
                continue
            if not reply(name, node, index + 1):
                table.drop_if_unused(node)
                return
            table.looked_up(node)

    async def entries(self, fh: int, start: int) -> Iterator[tuple[int, tuple[str, Attrs, str]]]:
        """Entries from index `start`: (index, (name, listed attrs, etag)); loads a page if needed.

        An iterator over the current page, not a copy: the kernel takes a few dozen entries per
        call, so copying the rest of a 1,000-entry page each time cost more than the entries.
        Use it before the next await (a page load replaces `entries`).
        """
        dh = self._handle(fh)
        if start < dh.first or (start == 0 and dh.started):
            dh.rewind()
        while not dh.started or (dh.base + len(dh.entries) <= start and not dh.done):
            dh.base += len(dh.entries)  # pages before `start` are not kept: memory stays one page
            dh.entries = []
            await self._load_page(dh)
        dh.first = max(dh.base, start)
        return enumerate(islice(dh.entries, dh.first - dh.base, None), dh.first)

    async def list_whole(self, node: Node, max_pages: int, ttl: float) -> bool:
        """List `node` to its end if that takes at most `max_pages` LISTs; False when it has more.

        The whole listing teaches the directory's `DirNames` every name for `ttl` (as a readdir's does).
        """
        dh = DirHandle(node, ttl, entries_wanted=False)
        for _ in range(max_pages):
            await self._load_page(dh)
            if dh.done:
                return True
        return False

    async def _load_page(self, dh: DirHandle) -> None:
        ctx = self.ctx
        prefix = ctx.dir_prefix(dh.node)
        dir_names = ctx.names.dir(dh.node)
        if not dh.started:
            dh.listed_at = time.monotonic()
            dh.names_gen = dir_names.gen
        page = await ctx.store.list_page(prefix, dh.token)
        token = page.token
        dh.started = True
        listing = split_listing(prefix, page.entries, page.prefixes,
                                hide_reserved=True)
        for problem in listing.rejected:
            ctx.report(problem)
        dh.subdirs += len(listing.dirs)
        names = sorted(set(listing.files) | listing.dirs)
        if dh.names is not None:
            dh.names.update(names)
            if len(dh.names) > MAX_KNOWN_NAMES:
                dh.names = None
        if dh.entries_wanted:
            self._add_entries(dh, prefix, names, listing.files, listing.dirs)
        dh.token = token
        if token is None:
            dh.done = True
            # Ours that the LIST may not show: created here and not uploaded yet, or committed (or
            # found) while the LIST ran; a commit racing the LIST must not vanish from the listing.
            local = {n: c for n, c in dh.node.children.items()
                     if not c.detached and (not c.in_bucket or c.remote_at >= dh.listed_at)}
            # the whole directory as of when the listing started (kept if nothing changed here since)
            whole = None if dh.names is None else dh.names | local.keys()
            dir_names.listed(dh.names_gen, whole, dh.subdirs, dh.listed_at, dh.ttl)
            listed = set(names)
            for name, child in local.items():
                if name not in listed:
                    dh.entries.append((name, child.attrs, ""))

    def _add_entries(self, dh: DirHandle, prefix: str, names: list[str], files: dict[str, ListEntry],
                     dirs: set[str]) -> None:
        """Append a page's entries with their attributes: the metadata cache's, else what the LIST says."""
        ctx = self.ctx
        dir_attrs = ctx.implicit_dir_attrs()
        hits = misses = 0
        for name in names:
            if name in dirs:
                dh.entries.append((name, dir_attrs, ""))
                continue
            obj = files[name]
            etag = obj.etag
            known = ctx.names.metadata.matching(prefix + name, etag, obj.size)
            if known:
                hits += 1
            else:
                misses += 1
            attrs = known.attrs if known else decode_attrs(
                None, is_dir_key=False, content_type=None, size=obj.size,
                last_modified=obj.last_modified, defaults=ctx.defaults)
            dh.entries.append((name, attrs, etag))
        if hits:  # counted per page: a labelled counter costs more than the entry's other work
            metrics.CACHE.labels("metadata", "hit").inc(hits)
        if misses:
            metrics.CACHE.labels("metadata", "miss").inc(misses)

    def _entry_node(self, dh: DirHandle, name: str, attrs: Attrs, etag: str) -> Node | None:
        """The node for a listed entry (lookup count not yet taken), or None to skip it.

        A page may be served a while after its LIST: a name removed here since is
        skipped, and attributes newer than the listing are kept.
        """
        ctx = self.ctx
        parent = dh.node
        if ctx.names.negative.hit(parent.ino, name):
            return None
        child = ctx.table.child(parent, name)
        if child is not None and stat.S_IFMT(child.attrs.mode) == stat.S_IFMT(attrs.mode):
            if child.dirty is None and child.in_bucket and not child.is_dir and child.remote_at < dh.listed_at and (
                    not same_etag(child.etag, etag) or child.attrs.size != attrs.size):
                child.attrs, child.etag, child.sha256 = attrs, etag, None
                child.remote_at = 0.0  # listed, not read from the bucket's metadata
                child.expires = time.monotonic() + ctx.cfg.stat_ttl
            return child
        child = ctx.table.add(parent, name, attrs)
        child.etag = etag
        child.expires = time.monotonic() + ctx.cfg.stat_ttl
        return child
