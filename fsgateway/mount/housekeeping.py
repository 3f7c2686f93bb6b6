"""Start-up clean-up of what a crashed gateway left in the bucket.

Streaming uploads go to `.fsgateway/staging/<host-id>/...`. At start, this
host's leftovers (its previous run is dead) are removed at once; other
hosts' only once older than `stale_upload_age`, since they may be running.
While the mount runs, clean-up that failed is retried by the `Janitor`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import trio

from fsgateway.formats.keys import STAGING_PREFIX
from fsgateway.mount import metrics
from fsgateway.store import deadline
from fsgateway.store.client import ObjectStore, StoreError

log = logging.getLogger("fsgateway.housekeeping")


def _is_stale(key: str, started: datetime | None, own_prefix: str, current: str, max_age: float,
              now: datetime) -> bool:
    if key.startswith(current):
        return False  # this run's own uploads, already under way
    if key.startswith(own_prefix):
        return True
    return started is not None and (now - started).total_seconds() > max_age


async def clean_staging(store: ObjectStore, own_host: str, run_id: str, max_age: float) -> int:
    """Abort stale staging uploads and delete stale staging objects; returns how many."""
    own_prefix = f"{STAGING_PREFIX}{own_host}/"
    current = f"{own_prefix}{run_id}-"
    now = datetime.now(UTC)
    removed = 0
    try:
        for up in await store.list_multipart_uploads(STAGING_PREFIX):
            if _is_stale(up.key, up.initiated, own_prefix, current, max_age, now):
                await store.abort_multipart(up.key, up.upload_id)
                removed += 1
        async for page in store.list_all(STAGING_PREFIX):
            for entry in page.entries:
                if _is_stale(entry.key, entry.last_modified, own_prefix, current, max_age, now):
                    await store.delete(entry.key)
                    removed += 1
    except Exception as exc:  # clean-up is best effort; it must never take the mount down
        log.warning("could not clean up staging uploads: %s", exc)
    if removed:
        metrics.STALE_UPLOADS_ABORTED.inc(removed)
        log.info("removed %d stale staging uploads/objects left by an earlier run", removed)
    return removed


class Janitor:
    """Clean-up that failed while the mount runs (the server was unreachable) is retried in the background.

    A failed upload must leave nothing behind: its staging upload is aborted and
    its staging object deleted at once, and when that fails too, here until it
    succeeds. Bounded; what does not fit, or what a crash leaves, the next start
    removes (`clean_staging`).
    """

    MAX_ITEMS = 10_000

    def __init__(self, store: ObjectStore, retry_deadline: float, max_interval: float = 60.0) -> None:
        self.store = store
        self.retry_deadline = retry_deadline
        self.max_interval = max_interval
        self.pending: dict[tuple[str, str | None], None] = {}  # (key, upload id or None for an object)
        self._wake = trio.Event()

    def later(self, key: str, upload_id: str | None = None) -> None:
        if len(self.pending) >= self.MAX_ITEMS:
            log.warning("clean-up queue full: %s left for the next start", key)
            return
        self.pending[(key, upload_id)] = None
        self._wake.set()

    async def run(self) -> None:
        interval = 1.0
        while True:
            await self._wake.wait()
            await trio.sleep(interval)
            for key, upload_id in list(self.pending):
                try:
                    with deadline.own(self.retry_deadline):
                        if upload_id is None:
                            await self.store.delete(key)
                        else:
                            await self.store.abort_multipart(key, upload_id)
                except StoreError:
                    continue
                del self.pending[(key, upload_id)]
                metrics.STALE_UPLOADS_ABORTED.inc()
                log.info("cleaned up %s left by a failed upload", key)
            if self.pending:
                interval = min(self.max_interval, interval * 2)
            else:
                interval = 1.0
                self._wake = trio.Event()
