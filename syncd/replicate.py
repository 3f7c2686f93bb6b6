"""Making one key of the backup what the primary's is: the step both the feed and the reconcile use.

Every failure is caught here, per key: it is logged, counted, and returned as
a reason, so one failing object never blocks the others, and it marks the run
so that mirror-mode deletes stop (`DeleteGuard`).
"""

from __future__ import annotations

import errno
import logging
import time
from functools import partial

from fsgateway.store.client import ObjectStore, StoreError
from fsgateway.store.concurrency import gather
from fsgateway.store.retry import Backoff

from . import metrics
from .copier import Copier
from .plan import COPY, HASH, METADATA, SAME, DeleteGuard, Record, Version, compare, same_metadata
from .state import Pending, State

log = logging.getLogger("syncd.replicate")


class Replicator:
    def __init__(self, primary: ObjectStore, backup: ObjectStore, copier: Copier, state: State, mirror: bool,
                 max_delete: int, concurrency: int, retry_max_interval: float) -> None:
        self.primary = primary
        self.backup = backup
        self.copier = copier
        self.state = state
        self.mirror = mirror
        self.max_delete = max_delete
        self.concurrency = concurrency
        self.backoff = Backoff(base=1.0, cap=retry_max_interval)
        self.guard = DeleteGuard(max_delete)

    def new_run(self) -> None:
        """A run starts (each reconcile, and the feed's deletes until the next one): a fresh delete budget."""
        self.guard = DeleteGuard(self.max_delete)

    async def sync(self, key: str, listed: Version | None = None, missing: bool = False) -> str | None:
        """Replicate `key`; None when done, else the reason it failed.

        `listed` and `missing` come from a reconcile's listings: a key the
        backup lacks is copied at once, without HEAD requests.
        """
        try:
            try:
                if missing and listed is not None:
                    await self._copy(key, listed)
                else:
                    await self._check(key)
            except StoreError as exc:
                if exc.errno != errno.ENOENT or await self.primary.head(key) is not None:
                    raise
                # Deleted from the primary since it was listed or announced (the checker clearing incoming/):
                # not an error, and no reason to hold mirror deletes back.
                metrics.VANISHED.inc()
                log.info("%r vanished from the primary before it was copied", key)
                await self._gone(key)
        except Exception as exc:
            self.guard.errors += 1
            log.error("could not replicate %r: %s", key, exc)
            return str(exc)
        return None

    async def _copy(self, key: str, src: Version) -> None:
        written = await self.copier.copy(key, src.size)
        self.state.remember(key, Record(src, written.size, written.etag))

    async def _check(self, key: str) -> None:
        src = await self.primary.head(key)
        if src is None:
            await self._gone(key)
            return
        # No shortcut through syncd's record here: HEAD's Last-Modified has whole seconds, and RGW keeps
        # the ETag of a metadata-only change, so a chmod right after a write would look unchanged.
        version = Version.of_info(src)
        dst = await self.backup.head(key)
        verdict, how = compare(src, dst), "compare"
        if verdict == HASH and dst is not None:
            same = (await self.copier.sha256(self.primary, key, src.size, src.etag)
                    == await self.copier.sha256(self.backup, key, dst.size, dst.etag))
            verdict, how = (same_metadata(src, dst) if same else COPY), "hash"
        if verdict == SAME and dst is not None:
            metrics.UNCHANGED.labels(how).inc()
            self.state.remember(key, Record(version, dst.size, dst.etag))
        elif verdict == METADATA:
            written = await self.copier.rewrite_metadata(key, src)
            self.state.remember(key, Record(version, written.size, written.etag))
        else:
            await self._copy(key, version)

    async def _gone(self, key: str) -> None:
        """The primary no longer has `key`: keep mode keeps the backup's copy; mirror mode deletes it."""
        if self.mirror and await self.backup.head(key) is not None:
            if not self.guard.allow():
                metrics.DELETES.labels("held").inc()
                log.warning("not deleting %r from the backup: %s", key, self.held_reason())
                return
            await self._delete(key)
        self.state.forget([key])

    async def delete_confirmed(self, key: str) -> str | None:
        """A reconcile's delete (budget already granted): only if the primary still lacks the key."""
        try:
            if await self.primary.head(key) is None:
                await self._delete(key)
                self.state.forget([key])
        except Exception as exc:
            self.guard.errors += 1
            metrics.DELETES.labels("error").inc()
            log.error("could not delete %r from the backup: %s", key, exc)
            return str(exc)
        return None

    async def _delete(self, key: str) -> None:
        await self.backup.delete(key)
        metrics.DELETES.labels("done").inc()
        log.info("deleted %r from the backup (deleted in the primary)", key)

    def held_reason(self) -> str:
        if self.guard.errors:
            return f"{self.guard.errors} errors in this run (deletes resume after an error-free reconcile)"
        return f"max_delete={self.max_delete} reached in this run"

    async def drain(self, items: list[Pending]) -> int:
        """Replicate pending keys (from the feed); failures are retried later with backoff. Returns failures."""

        async def one(item: Pending) -> bool:
            error = await self.sync(item.key)
            if error is None:
                self.state.done(item)
                return True
            self.state.failed(item.key, error, time.time() + max(1.0, self.backoff.delay(item.attempts)))
            return False

        results = await gather([partial(one, item) for item in items], limit=self.concurrency)
        return results.count(False)
