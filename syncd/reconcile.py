"""The full reconcile: paged listings of both buckets, compared with syncd's records.

It catches what the feed cannot see (objects written by other tools, journal
objects lost or too late) and repairs drift in the backup. Both buckets are
listed at once (memory: one small entry per key), then out-of-sync keys are
replicated a batch at a time. A key whose listings match syncd's record costs
no request. Deletes (mirror mode) come last, all or nothing:
only when both listings completed, nothing failed in the run, and there are
no more than `max_delete` of them; each is confirmed by a HEAD on the primary.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import TextIO

from tqdm import tqdm

from fsgateway.daemon import progress
from fsgateway.store.client import ObjectStore
from fsgateway.store.concurrency import gather

from . import metrics
from .plan import IN_SYNC, MISSING, Filters, Version, classify
from .replicate import Replicator
from .state import State

log = logging.getLogger("syncd.reconcile")


@dataclass
class Report:
    listed: int = 0
    replicated: int = 0  # keys looked at because they were out of sync (copied, or found equal)
    failed: int = 0
    deleted: int = 0
    held: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (f"{self.listed} keys in the primary: {self.listed - self.replicated} already in the backup, "
                f"{self.replicated - self.failed} replicated, {self.failed} failed, "
                f"{self.deleted} deleted, {self.held} deletes held back, {self.seconds:.1f} s")


BATCH = 1000  # keys replicated per gather, so a million-key bucket is not a million tasks at once


async def list_versions(store: ObjectStore, filters: Filters, counter: tqdm | None = None) -> dict[str, Version]:
    out: dict[str, Version] = {}
    async for page in store.list_all(""):
        out.update((e.key, Version.of_listing(e)) for e in page.entries if filters.wanted(e.key))
        if counter is not None:
            counter.update(len(page.entries))
    return out


async def reconcile(rep: Replicator, state: State, filters: Filters, concurrency: int, mirror: bool,
                    dry_run: bool = False, out: TextIO | None = None, show_progress: bool = False) -> Report:
    """One full pass. A failed listing raises (and deletes nothing); a failed key is counted in the report.

    `show_progress` draws bars on stderr: keys listed, then bytes and objects replicated.
    """
    t0 = time.monotonic()
    report = Report()
    rep.new_run()
    with progress.bar("listing", None, "keys", show_progress) as listed:
        backup, primary = await gather([partial(list_versions, rep.backup, filters, listed),
                                        partial(list_versions, rep.primary, filters, listed)])
    todo: list[tuple[str, Version, bool]] = []
    for key, version in primary.items():
        kind = classify(version, backup.get(key), state.record(key))
        if kind != IN_SYNC:
            todo.append((key, version, kind == MISSING))
            metrics.DRIFT.labels("missing" if kind == MISSING else "changed").inc()
            if out is not None:
                print(f"{'copy' if kind == MISSING else 'check'} {key}", file=out)
    report.listed, report.replicated = len(primary), len(todo)
    if not dry_run:
        total = sum(version.size for _, version, _ in todo)
        with progress.bar("replicating", total, "B", show_progress and bool(todo)) as moved:
            finished = 0

            async def one(key: str, version: Version, missing: bool) -> None:
                nonlocal finished
                error = await rep.sync(key, version, missing)
                finished += 1
                report.failed += error is not None
                moved.set_postfix_str(f"{finished}/{len(todo)} objects, {report.failed} failed", refresh=False)
                moved.update(version.size)

            for start in range(0, len(todo), BATCH):
                await gather([partial(one, key, version, missing)
                              for key, version, missing in todo[start:start + BATCH]], limit=concurrency)
    extra = sorted(k for k in backup if k not in primary)
    metrics.DRIFT.labels("extra").inc(len(extra))
    if mirror and extra:
        await _deletes(rep, extra, dry_run, out, report)
    if not dry_run:
        state.forget(k for k in state.recorded_keys() if k not in primary)
    report.seconds = time.monotonic() - t0
    metrics.RECONCILE_SECONDS.observe(report.seconds)
    return report


async def _deletes(rep: Replicator, extra: list[str], dry_run: bool, out: TextIO | None, report: Report) -> None:
    if dry_run:
        allowed = not rep.guard.errors and len(extra) <= rep.max_delete
        for key in extra:
            if out is not None:
                print(f"{'delete' if allowed else 'held'} {key}", file=out)
        report.held += 0 if allowed else len(extra)
        return
    if not rep.guard.allow(len(extra)):
        report.held += len(extra)
        metrics.DELETES.labels("held").inc(len(extra))
        log.warning("not deleting %d objects from the backup that the primary no longer has: %s",
                    len(extra), rep.held_reason())
        return
    errors = await gather([partial(rep.delete_confirmed, key) for key in extra], limit=rep.concurrency)
    report.failed += sum(e is not None for e in errors)
    report.deleted += sum(e is None for e in errors)
