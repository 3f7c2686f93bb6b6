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

from fsgateway.concurrency import gather
from fsgateway.store import ObjectStore

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
        return (f"{self.listed} keys in the primary, {self.replicated} out of sync, {self.failed} failed, "
                f"{self.deleted} deleted, {self.held} deletes held back, {self.seconds:.1f} s")


BATCH = 1000  # keys replicated per gather, so a million-key bucket is not a million tasks at once


async def list_versions(store: ObjectStore, filters: Filters) -> dict[str, Version]:
    out: dict[str, Version] = {}
    token = None
    while True:
        objs, _, token = await store.list_page("", token, delimiter="")
        out.update((o["Key"], Version.of_listing(o)) for o in objs if filters.wanted(o["Key"]))
        if token is None:
            return out


async def reconcile(rep: Replicator, state: State, filters: Filters, concurrency: int, mirror: bool,
                    dry_run: bool = False, out: TextIO | None = None) -> Report:
    """One full pass. A failed listing raises (and deletes nothing); a failed key is counted in the report."""
    t0 = time.monotonic()
    report = Report()
    rep.new_run()
    backup, primary = await gather([partial(list_versions, rep.backup, filters),
                                    partial(list_versions, rep.primary, filters)])
    todo: list[tuple[str, Version, bool]] = []
    for key, version in primary.items():
        kind = classify(version, backup.get(key), state.record(key))
        if kind != IN_SYNC:
            todo.append((key, version, kind == MISSING))
            metrics.DRIFT.labels("missing" if kind == MISSING else "changed").inc()
            if out is not None:
                print(f"{'copy' if kind == MISSING else 'check'} {key}", file=out)
    report.listed, report.replicated = len(primary), len(todo)
    for start in range(0, 0 if dry_run else len(todo), BATCH):
        errors = await gather([partial(rep.sync, key, version, missing)
                               for key, version, missing in todo[start:start + BATCH]], limit=concurrency)
        report.failed += sum(e is not None for e in errors)
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
