"""Reading the change feed from a durable cursor; expiring old journal objects.

Each poll lists `.fsgateway/feed/` from `feed_lookback` seconds behind the
cursor (hosts' clocks differ, and a journal PUT may be retried for a while
after the time in its name), skips journal objects already applied (their
names are kept for the window only), and turns each new one into pending keys
and a cursor move in one transaction. Events are hints: what is copied is
always the primary's state at copy time, so order between hosts does not matter.
A journal object that appears later than the lookback window is missed here;
the periodic reconcile repairs that.
"""

from __future__ import annotations

import errno
import logging
import time
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from functools import partial

from fsgateway.formats import feed
from fsgateway.store.client import ObjectStore, StoreError
from fsgateway.store.concurrency import gather

from . import metrics
from .plan import Filters
from .state import State

log = logging.getLogger("syncd.feed")


class FeedReader:
    def __init__(self, primary: ObjectStore, state: State, filters: Filters, lookback: float,
                 concurrency: int) -> None:
        self.primary = primary
        self.concurrency = concurrency
        self.state = state
        self.filters = filters
        self.lookback = timedelta(seconds=lookback)
        self.read_at = time.time()  # when the feed was last read to its end

    def start_cursor(self) -> None:
        """A fresh state starts reading at now minus the lookback; the first reconcile covers what came before."""
        if self.state.get("cursor") is None:
            self.state.put("cursor", feed.start_after(datetime.now(UTC) - self.lookback))

    def cursor_time(self) -> datetime:
        return feed.key_time(self.state.get("cursor") or "") or datetime.now(UTC)

    async def poll(self) -> int:
        """Apply the journal objects written since the last poll; returns how many."""
        start = feed.start_after(self.cursor_time() - self.lookback)
        applied = self.state.applied(start)
        count = 0
        async for page in self.primary.list_all(feed.FEED_PREFIX, start_after=start):
            new = [e.key for e in page.entries if e.key not in applied]
            journals = await gather([partial(self._read, name) for name in new], limit=self.concurrency)
            for name, journal in zip(new, journals, strict=True):  # applied in order: the cursor only moves on
                self._apply(name, journal)
            count += len(new)
        self.state.prune_applied(start)
        self.read_at = time.time()
        return count

    async def _read(self, name: str) -> feed.Journal | None:
        """The journal object `name`, or None when it is malformed or already gone (skipped)."""
        try:
            return feed.decode(await self.primary.get(name))
        except (feed.FeedFormatError, StoreError) as exc:
            if isinstance(exc, StoreError) and exc.errno != errno.ENOENT:
                raise  # transient trouble: the next poll reads it again
            metrics.FEED_JOURNALS.labels("malformed").inc()
            log.warning("skipping journal object %s: %s", name, exc)
            return None

    def _apply(self, name: str, journal: feed.Journal | None) -> None:
        if journal is None:
            self.state.apply_journal(name, [], name)
            return
        changes = [(key, feed.parse_time(e.time).timestamp(), e.size or 0)
                   for e in journal.events for key in e.touched() if self.filters.wanted(key)]
        self.state.apply_journal(name, changes, name)
        metrics.FEED_JOURNALS.labels("applied").inc()

    async def expire(self, retention: float, concurrency: int) -> int:
        """Delete journal objects older than `retention` that the cursor has left behind. Returns how many."""
        if retention <= 0:
            return 0
        now = datetime.now(UTC)
        end = feed.start_after(min(now - timedelta(seconds=retention), self.cursor_time() - self.lookback))
        old: list[str] = []
        async with aclosing(self.primary.list_all(feed.FEED_PREFIX)) as pages:
            async for page in pages:
                old.extend(e.key for e in page.entries if e.key < end)
                if page.entries and page.entries[-1].key >= end:
                    break
        await gather([partial(self.primary.delete, key) for key in old], limit=concurrency)
        metrics.FEED_EXPIRED.inc(len(old))
        if old:
            log.info("expired %d journal objects older than %s", len(old), feed.iso(now - timedelta(seconds=retention)))
        return len(old)
