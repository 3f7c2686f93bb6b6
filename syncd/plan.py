"""What to do with one key: pure decisions, no I/O.

Change detection, as the issue asks, never trusts an ETag as a content hash:

* Between the buckets: equal size and equal `fsg-sha256` metadata (the SHA-256
  the gateway stores) mean equal bytes. Objects without that metadata (written
  by other tools) are taken as equal when the sizes match and the backup copy
  is newer than the primary's (Last-Modified, whole seconds: a tie proves
  nothing); otherwise both are hashed.
  User metadata and Content-Type must match too, else only the metadata is
  rewritten on the backup.
* Against syncd's own memory: a listing's (size, ETag, Last-Modified) is a
  *version* token. If the primary still shows the version syncd copied, and
  the backup still shows the copy syncd made, the key is in sync with no
  request at all. The ETag serves only as "unchanged since", together with
  size and time, never as a hash.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime

from fsgateway.formats import reserved
from fsgateway.formats.s3format import SHA256_META
from fsgateway.store.client import ListEntry, ObjectInfo

SAME, METADATA, COPY, HASH = "same", "metadata", "copy", "hash"
IN_SYNC, MISSING, CHECK = "in_sync", "missing", "check"


def plain(etag: str) -> str:
    """An ETag without its quotes: RGW's CopyObject answers with a bare one, listings quote it."""
    return etag.strip('"')


def seconds(t: datetime | None) -> int:
    """Last-Modified in whole seconds: listings have milliseconds, HEAD has seconds."""
    return int(t.timestamp()) if t is not None else 0


@dataclass(frozen=True)
class Version:
    size: int
    etag: str
    mtime: int

    @classmethod
    def of_listing(cls, entry: ListEntry) -> Version:
        return cls(entry.size, plain(entry.etag), seconds(entry.last_modified))

    @classmethod
    def of_info(cls, info: ObjectInfo) -> Version:
        return cls(info.size, plain(info.etag), seconds(info.last_modified))


@dataclass(frozen=True)
class Record:
    """What syncd last made sure of: the primary's `src` version is at the backup as `dst_size`/`dst_etag`."""

    src: Version
    dst_size: int
    dst_etag: str


@dataclass(frozen=True)
class Filters:
    """Include/exclude patterns: `dir/` is a prefix, anything else an fnmatch glob on the whole key.

    `*` also matches `/`. No include means everything; exclude wins. The
    gateway's own keys (a `.fsgateway/` folder at any depth: staging uploads,
    the change feed, the checker's staging copies) are never copied.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @staticmethod
    def _hit(key: str, pattern: str) -> bool:
        return key.startswith(pattern) if pattern.endswith("/") else fnmatch.fnmatchcase(key, pattern)

    def wanted(self, key: str) -> bool:
        if reserved.is_reserved(key):
            return False
        if self.include and not any(self._hit(key, p) for p in self.include):
            return False
        return not any(self._hit(key, p) for p in self.exclude)


def classify(src: Version, dst: Version | None, rec: Record | None) -> str:
    """A reconcile's verdict from the two listings and syncd's record: in_sync, missing or check."""
    if dst is None:
        return MISSING
    if rec is not None and rec.src == src and rec.dst_size == dst.size and plain(rec.dst_etag) == dst.etag:
        return IN_SYNC
    return CHECK


def compare(src: ObjectInfo, dst: ObjectInfo | None) -> str:
    """How the backup's object differs from the primary's (both from HEAD): same, metadata, copy or hash."""
    if dst is None or dst.size != src.size:
        return COPY
    sha = src.metadata.get(SHA256_META)
    if sha is not None:
        if dst.metadata.get(SHA256_META) != sha:
            return COPY
    elif seconds(dst.last_modified) <= seconds(src.last_modified):
        return HASH
    return same_metadata(src, dst)


def same_metadata(src: ObjectInfo, dst: ObjectInfo) -> str:
    """Equal bytes known: SAME, or METADATA when user metadata or Content-Type differ."""
    if src.metadata == dst.metadata and (src.content_type or "") == (dst.content_type or ""):
        return SAME
    return METADATA


@dataclass
class DeleteGuard:
    """mirror mode's brake: at most `limit` deletes per run, none once the run has seen an error."""

    limit: int
    done: int = 0
    held: int = 0
    errors: int = 0

    def allow(self, n: int = 1) -> bool:
        """Whether `n` more deletes may go ahead; all-or-nothing, and counted as held when not."""
        if self.errors or self.done + n > self.limit:
            self.held += n
            return False
        self.done += n
        return True
