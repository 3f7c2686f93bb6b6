"""The mount's side of the change feed: group commit of events into journal objects.

`announce()` returns once the journal object holding its events is stored,
so when close() returns the change is both durable and announced. Events
arriving while a journal PUT is under way wait for the next one: many closes
in a short window cost one PUT, and a lone close waits for one PUT only. A
journal object that cannot be stored is logged and counted, never a failed
close: the object itself is committed, and syncd's reconcile finds it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import trio

from . import feed, metrics
from .store import ObjectStore, StoreError

log = logging.getLogger("fsgateway.feed")

MAX_EVENTS = 1000  # per journal object, so a reader's GET stays small


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

    @staticmethod
    def event(op: str, key: str, **fields: object) -> feed.Event:
        return feed.Event(op=op, key=key, time=feed.iso(datetime.now(UTC)), **fields)  # type: ignore[arg-type]

    async def announce(self, *events: feed.Event) -> None:
        """Wait until `events` are in a stored journal object (or their PUT failed for good)."""
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
            for start in range(0, len(batch.events), MAX_EVENTS):
                await self._write(batch.events[start:start + MAX_EVENTS])
            batch.done.set()

    async def _write(self, events: list[feed.Event]) -> None:
        # Strictly increasing per writer, so this host's journal keys sort in the order written.
        written = max(datetime.now(UTC), self.last + timedelta(microseconds=1))
        self.last = written
        self.seq += 1
        journal = feed.Journal(self.host, self.run_id, self.seq, written, tuple(events))
        key = feed.journal_key(written, self.host, self.run_id, self.seq)
        try:
            await self.store.put(key, feed.encode(journal), {}, "application/json")
        except StoreError as exc:
            metrics.FEED_WRITE_FAILURES.inc(len(events))
            log.error("change feed: %d events not announced (%s); syncd's reconcile will find them",
                      len(events), exc)
            return
        metrics.FEED_JOURNALS.inc()
        for e in events:
            metrics.FEED_EVENTS.labels(e.op).inc()
