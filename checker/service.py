"""The checker daemon: events and listings in, one verdict per landed package out.

Two ways a package comes to be looked at: inotify events on the mount
(watchdog `close_write`/`moved_to`, the fast path for uploads through this
host) and a periodic listing of incoming/ (uploads from other hosts or
straight into the bucket, and anything an event missed). Either way the
package's objects are listed afresh and judged under a per-package lock, so
events only ever say "look again". The checker never reads the change feed; it
writes it (cli.py wraps its store in feedwriter.AnnouncingStore) so that syncd
mirrors releases, metadata and quarantine within seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import trio
from watchdog.events import (
    DirMovedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from fsgateway.daemon import notify
from fsgateway.daemon.logs import escape
from fsgateway.formats.s3format import DIR_CONTENT_TYPE
from fsgateway.store.client import ListEntry, ObjectStore, StoreError

from . import landing, metrics, rules, signing, status
from .db import Database, Tx, Verdict, storable
from .judge import Decision, Judge, rejected, staging_key
from .landing import Package, Part
from .mountguard import MountGuard
from .publisher import Publisher
from .tufrepo import release_key
from .workqueue import FairQueue

log = logging.getLogger("checker")


RETRY_FIRST, RETRY_MAX = 5.0, 60.0  # seconds: after a failed refresh, 5, 10, 20, 40, 60, 60, ...


def refresh_delay(failures: int, interval: float) -> float:
    """Seconds until the next refresh: the interval, or a short backoff after failures in a row."""
    if failures == 0:
        return interval
    return min(interval, RETRY_FIRST * 2 ** min(failures - 1, 10), RETRY_MAX)


def _part(entry: ListEntry) -> Part:
    return Part(entry.key, entry.size, entry.etag, entry.last_modified.timestamp() if entry.last_modified else 0.0)


@dataclass
class Checker:
    store: ObjectStore
    db: Database
    judge: Judge
    publisher: Publisher
    prefix: str
    host: str
    reconcile_interval: float
    concurrency: int
    locks: dict[str, trio.Lock] = field(default_factory=dict)
    pending: dict[str, float] = field(default_factory=dict)  # package prefix -> first part's arrival
    queue: FairQueue = field(default_factory=FairQueue)
    timers: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)  # verdicts by outcome since start, for STATUS=
    mount: MountGuard | None = None  # with a mount_dir: no verdicts while the mount is gone
    told: dict[str, tuple[str, str]] = field(default_factory=dict)  # pending package -> (reason, detail) in status

    @property
    def incoming(self) -> str:
        return f"{self.prefix}{rules.INCOMING}"

    # ------------------------------------------------------------------ wiring
    async def run(self, mount_dir: str, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        failures = await self._refresh(0)  # ready once devices can refresh (when S3 lets us)
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            for _ in range(self.concurrency):
                nursery.start_soon(self._worker)
            if mount_dir:
                self.mount = MountGuard(mount_dir)
                nursery.start_soon(self.mount.run)
                nursery.start_soon(self._watch, mount_dir)
            nursery.start_soon(self._reconcile_loop)
            nursery.start_soon(self._refresh_loop, failures)
            task_status.started()

    def enqueue(self, package_prefix: str) -> None:
        """Queue a package to be looked at (once however often asked), in its model's lane."""
        model = package_prefix[len(self.incoming):].split("/", 1)[0]
        self.queue.put(package_prefix, model, again=package_prefix in self.pending)

    async def _worker(self) -> None:
        while True:
            package_prefix = await self.queue.get()
            await self._mounted()
            try:
                await self.look(package_prefix)
            except Exception:
                metrics.ERRORS.labels("judge").inc()
                log.exception("looking at %s failed; it will be looked at again", package_prefix)

    async def _reconcile_loop(self) -> None:
        while True:
            await trio.to_thread.run_sync(self.db.keep_file)  # DatabaseError stops the checker
            await self._mounted()
            try:
                await self.reconcile()
            except Exception:
                metrics.ERRORS.labels("reconcile").inc()
                log.exception("listing %s failed; retrying at the next interval", self.incoming)
            with trio.move_on_after(10 * self.reconcile_interval):  # back-pressure: list again once caught up
                await self.queue.drained()
            await trio.sleep(self.reconcile_interval)

    async def _refresh_loop(self, failures: int) -> None:
        """Look after the TUF repository every refresh interval; failures are retried soon."""
        while True:
            await trio.sleep(refresh_delay(failures, self.publisher.policy.refresh_interval))
            failures = await self._refresh(failures)

    async def _refresh(self, failures: int) -> int:
        """One refresh; returns the failures in a row since the last success."""
        try:
            await self.publisher.refresh()
            return 0
        except Exception:
            metrics.ERRORS.labels("timestamp").inc()
            log.exception("re-signing TUF metadata failed (%d in a row); retrying in %.0f s", failures + 1,
                          refresh_delay(failures + 1, self.publisher.policy.refresh_interval))
            return failures + 1

    async def _mounted(self) -> None:
        if self.mount is not None:
            await self.mount.wait_mounted()

    async def _watch(self, mount_dir: str) -> None:
        """Watch <mount>/incoming while mounted; set the watch up again each time the mount comes back."""
        assert self.mount is not None
        while True:
            await self.mount.wait_mounted()
            lost = self.mount.lost
            async with trio.open_nursery() as watch:
                watch.start_soon(self._observe, mount_dir)
                await lost.wait()
                watch.cancel_scope.cancel()

    async def _ensure_incoming(self, root: str) -> None:
        """Make <mount>/incoming exist. Its marker is written to the bucket, not made with mkdir through the mount:
        a mkdir would carry the checker's umask (077), which a server that drops directory metadata
        (SeaweedFS) cannot keep, so the mount refuses it; the marker shows with the mount's default mode."""
        if await trio.to_thread.run_sync(os.path.isdir, root):
            return
        await self.store.put(self.incoming, b"", {}, DIR_CONTENT_TYPE)
        with trio.fail_after(60):  # the mount may remember "no such name" for its stat_ttl
            while not await trio.to_thread.run_sync(os.path.isdir, root):
                await trio.sleep(0.2)

    async def _observe(self, mount_dir: str) -> None:
        """Run a watchdog observer on <mount>/incoming; events become package prefixes to look at."""
        root = os.path.join(mount_dir, rules.INCOMING.rstrip("/"))
        await self._ensure_incoming(root)
        token = trio.lowlevel.current_trio_token()
        checker = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if isinstance(event, FileClosedEvent):
                    path, kind = event.src_path, "close_write"
                elif isinstance(event, FileMovedEvent | DirMovedEvent):
                    path, kind = event.dest_path, "moved_to"
                else:
                    return
                rel = os.path.relpath(os.fsdecode(path), root)
                parts = rel.split(os.sep)
                if rel.startswith("..") or len(parts) < 2:
                    return
                metrics.EVENTS.labels(kind).inc()
                target = f"{checker.incoming}{parts[0]}/{parts[1]}/"
                with contextlib.suppress(trio.RunFinishedError):  # shutting down
                    trio.from_thread.run_sync(checker.enqueue, target, trio_token=token)

        observer = Observer()
        observer.schedule(Handler(), root, recursive=True)
        observer.start()
        log.info("watching %s for close_write and moved_to", root)
        try:
            await trio.sleep_forever()
        finally:
            observer.stop()
            await trio.to_thread.run_sync(observer.join)

    # ------------------------------------------------------------------ listing
    async def _list(self, prefix: str) -> list[Part]:
        return [_part(entry) async for page in self.store.list_all(prefix) for entry in page.entries]

    async def reconcile(self) -> None:
        await self.resume_open_verdicts()
        packages, strays = landing.group(await self._list(self.incoming), self.incoming)
        for pkg in packages:
            self.enqueue(pkg.prefix)
        for part, problem in strays:
            await self.reject_stray(part, problem)
        live = {p.prefix for p in packages}
        for gone in set(self.pending) - live:
            self.pending.pop(gone, None)
            self.told.pop(gone, None)
        self._pending_gauges()
        metrics.LAST_RECONCILE.set(time.time())

    def _pending_gauges(self) -> None:
        metrics.PENDING.set(len(self.pending))
        oldest = min(self.pending.values(), default=None)
        metrics.OLDEST_PENDING.set(time.time() - oldest if oldest else 0)

    # ------------------------------------------------------------------ one package
    async def look(self, package_prefix: str) -> None:
        lock = self.locks.setdefault(package_prefix, trio.Lock())
        async with lock:
            pkg = await self._package(package_prefix)
            opened = await trio.to_thread.run_sync(self.db.open_verdicts, package_prefix)
            unfinished: set[Part] = set()
            for verdict in opened:  # judged before a crash: finished from what was judged, whatever is left
                judged = self._judged(verdict, pkg)
                try:
                    await self.finish(judged, verdict)
                except Exception:
                    metrics.ERRORS.labels("judge").inc()
                    log.exception("finishing the verdict on %s failed; it will be tried again", package_prefix)
                    unfinished.update(judged.parts.values())
            if opened:
                pkg = await self._package(package_prefix)
            if pkg is not None and unfinished & set(pkg.parts.values()):
                return  # parts of a verdict not closed yet are never judged again
            if pkg is None or not pkg.parts:
                self.pending.pop(package_prefix, None)
                self.told.pop(package_prefix, None)
                if pkg is None:
                    self.locks.pop(package_prefix, None)
                self._pending_gauges()
                return
            await self.handle(pkg)
            self._pending_gauges()

    async def _package(self, package_prefix: str) -> Package | None:
        packages, _ = landing.group(await self._list(landing.listable(package_prefix)), self.incoming)
        return next((p for p in packages if p.prefix == package_prefix), None)

    def _judged(self, verdict: Verdict, now: Package | None) -> Package:
        """The package as it was judged (its recorded parts), with the temporaries listed now."""
        if verdict.parts:
            packages, _ = landing.group(list(verdict.parts), self.incoming)
            pkg = packages[0]
        elif now is not None and now.package_id() == verdict.package_id:  # recorded before parts were kept
            return now
        else:
            model, version = verdict.package[len(self.incoming):].split("/")[:2]
            pkg = Package(verdict.package, model, version)
        pkg.hidden = now.hidden if now is not None else []
        return pkg

    async def handle(self, pkg: Package) -> None:
        package_id = pkg.package_id()
        existing = await trio.to_thread.run_sync(self.db.verdict, package_id)
        if existing is not None:  # judged before (by us before a crash, or by another host)
            await self.finish(pkg, existing)
            return
        try:
            decision = await self.judge.examine(pkg, time.time())
        except StoreError:
            raise  # the bucket: looked at again
        except self.db.unavailable:
            raise  # the database: looked at again
        except Exception as exc:  # a failure on this package's own bytes: judged, never retried for ever
            metrics.ERRORS.labels("judge").inc()
            log.exception("judging %s failed; rejecting it", pkg.prefix)
            decision = rejected("checker_error", f"{type(exc).__name__}: {exc}")
        if decision.outcome == "pending":
            self.pending.setdefault(pkg.prefix, pkg.first_seen())
            self._recheck_at_deadline(pkg)
            log.debug("pending %s: %s", pkg.prefix, decision.detail)
            await self.tell(pkg.prefix, pkg.model, pkg.version, package_id, "pending", decision.reason,
                            decision.detail, deadline=pkg.first_seen() + self.judge.pending_deadline)
            return
        self.pending.pop(pkg.prefix, None)
        verdict, ours = await trio.to_thread.run_sync(self.record, pkg, package_id, decision)
        if ours:
            self.counts[verdict.outcome] = self.counts.get(verdict.outcome, 0) + 1
            notify.notify(f"STATUS={verdict.outcome} {escape(pkg.prefix)} ({verdict.reason}); so far: "
                          + ", ".join(f"{n} {o}" for o, n in sorted(self.counts.items()))
                          + f"; {len(self.pending)} pending")
            metrics.VERDICTS.labels(verdict.outcome, verdict.reason).inc()
            metrics.LATENCY.observe(max(0.0, time.time() - pkg.landed_at()))
            level = logging.INFO if verdict.outcome != "rejected" else logging.WARNING
            log.log(level, "%s %s: %s%s", verdict.outcome, pkg.prefix, verdict.reason,
                    f" ({verdict.detail})" if verdict.detail else "")
        await self.finish(pkg, verdict)

    def record(self, pkg: Package, package_id: str, d: Decision) -> tuple[Verdict, bool]:
        """Record the verdict; any failure but an unavailable database ends in a rejection saying why.

        What is recorded comes from uploaders (names, manifest fields): a
        string the database cannot store must not leave the package unjudged
        and retried for ever.
        """
        try:
            return self._record(pkg, package_id, d)
        except self.db.unavailable:
            raise
        except Exception as exc:
            metrics.ERRORS.labels("record").inc()
            log.exception("recording the verdict on %s failed; rejecting it", pkg.prefix)
            return self._record(pkg, package_id, rejected("record_failed", f"{type(exc).__name__}: {exc}"))

    def _record(self, pkg: Package, package_id: str, d: Decision) -> tuple[Verdict, bool]:
        """Arbitrate in one transaction: the version policy again, then release and verdict rows."""
        with self.db.transaction() as tx:
            found = self.db.tx_verdict(tx, package_id)
            if found:
                return Verdict(package_id, pkg.prefix, found[0], found[1], found[2], False), False
            outcome, reason, detail = d.outcome, d.reason, d.detail
            if outcome in ("accepted", "duplicate") and d.manifest is not None:
                outcome, reason, detail = self._arbitrate(tx, package_id, d)
            verdict = Verdict(package_id, storable(pkg.prefix), outcome, reason, escape(detail), False,
                              tuple(pkg.parts.values()))
            self.db.record_verdict(tx, verdict, self.host)
            return verdict, True

    def _arbitrate(self, tx: Tx, package_id: str, d: Decision) -> tuple[str, str, str]:
        """The decision against what holds at this transaction, not when hashing began.

        A key revoked or a model narrowed while a large payload was hashed
        turns an acceptance into a rejection here.
        """
        m = d.manifest
        assert m is not None
        authority = signing.authority_problem(self.db.tx_key(tx, d.keyid), d.keyid, m.model)
        if authority:
            return "rejected", authority[1], authority[2] + " (when the verdict was recorded)"
        problem = rules.check_package(m, m.model, m.version, self.db.tx_model(tx, m.model))
        if problem:
            return "rejected", problem.reason, problem.detail + " (when the verdict was recorded)"
        problem = rules.version_decision(m, self.db.tx_equal_release(tx, m.model, m.version),
                                         self.db.tx_latest(tx, m.model, m.channel))
        if problem is None:
            release = rules.release_of(m)
            self.db.record_release(tx, release, d.manifest_text, self.prefix + release_key(release), package_id,
                                   d.keyid)
            return "accepted", "ok", f"{m.model} {m.version} (counter {m.release_counter}, {m.channel})"
        if problem.reason == "duplicate":
            return "duplicate", "duplicate", problem.detail
        return "rejected", problem.reason, problem.detail

    async def finish(self, pkg: Package, verdict: Verdict) -> None:
        """Carry out a recorded verdict (idempotent), clear the upload area, close the verdict."""
        staged = staging_key(self.prefix, verdict.package_id)
        parts = list(pkg.parts.values())
        if not verdict.done:
            where: dict[str, Any] = {}  # release= or quarantine=, for tell()
            if verdict.outcome in ("accepted", "duplicate"):
                release = await trio.to_thread.run_sync(self.db.release, pkg.model, pkg.version)
                if release is not None:
                    await self.publisher.release(release, staged, pkg.parts.get(release.name))
                    where["release"] = self.prefix + release_key(release)
            else:
                where["quarantine"] = await self.publisher.quarantine(pkg, parts, verdict)
                log.info("quarantined %s in %s", pkg.prefix, where["quarantine"])
            await self.tell(pkg.prefix, pkg.model, pkg.version, verdict.package_id, verdict.outcome, verdict.reason,
                            verdict.detail, **where)  # before the folder goes: the uploader always has an answer
        # Hidden temporaries older than the package (an interrupted rsync's) would stay forever.
        leftovers = [h for h in pkg.hidden if h.last_modified <= pkg.landed_at()]
        if leftovers:
            log.info("removing %d leftover temporary file(s) in %s", len(leftovers), pkg.prefix)
        await self.publisher.remove(parts + leftovers, staged, pkg.prefix)
        if not verdict.done:
            await trio.to_thread.run_sync(self.db.mark_done, verdict.package_id)

    async def reject_stray(self, part: Part, problem: rules.Problem) -> None:
        """A key outside incoming/<model>/<version>/: quarantined on its own."""
        package_id = hashlib.sha256(f"{part.key}\0{part.etag}\0{part.last_modified}".encode(
            "utf-8", "surrogateescape")).hexdigest()[:32]
        verdict = Verdict(package_id, storable(part.key), "rejected", problem.reason, escape(problem.detail), False,
                          (part,))
        with_lock = self.locks.setdefault(part.key, trio.Lock())
        async with with_lock:
            existing = await trio.to_thread.run_sync(self.db.verdict, package_id)
            if existing is None:
                def insert() -> bool:
                    with self.db.transaction() as tx:
                        return self.db.record_verdict(tx, verdict, self.host)

                if await trio.to_thread.run_sync(insert):
                    metrics.VERDICTS.labels("rejected", problem.reason).inc()
                    log.warning("rejected %s: %s (%s)", verdict.package, problem.reason, problem.detail)
            elif existing.done:
                await self.publisher.remove([part], "")
                return
            await self._close_stray(verdict)
        self.locks.pop(part.key, None)

    async def _close_stray(self, verdict: Verdict) -> None:
        """Quarantine a stray key and clear it (idempotent: parts are copied and removed only while unchanged)."""
        folder = await self.publisher.quarantine(None, list(verdict.parts), verdict)
        await self.tell(verdict.package, None, None, verdict.package_id, "rejected", verdict.reason, verdict.detail,
                        quarantine=folder)
        await self.publisher.remove(list(verdict.parts), "")
        await trio.to_thread.run_sync(self.db.mark_done, verdict.package_id)

    async def tell(self, package: str, model: str | None, version: str | None, package_id: str, state: str,
                   reason: str, detail: str, deadline: float | None = None, release: str = "",
                   quarantine: str = "") -> None:
        """Write the uploader's status object of a landing, unless it says this already (one PUT per change)."""
        if state == "pending" and self.told.get(package) == (reason, detail):
            return
        doc = status.build(package, model or "", version or "", state, reason, detail, time.time(),
                           deadline=deadline, release=release, quarantine=quarantine)
        await self.publisher.status(status.key(self.prefix, model, version, package_id), doc)
        if state == "pending":
            self.told[package] = (reason, detail)
        else:
            self.told.pop(package, None)

    def _recheck_at_deadline(self, pkg: Package) -> None:
        if pkg.prefix in self.timers:
            return
        self.timers.add(pkg.prefix)
        delay = max(0.0, pkg.first_seen() + self.judge.pending_deadline - time.time()) + 0.5

        async def later() -> None:
            await trio.sleep(delay)
            self.timers.discard(pkg.prefix)
            self.enqueue(pkg.prefix)

        self.nursery.start_soon(later)

    async def resume_open_verdicts(self) -> None:
        """Verdicts recorded but not carried out (a crash or failure in between) are finished, from the
        parts they judged even when those are gone already; at start and with every reconcile."""
        for verdict in await trio.to_thread.run_sync(self.db.open_verdicts):
            if verdict.package.startswith(self.incoming) and verdict.package.endswith("/"):
                self.enqueue(verdict.package)
            elif verdict.parts:  # a stray key
                key = verdict.parts[0].key
                try:
                    async with self.locks.setdefault(key, trio.Lock()):
                        await self._close_stray(verdict)
                except Exception:
                    metrics.ERRORS.labels("judge").inc()
                    log.exception("closing the verdict on %s failed; it will be tried again", verdict.package)
                self.locks.pop(key, None)
