"""Writing the change feed: group commit of events into journal objects (the mount's and the checker's).

`announce()` returns once its events are durable. With a local write-ahead
log (`use_local`, the mount's `fsgateway.mount.feedwal`) that is an fsync'd
record on the mount's disk, and the log's flusher stores journal objects in
batches. Without one (the checker, `feed_flush=0`, or a log that is full or
failing) it is the journal object itself: events arriving while a journal PUT
is under way wait for the next one, so many concurrent closes cost one PUT. A
journal object that cannot be stored is logged and counted, never a failed
close: the object itself is committed, and syncd's reconcile finds it.

A change whose events are known before it is made (a single PUT: key, size,
SHA-256 and the ETag, the body's MD5) records them in the local log while it is
under way (`record_during`); a `Hold` keeps that record from the flusher until
the change is settled, so no journal names an object before it is stored.

The checker announces its own writes through `AnnouncingStore`. This module
imports no mount code (its metrics are defined here), so the checker may use it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar, Unpack

import trio
from prometheus_client import CollectorRegistry, Counter

from fsgateway.formats import feed, reserved
from fsgateway.formats.feed import EventFields
from fsgateway.store import deadline
from fsgateway.store.client import Body, FileSlice, ObjectStore, StoreError

log = logging.getLogger("fsgateway.feed")

REGISTRY = CollectorRegistry()  # served by the daemons that write the feed (mount, checker)
FEED_EVENTS = Counter("fsgateway_feed_events_total", "Changes announced in the change feed, by op", ["op"],
                      registry=REGISTRY)
FEED_JOURNALS = Counter("fsgateway_feed_journal_objects_total", "Journal objects written to the change feed",
                        registry=REGISTRY)
FEED_WRITE_FAILURES = Counter(
    "fsgateway_feed_write_failures_total", "Changes that could not be announced (journal PUT failed for good)",
    registry=REGISTRY,
)

FEED_FLUSH_FAILURES = Counter(
    "fsgateway_feed_flush_failures_total",
    "Journal PUTs of the local write-ahead log that failed (its events are kept and retried)",
    registry=REGISTRY,
)

MAX_EVENTS = 1000  # per journal object, so a reader's GET stays small

T = TypeVar("T")


class Hold:
    """Keeps a record in the local log from the flusher until the change it announces is settled.

    A record written while its PUT is under way must not reach a journal before the PUT
    has landed: syncd would copy the old state, and nothing would announce the new one.
    The log pins the hold to the record's segment when it writes the record; `settle()`
    (in a `finally`: the change answered, failed or was given up) lets the segment go.
    A failed change's record is flushed too: events are hints, syncd copies the primary's state.
    """

    def __init__(self) -> None:
        self.settled = False
        self._release: Callable[[], None] | None = None

    def pin(self, release: Callable[[], None]) -> None:
        """The log wrote the record: `release` is called once, when the change is settled."""
        if self.settled:
            release()
        else:
            self._release = release

    def settle(self) -> None:
        if not self.settled:
            self.settled = True
            release, self._release = self._release, None
            if release is not None:
                release()


class LocalLog(Protocol):
    """Where announcements become durable before their journal object is stored (the mount's WAL)."""

    async def append(self, events: tuple[feed.Event, ...], hold: Hold | None = None) -> bool:
        """True once `events` are durable in the log; False when the log cannot take them.

        With `hold`, the record is not flushed before `hold.settle()`."""
        ...


@dataclass
class _Batch:
    events: list[feed.Event] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)


