"""The change feed's local write-ahead log: close() waits for an fsync, not for a journal PUT.

Each announcement is one record appended to a segment file under
`<cache_dir>/feed/<host-id>/` and made durable with fdatasync (announcements
arriving while one is under way share the next). A flusher task stores the
records in journal objects in batches, `flush_interval` seconds after the
first waiting record (at once when MAX_EVENTS wait), and deletes a segment
once all its events are stored. Segments left by a crashed run of this mount
are adopted at start and flushed before the mount reports ready, or later by
the flusher if the bucket cannot be reached then.

A record appended with a `Hold` (a single PUT's, written while the PUT is
under way) pins its segment: a closed segment is flushed only once every hold
on it is settled, so no journal names an object before its PUT has landed.
Other segments go meanwhile. Holds live in memory only: after a crash, every
replayed record is flushed at start (its PUT either landed or not; both are
fine as hints).

A record is `<crc32 of the document, 8 hex> <journal document>\\n`: the feed's
own encoding (`formats.feed`), so events are stored exactly as they were
announced. A record with a bad CRC or no newline was torn by a crash before
its fsync returned, so it was never acknowledged: it is skipped. A segment
whose write or fsync failed takes no more records: the flusher opens another.
When that fails too (a full disk, no inode left), announcements go by journal
PUT, and the next one after a backoff (1 s, doubling up to 30 s) has the
flusher try again. Flushing again after a
crash between a journal PUT and the segment's deletion announces those events
twice, which is harmless: syncd treats events as hints and copies the
primary's state.

The directory may be removed under a running mount (an operator emptying
`cache_dir`, a tmp cleaner): the next segment makes it again, locked as at
start. The records of a closed segment that vanished before its flush are
lost from the log, said in the log and counted; syncd's reconcile finds those
changes. Nothing the flusher meets stops the mount: a round that fails is
logged and tried again after a backoff.

Bounded: segments hold at most `max_bytes`. When full (the bucket has been
unreachable for long), or when the disk fails, `append` returns False and
the announcement waits for its own journal PUT, as it did without a log.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import zlib
from datetime import UTC, datetime
from functools import partial

import trio

from fsgateway.daemon.private import private_dir, private_file, replace_whole
from fsgateway.formats import feed
from fsgateway.mount import metrics
from fsgateway.store.client import write_exactly
from fsgateway.store.feedwriter import MAX_EVENTS, FeedWriter, Hold

log = logging.getLogger("fsgateway.feed")

SUFFIX = ".wal"
MAX_BACKOFF = 30.0  # seconds between flush attempts while the bucket refuses journal objects
REOPEN_BACKOFF = 1.0  # seconds before the first new attempt at a segment that could not be opened (doubles)


def encode_record(events: tuple[feed.Event, ...]) -> bytes:
    doc = feed.encode(feed.Journal("", "", 0, datetime.now(UTC), events))  # JSON escapes newlines: one line
    return b"%08x %s\n" % (zlib.crc32(doc), doc)


def decode_records(data: bytes) -> tuple[list[feed.Event], int]:
    """The events of every intact record in a segment, and how many records were torn or corrupt."""
    events: list[feed.Event] = []
    bad = 0
    lines = data.split(b"\n")
    if lines[-1]:
        bad += 1  # no newline: torn by a crash before its fsync returned
    for line in lines[:-1]:
        crc, _, doc = line.partition(b" ")
        try:
            if int(crc, 16) != zlib.crc32(doc):
                raise ValueError("crc mismatch")
            events.extend(feed.decode(doc).events)
        except ValueError:  # FeedFormatError is one too
            bad += 1
    return events, bad


class FeedWal:
    """The mount's write-ahead log of announcements; a `feedwriter.LocalLog`."""

    def __init__(self, directory: str, writer: FeedWriter, max_bytes: int, flush_interval: float) -> None:
        self.dir = directory
        self.writer = writer
        self.max_bytes = max_bytes
        self.interval = flush_interval
        self._segments: list[tuple[str, int]] = []  # closed segments (path, size), oldest first
        self._fd: int | None = None  # the open segment; None while it is broken
        self._reopen_at = 0.0  # trio time from which a new segment may be tried, after a failed open
        self._reopen_wait = REOPEN_BACKOFF
        self._path = ""
        self._events = 0  # in the open segment
        self._size = 0  # bytes of the open segment
        self._next = 0  # number of the next segment file
        self._written = 0  # bytes appended since start, all segments
        self._synced = 0  # of those, durable
        self._start = 0  # where the open segment starts among them
        self._lost: list[tuple[int, int]] = []  # (start, end] of records whose fdatasync failed
        self._dead: int | None = None  # a failed segment's descriptor, closed at the next switch
        self._lock_fd: int | None = None
        self._holds: dict[str, int] = {}  # segment path -> its records whose change is not settled yet
        self._sync = trio.Lock()  # one fdatasync or segment switch at a time
        self._flush = trio.Lock()  # one flush of closed segments at a time
        self._wake = trio.Event()  # a record waits in the open segment
        self._full = trio.Event()  # MAX_EVENTS wait in the open segment: flush now

    def open(self) -> None:
        """Lock the directory for this run, adopt what a crashed run left, open a new segment."""
        self._lock()
        names = sorted(n for n in os.listdir(self.dir) if n.endswith(SUFFIX) and n[:-len(SUFFIX)].isdigit())
        for name in names:
            path = os.path.join(self.dir, name)
            self._segments.append((path, os.path.getsize(path)))
        if names:
            self._next = int(names[-1][:-len(SUFFIX)]) + 1
            log.info("change feed: replaying %d segments of a previous run's write-ahead log", len(names))
        self._open_segment()
        self._sync_dir()
        self._gauge()

    def _lock(self) -> None:
        """Make the directory if missing and lock it for this run (BlockingIOError: another run holds it)."""
        private_dir(self.dir)
        lock = os.path.join(self.dir, "lock")
        private_file(lock)
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the lock of a directory that was removed
        self._lock_fd = fd  # held until the process exits

    def _open_segment(self) -> None:
        self._path = os.path.join(self.dir, f"{self._next:016d}{SUFFIX}")
        self._next += 1
        if not os.path.isdir(self.dir):
            log.warning("change feed: write-ahead log directory %s was removed; made again", self.dir)
            self._lock()
        private_file(self._path)  # created 0600 whatever the umask
        self._fd = os.open(self._path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)  # read back by _restore
        self._events = self._size = 0
        self._full = trio.Event()

    def _sync_dir(self) -> None:
        """Make the segment files' names durable (a new file's entry is not, until its directory is synced)."""
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _bytes(self) -> int:
        return self._size + sum(size for _, size in self._segments)

    def _gauge(self) -> None:
        metrics.FEED_WAL_BYTES.set(self._bytes())

    async def append(self, events: tuple[feed.Event, ...], hold: Hold | None = None) -> bool:
        record = encode_record(events)
        if self._fd is None:
            if trio.current_time() >= self._reopen_at:
                self._wake.set()  # the flusher opens a new segment: no segment must leave the log off for good
            return self._refused()
        if self._bytes() + len(record) > self.max_bytes:
            metrics.FEED_WAL_FALLBACKS.labels("full").inc()
            return False
        try:
            if os.write(self._fd, record) != len(record):
                raise OSError("short write")
        except OSError as exc:
            return self._broken(exc)
        if hold is not None:
            self._holds[self._path] = self._holds.get(self._path, 0) + 1
            hold.pin(partial(self._release, self._path))
        self._written += len(record)
        mine = self._written
        self._size += len(record)
        self._events += len(events)
        self._gauge()
        self._wake.set()
        if self._events >= MAX_EVENTS:
            self._full.set()
        async with self._sync:
            if any(start < mine <= end for start, end in self._lost):
                return self._refused()
            if self._synced >= mine:
                return True  # an fdatasync that started after our write covered it
            if self._fd is None:
                return self._refused()
            fd, target = self._fd, self._written
            try:
                await trio.to_thread.run_sync(os.fdatasync, fd)
            except OSError as exc:
                return self._broken(exc)
            self._synced = target
        return True

    def _release(self, path: str) -> None:
        """A held record's change is settled: its segment may go once no other hold pins it."""
        left = self._holds.pop(path) - 1
        if left:
            self._holds[path] = left
        else:
            self._wake.set()

    def _refused(self) -> bool:
        metrics.FEED_WAL_FALLBACKS.labels("error").inc()
        return False

    def _broken(self, exc: OSError) -> bool:
        """The open segment failed: it takes no more records; the flusher closes it and opens another."""
        if self._fd is not None:
            log.error("change feed: write-ahead log %s failed (%s); announcing by journal PUT until the "
                      "next segment", self._path, exc)
            self._dead = self._fd  # closed by _switch: another task's fdatasync may still be using it
            self._lost.append((self._start, self._written))
            self._fd = None
        self._wake.set()
        return self._refused()

    async def _switch(self) -> None:
        """Close the open segment (made durable first) and open a new one (after a failed open: from `_reopen_at`)."""
        async with self._sync:
            if self._fd is not None and not self._events:
                return  # nothing to close
            if not self._path and trio.current_time() < self._reopen_at:
                return  # no segment since an open failed: announcements go by journal PUT until the next attempt
            old_fd, old_path, old_size, old_end, dead = self._fd, self._path, self._size, self._written, self._dead
            self._dead = None
            self._start = old_end
            try:
                self._open_segment()
                self._reopen_wait = REOPEN_BACKOFF
            except OSError as exc:
                log.error("change feed: cannot open a write-ahead log segment in %s: %s; announcing by journal "
                          "PUT, next attempt in %.0f s", self.dir, exc, self._reopen_wait)
                self._fd, self._path, self._size, self._events = None, "", 0, 0
                self._full = trio.Event()
                self._reopen_at = trio.current_time() + self._reopen_wait
                self._reopen_wait = min(self._reopen_wait * 2, MAX_BACKOFF)
            if dead is not None:
                os.close(dead)
            if old_fd is not None:
                try:
                    await trio.to_thread.run_sync(os.fdatasync, old_fd)
                    self._synced = max(self._synced, old_end)
                    if os.fstat(old_fd).st_nlink == 0:  # removed with the directory while it was open
                        await trio.to_thread.run_sync(self._restore, old_fd, old_path)
                except OSError as exc:
                    log.error("change feed: write-ahead log %s: %s", old_path, exc)
                    self._lost.append((self._synced, old_end))
                finally:
                    os.close(old_fd)
            if old_path:  # a flush may read it from now on: synced, and under its name again if it was removed
                self._segments.append((old_path, old_size))
            if self._fd is not None:
                try:  # the new segment's name must be durable before a record in it is acknowledged
                    await trio.to_thread.run_sync(self._sync_dir)
                except OSError as exc:
                    self._broken(exc)

    def _restore(self, fd: int, path: str) -> None:
        """Write a segment that was removed while open back under its name, from its descriptor."""
        data = os.pread(fd, os.fstat(fd).st_size, 0)

        def fill(part: str) -> None:
            out = os.open(part, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
            try:
                write_exactly(out, data, 0)
                os.fdatasync(out)
            finally:
                os.close(out)

        replace_whole(path, fill)  # whole or not at all: a short copy would read as torn records
        self._sync_dir()
        log.warning("change feed: write-ahead log segment %s was removed while open; written again", path)

    async def drain(self) -> bool:
        """Store every record written so far in journal objects; True when none is left (none failed or held)."""
        await self._switch()
        return await self._flush_closed() and not self._segments

    def _flushable(self) -> bool:
        return any(path not in self._holds for path, _ in self._segments)

    async def _flush_closed(self) -> bool:
        """Store the closed segments no hold pins, oldest first; False if one could not be read or a journal
        PUT failed."""
        unreadable = False
        async with self._flush:
            for segment in list(self._segments):
                path = segment[0]
                if path in self._holds:
                    continue  # a record whose PUT is not settled: the segment waits, the others go
                try:
                    with open(path, "rb") as f:
                        events, bad = decode_records(f.read())
                except FileNotFoundError:
                    metrics.FEED_WAL_LOST.inc()
                    log.error("change feed: write-ahead log segment %s was removed before its flush; the changes "
                              "it announced reach the backup at syncd's next reconcile", path)
                    events, bad = [], 0
                except OSError as exc:  # tried again at the next round; the later segments go meanwhile
                    log.error("change feed: cannot read write-ahead log segment %s: %s", path, exc)
                    unreadable = True
                    continue
                if bad:
                    metrics.FEED_WAL_TORN.inc(bad)
                    log.warning("change feed: %d torn records in %s skipped (never acknowledged)", bad, path)
                if events and not await self.writer.write_journal(events, kept=True):
                    return False
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                self._segments.remove(segment)
                self._gauge()
        return not unreadable

    async def run(self) -> None:
        """The flusher: batches of records become journal objects; retried with backoff while refused."""
        failures = 0
        while True:
            if not self._flushable():
                await self._wake.wait()  # a record was appended, or a held segment was let go
                if self._events:  # records wait in the open segment: others may join them meanwhile
                    with trio.move_on_after(self.interval):
                        await self._full.wait()
            self._wake = trio.Event()
            if await self._round():
                failures = 0
            else:  # back off, but close a full segment meanwhile: each one is read whole when flushed
                failures = min(failures + 1, 16)
                with trio.move_on_after(min(self.interval * 2 ** failures, MAX_BACKOFF)):
                    await self._full.wait()

    async def _round(self) -> bool:
        """Close the open segment and flush; False if something failed (the flusher backs off and tries again)."""
        try:
            await self._switch()
            return await self._flush_closed()
        except Exception:  # the mount serves on without its log rather than stop: said, and tried again
            log.exception("change feed: write-ahead log flush failed")
            return False
