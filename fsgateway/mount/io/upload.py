"""What every upload of the write path shares: the mount's upload context, the result, the checks.

"Check every size and every ETag on the way": each part's ETag is compared with
the MD5 of the bytes sent when the server answers a plain MD5 (SeaweedFS and
RGW do; an ETag of another form, as with SSE-KMS on AWS, cannot be checked and
is not); a completed multipart object must have our size, our part count and
the ETag S3 derives from our parts' ETags (MD5 of their MD5s, "-N").
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import trio

from fsgateway.formats.keys import STAGING_PREFIX
from fsgateway.formats.s3format import SHA256_META
from fsgateway.mount import metrics
from fsgateway.mount.housekeeping import Janitor
from fsgateway.mount.io.buffers import PartBuffers, expire_idle
from fsgateway.store import deadline
from fsgateway.store.client import Body, ObjectInfo, ObjectStore, StoreError, multipart_etag
from fsgateway.store.errors import GatewayError

if TYPE_CHECKING:
    from fsgateway.mount.io.staging import StagingArea

log = logging.getLogger("fsgateway.writer")

_PLAIN_MD5 = re.compile(r"[0-9a-f]{32}")


class WriteError(GatewayError):
    """A write-path failure with the errno the application gets."""


@contextlib.contextmanager
def local_io(what: str) -> Iterator[None]:
    """Local staging-file I/O: its OSError (ENOSPC on a full disk) reaches the caller as that errno."""
    try:
        yield
    except OSError as exc:
        raise WriteError(exc.errno or errno.EIO, f"{what}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class Committed:
    etag: str
    sha256: str
    size: int
    announced: bool = False  # in the change feed already (a single PUT's, see `UploadContext.put`)


class AnnouncePut(Protocol):
    """How a single PUT reaches the change feed (the mount's feed; io/ knows none)."""

    async def __call__(self, key: str, expected: Committed, put: Callable[[], Awaitable[Committed]]) -> Committed:
        """Run `put`, which stores `expected` at `key`, while its announcement becomes durable; returns
        what `put` stored, marked `announced`."""
        ...


class UploadContext:
    """What every dirty file shares: the store, the limits, the background nursery."""

    def __init__(self, store: ObjectStore, staging: StagingArea, part_size: int, parallel: int,
                 write_buffer_size: int, nursery: trio.Nursery, host_id: str, run_id: str,
                 announce_put: AnnouncePut | None = None) -> None:
        self.store = store
        self.announce_put = announce_put  # None: no feed to tell
        self.retry_deadline = store.settings.retry_deadline
        self.staging = staging
        self.part_size = part_size
        self.parallel = parallel
        self.part_tokens = trio.Semaphore(max(1, write_buffer_size // part_size))
        self.buffers = PartBuffers(part_size, keep=max(1, write_buffer_size // part_size))
        # Spooled parts in flight, all files together (spool.py): more would wait for a connection anyway.
        self.spool_slots = trio.Semaphore(store.settings.max_connections)
        nursery.start_soon(expire_idle, self.buffers)
        self.nursery = nursery
        self.host_id = host_id
        self.run_id = run_id
        self.janitor = Janitor(store, self.retry_deadline)
        nursery.start_soon(self.janitor.run)

    async def put(self, key: str, body: Body, metadata: dict[str, str], content_type: str, sha: str, md5: str,
                  size: int) -> Committed:
        """A whole file in one PUT with Content-MD5 and its SHA-256 in the metadata; the answer's ETag checked.

        What it stores is known before it is sent (a plain PUT's ETag is the body's MD5), so
        `announce_put` makes the feed's announcement durable while the PUT is under way.
        """

        async def send() -> Committed:
            etag = await self.store.put(key, body, {**metadata, SHA256_META: sha}, content_type, md5_hex=md5)
            check_etag(key, "the object", etag, md5)
            return Committed(etag, sha, size)

        if self.announce_put is None:
            return await send()
        return await self.announce_put(key, Committed(f'"{md5}"', sha, size), send)

    def staging_key(self) -> str:
        """`<host>/<run>-<uuid>`: start-up clean-up removes this host's keys of other runs only."""
        return f"{STAGING_PREFIX}{self.host_id}/{self.run_id}-{uuid.uuid4().hex}"

    async def abort(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload; clean-up gets a deadline of its own, after the failure used the caller's.

        If the abort fails, the janitor retries it in the background.
        """
        with trio.CancelScope(shield=True), deadline.own(self.retry_deadline):
            try:
                await self.store.abort_multipart(key, upload_id)
            except StoreError as exc:
                log.warning("could not abort upload of %s (retried in the background): %s", key, exc)
                self.janitor.later(key, upload_id)

    async def remove(self, key: str) -> None:
        """Delete a staging object now; if that fails, the janitor retries in the background."""
        with trio.CancelScope(shield=True), deadline.own(self.retry_deadline):
            try:
                await self.store.delete(key)
            except StoreError as exc:
                log.warning("could not delete staging object %s (retried in the background): %s", key, exc)
                self.janitor.later(key)


def md5_hex(data: bytes | bytearray | memoryview) -> str:
    """MD5 of a part, for its ETag (run in a worker thread: hashlib releases the GIL)."""
    return hashlib.md5(data).hexdigest()


def check_length(key: str, stored: int, size: int) -> None:
    """What a commit is about to store is exactly the file's size, or nothing is stored."""
    if stored != size:
        raise WriteError(errno.EIO, f"{key}: {stored} bytes to store, the file has {size}")


def check_etag(key: str, what: str, etag: str, md5: str) -> None:
    """An ETag the server answered for bytes whose MD5 we know: a plain MD5 must be that one."""
    etag = etag.strip('"')
    if _PLAIN_MD5.fullmatch(etag) and etag != md5:
        metrics.CHECKSUM_MISMATCHES.inc()
        raise WriteError(errno.EIO, f"{key}: {what} has ETag {etag}, the bytes sent have MD5 {md5}")


def check_complete(key: str, info: ObjectInfo | None, size: int, part_etags: list[str]) -> ObjectInfo:
    """After CompleteMultipartUpload: the object exists with our size, part count and multipart ETag.

    RGW may answer Complete with an empty ETag; HEAD (`info`) has the right one.
    Transit integrity of each part is its checked ETag; the content as a whole is
    covered by the SHA-256 we store and check on read.
    """
    if info is None or info.size != size:
        metrics.CHECKSUM_MISMATCHES.inc()
        raise WriteError(errno.EIO, f"{key}: completed object has {info and info.size} bytes, expected {size}")
    etag = info.etag.strip('"')
    if "-" in etag:
        expected = multipart_etag(part_etags)
        if etag.rsplit("-", 1)[1] != str(len(part_etags)) or (expected is not None and etag != expected):
            metrics.CHECKSUM_MISMATCHES.inc()
            raise WriteError(errno.EIO, f"{key}: completed object has ETag {etag}, expected "
                             f"{expected or f'{len(part_etags)} parts'}")
    return info