class FeedWriter:
    def __init__(self, store: ObjectStore, host: str, run: str) -> None:
        self.store = store
        self.host = host
        self.run_id = run
        self.seq = 0
        self.last = datetime.min.replace(tzinfo=UTC)
        self._batch = _Batch()
        self._wake = trio.Event()
        self._local: LocalLog | None = None

    def use_local(self, local: LocalLog) -> None:
        """Make announcements durable in `local` from now on; its flusher calls `write_journal`."""
        self._local = local

    @staticmethod
    def event(op: str, key: str, **fields: Unpack[EventFields]) -> feed.Event:
        return feed.Event(op=op, key=key, time=feed.iso(datetime.now(UTC)), **fields)

    async def announce(self, *events: feed.Event) -> None:
        """Wait until `events` are durable: in the local log, else in a stored journal object.

        A journal PUT that failed for good also returns (logged and counted).
        """
        if self._local is not None and await self._local.append(events):
            return
        await self._journal(events)

    async def record_during(self, change: Callable[[], Awaitable[T]], *events: feed.Event) -> tuple[T, bool]:
        """Make `change` while `events` become durable in the local log; (its result, whether they did).

        Returns once both are done. False (no local log, or it refused the record): the caller
        announces after the change, as any other (`announce`), so a journal PUT never comes
        before the change it names. A failed change raises its own error; the record, if
        written, goes to a journal as a hint.
        """
        local = self._local
        if local is None:
            return await change(), False
        hold = Hold()
        durable = False
        failure: Exception | None = None

        async def record() -> None:
            nonlocal durable
            with trio.move_on_at(deadline.current(self.store.settings.retry_deadline)):  # as `change` is
                durable = await local.append(events, hold)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(record)
                try:
                    result = await change()
                except Exception as exc:  # raised as itself below, not in the nursery's ExceptionGroup
                    failure = exc
        finally:
            hold.settle()
        if failure is not None:
            raise failure
        return result, durable

    async def _journal(self, events: tuple[feed.Event, ...]) -> None:
        """Wait until `events` are in a stored journal object (or its PUT failed for good, counted)."""
        batch = self._batch
        batch.events.extend(events)
        self._wake.set()
        await batch.done.wait()

    async def run(self) -> None:
        """The one task that writes journal objects, one at a time (runs in the mount's nursery)."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            batch, self._batch = self._batch, _Batch()
            await self.write_journal(batch.events)
            batch.done.set()

    async def write_journal(self, events: list[feed.Event], kept: bool = False) -> bool:
        """Store `events` in journal objects of at most MAX_EVENTS each; False if one failed for good.

        `kept`: the events stay in a local log that retries them, so a failure is not a lost announcement.
        """
        stored = True
        for start in range(0, len(events), MAX_EVENTS):
            stored = await self._write(events[start:start + MAX_EVENTS], kept) and stored
        return stored

    async def _write(self, events: list[feed.Event], kept: bool = False) -> bool:
        # Strictly increasing per writer, so this host's journal keys sort in the order written.
        written = max(datetime.now(UTC), self.last + timedelta(microseconds=1))
        self.last = written
        self.seq += 1
        journal = feed.Journal(self.host, self.run_id, self.seq, written, tuple(events))
        key = feed.journal_key(written, self.host, self.run_id, self.seq)
        try:
            await self.store.put(key, feed.encode(journal), {}, "application/json")
        except StoreError as exc:
            if kept:
                FEED_FLUSH_FAILURES.inc()
                log.warning("change feed: journal of %d events not stored yet (%s); kept in the local log",
                            len(events), exc)
                return False
            FEED_WRITE_FAILURES.inc(len(events))
            log.error("change feed: %d events not announced (%s); syncd's reconcile will find them",
                      len(events), exc)
            return False
        FEED_JOURNALS.inc()
        for e in events:
            FEED_EVENTS.labels(e.op).inc()
        return True


class AnnouncingStore(ObjectStore):
    """An object store whose writes (outside the hidden `.fsgateway/`) are announced once stored.

    For the checker: releases, metadata, quarantine copies and the clearing of
    incoming/ reach syncd through the feed like the mount's writes. Set `feed`
    before the first write; None announces nothing.
    """

    feed: FeedWriter | None = None

    async def _announce(self, op: str, key: str, **fields: Unpack[EventFields]) -> None:
        if self.feed is not None and not reserved.is_reserved(key):
            await self.feed.announce(self.feed.event(op, key, **fields))

    async def put(self, key: str, body: Body, metadata: dict[str, str], content_type: str,
                  if_none_match: bool = False, cache_control: str | None = None, md5_hex: str | None = None) -> str:
        etag = await super().put(key, body, metadata, content_type, if_none_match, cache_control, md5_hex)
        size = body.length if isinstance(body, FileSlice) else len(body)
        await self._announce("put", key, size=size, etag=etag or None, sha256=metadata.get("fsg-sha256"))
        return etag

    async def copy(self, src: str, dst: str, size: int, metadata: dict[str, str] | None,
                   content_type: str | None, cache_control: str | None = None, if_match: str | None = None) -> str:
        etag = await super().copy(src, dst, size, metadata, content_type, cache_control, if_match)
        await self._announce("put", dst, size=size, etag=etag or None, sha256=(metadata or {}).get("fsg-sha256"))
        return etag

    async def delete(self, key: str) -> None:
        await super().delete(key)
        await self._announce("delete", key)
