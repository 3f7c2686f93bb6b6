"""The name caches: what this mount remembers about which names exist, and their stored attributes.

Three caches, one owner. A lookup that the caches can answer makes no request:
- the negative cache: recent "no such entry" answers (bounded LRU, `negative_ttl`);
- the metadata cache: full attributes by key (from a HEAD or our own writes), so a
  listing shows stored modes and owners without a HEAD per entry;
- one `DirNames` per directory: every name in it, when known (just created, or fully
  listed: by a readdir for `stat_ttl`, after a miss for `negative_ttl`); and the
  directory's own entry bookkeeping (generation, subdirectory count, when this mount
  last changed an entry).

Every change this mount makes to a directory goes through `added`, `removed` or
`forgotten`, so the three stay consistent. This is the place to make lookups of new
names cheaper: a miss answered here costs no HEAD or LIST.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fsgateway.formats.s3format import Attrs
from fsgateway.mount.fs.inodes import Node

MAX_KNOWN_NAMES = 10_000  # larger directories are not remembered whole

Clock = Callable[[], float]


class NegativeCache:
    """Recent "no such entry" answers: bounded LRU with a TTL."""

    def __init__(self, ttl: float, max_entries: int, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._d: OrderedDict[tuple[int, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._d)

    def hit(self, parent: int, name: str) -> bool:
        exp = self._d.get((parent, name))
        if exp is None:
            return False
        if exp < self._clock():
            del self._d[(parent, name)]
            return False
        return True

    def add(self, parent: int, name: str) -> None:
        if self.ttl <= 0 or self.max_entries <= 0:
            return
        self._d[(parent, name)] = self._clock() + self.ttl
        self._d.move_to_end((parent, name))
        while len(self._d) > self.max_entries:
            self._d.popitem(last=False)

    def discard(self, parent: int, name: str) -> None:
        self._d.pop((parent, name), None)


def same_etag(a: str, b: str) -> bool:
    """Whether two ETags name the same content: a copy's answer carries it unquoted (RGW, SeaweedFS),
    a listing or a HEAD quoted."""
    return a.strip('"') == b.strip('"')


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

    def __len__(self) -> int:
        return len(self._d)

    def put(self, key: str, remote: Remote) -> None:
        if not remote.etag or self.max_entries <= 0:
            return
        self._d[key] = remote
        self._d.move_to_end(key)
        while len(self._d) > self.max_entries:
            self._d.popitem(last=False)

    def matching(self, key: str, etag: str, size: int) -> Remote | None:
        r = self._d.get(key)
        if r is None or not same_etag(r.etag, etag) or r.attrs.size != size:
            return None
        self._d.move_to_end(key)
        return r

    def discard(self, key: str) -> None:
        self._d.pop(key, None)


class DirNames:
    """What this mount knows of one directory's entries.

    `names` is every name in it while `until` has not passed (None: not known).
    `gen` moves with every change this mount makes to the directory, so a listing
    that started before a change never installs its (older) set of names.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.names: set[str] | None = None
        self.until = 0.0
        self.gen = 0
        self.subdirs: int | None = None  # when a whole listing or a mkdir told us (st_nlink is 2 + this)
        self.changed_ns = 0  # wall time this mount last added or removed an entry (its mtime/ctime)
        self.too_large_until = 0.0  # a miss found it over the pages a miss may list: probes until then

    def worth_listing(self) -> bool:
        """Whether a miss here should list the directory whole: its names are not known (or stale),
        and it was not found too large within the TTL."""
        now = self._clock()
        return (self.names is None or self.until <= now) and self.too_large_until <= now

    def too_large(self, ttl: float) -> None:
        """A miss's listing did not reach the end: misses here probe for `ttl` instead of listing."""
        self.too_large_until = self._clock() + ttl

    def absent(self, name: str) -> bool:
        """True when the whole directory is known and `name` is not in it."""
        return self.names is not None and self.until > self._clock() and name not in self.names

    def added(self, name: str) -> None:
        self.gen += 1
        if self.names is not None:
            self.names.add(name)
            if len(self.names) > MAX_KNOWN_NAMES:
                self.names = None

    def removed(self, name: str) -> None:
        self.gen += 1
        if self.names is not None:
            self.names.discard(name)

    def forgotten(self) -> None:
        """Which names exist is no longer known (some may have changed in the bucket)."""
        self.gen += 1
        self.names = None

    def created_empty(self, ttl: float) -> None:
        """Just made by this mount: known empty."""
        self.names, self.until, self.subdirs = set(), self._clock() + ttl, 0

    def listed(self, gen: int, names: set[str] | None, subdirs: int, listed_at: float, ttl: float) -> None:
        """A whole listing that started at `listed_at` with generation `gen` ended.

        Kept only if nothing changed here since it started; `names` None: too many to keep."""
        if gen != self.gen:
            return
        self.subdirs = subdirs
        if names is not None:
            self.names, self.until = names, listed_at + ttl

    def entries_changed(self, subdirs: int = 0) -> None:
        """This mount added or removed an entry: the directory's mtime and ctime move, and its subdirectory count.

        Kept in memory only (SEMANTICS.md): storing them would cost a PUT of the
        directory marker for every file created.
        """
        self.changed_ns = time.time_ns()
        if self.subdirs is not None:
            self.subdirs = max(0, self.subdirs + subdirs)


class NameCaches:
    """The negative cache, the metadata cache and each directory's `DirNames`, kept consistent."""

    def __init__(self, negative_ttl: float, negative_entries: int, metadata_entries: int,
                 clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.negative = NegativeCache(negative_ttl, negative_entries, clock)
        self.metadata = MetadataCache(metadata_entries)
        # Keyed by the directory's node: its entry goes with the node (a new node for the same path starts unknown).
        self._dirs: weakref.WeakKeyDictionary[Node, DirNames] = weakref.WeakKeyDictionary()

    def dir(self, node: Node) -> DirNames:
        d = self._dirs.get(node)
        if d is None:
            d = self._dirs[node] = DirNames(self.clock)
        return d

    def known_absent(self, parent: Node, name: str) -> bool:
        """The caches can answer "no such entry" for parent/name without a request."""
        if self.negative.hit(parent.ino, name):
            return True
        d = self._dirs.get(parent)
        return d is not None and d.absent(name)

    def added(self, parent: Node, name: str) -> None:
        """A name now exists in `parent`: every name cache learns it."""
        self.negative.discard(parent.ino, name)
        self.dir(parent).added(name)

    def removed(self, parent: Node, name: str) -> None:
        """A name no longer exists in `parent`: every name cache learns it."""
        self.negative.add(parent.ino, name)
        self.dir(parent).removed(name)

    def missing(self, parent: Node, name: str) -> None:
        """The bucket has no `name` in `parent` (seen, not changed by this mount): a listing in flight stays
        valid, since a listing's absent names are what is trusted, and this one is absent either way."""
        self.negative.add(parent.ino, name)
        d = self._dirs.get(parent)
        if d is not None and d.names is not None:
            d.names.discard(name)

    def forgotten(self, parent: Node, name: str) -> None:
        """Whether `name` exists in `parent` is no longer known here: the next lookup asks the bucket."""
        self.negative.discard(parent.ino, name)
        self.dir(parent).forgotten()
