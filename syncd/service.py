"""The running daemon (`run`) and the one-shot reconcile (`once`): tasks, readiness, shutdown.

`run` has four loops: the feed poll (journal objects → pending keys), the
workers (pending keys → backup), the periodic reconcile (also once at start
when the last successful one is older than `reconcile_interval`), and the
gauges/STATUS refresh. SIGTERM cancels them: requests under way finish,
multipart uploads are aborted, and everything already done is in the state.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable

import trio

from fsgateway.daemon import lifecycle, notify
from fsgateway.store.client import ObjectStore, StoreError

from . import metrics
from .copier import Copier
from .feedreader import FeedReader
from .options import SyncdOptions
from .plan import Filters
from .reconcile import Report, reconcile
from .replicate import Replicator
from .state import State
from .throttle import Throttle

log = logging.getLogger("syncd")


class Service:
    def __init__(self, opts: SyncdOptions, primary: ObjectStore, backup: ObjectStore, state: State,
                 server_side: bool) -> None:
        self.opts = opts
        self.state = state
        self.filters = Filters(opts.include, opts.exclude)
        self.copier = Copier(primary, backup, state, server_side, opts.part_size, opts.copy_buffers,
                             Throttle(opts.bandwidth_limit))
        self.rep = Replicator(primary, backup, self.copier, state, opts.delete == "mirror", opts.max_delete,
                              opts.concurrency, opts.retry_max_interval)
        self.feed = FeedReader(primary, state, self.filters, opts.feed_lookback, opts.concurrency)
        self.wake = trio.Event()
        self.status = ""

    async def _reconcile(self, dry_run: bool = False, show_progress: bool = False) -> Report:
        return await reconcile(self.rep, self.state, self.filters, self.opts.concurrency,
                               self.opts.delete == "mirror", dry_run, sys.stdout if dry_run else None, show_progress)

    async def _guarded(self, main: Callable[[], Awaitable[None]]) -> None:
        """Run `main` until it ends or a signal stops it."""
        async with trio.open_nursery() as nursery:

            async def stop(signame: str) -> None:
                log.info("%s received: stopping (requests under way finish, uploads are aborted)", signame)
                nursery.cancel_scope.cancel()

            async def body() -> None:
                await main()
                nursery.cancel_scope.cancel()

            nursery.start_soon(lifecycle.stop_on_signal, stop)
            nursery.start_soon(body)

    # ------------------------------------------------------------ once
    async def once(self, dry_run: bool, show_progress: bool = False) -> int:
        """One reconcile; 0 when everything is in sync, 1 when something failed. Progress bars on stderr."""
        result: list[Report] = []

        async def main() -> None:
            try:
                if not dry_run:
                    await self.copier.abort_leftovers()
                result.append(await self._reconcile(dry_run, show_progress))
            except StoreError as exc:
                log.error("reconcile failed: %s", exc)

        await self._guarded(main)
        if not result:
            return 1  # a listing failed, or a signal stopped it
        report = result[0]
        print(f"fsgateway-syncd once{' --dry-run' if dry_run else ''}: {report.line()}")
        if not dry_run and not report.failed:
            self._reconciled()
        return 1 if report.failed else 0

    # ------------------------------------------------------------ run
    async def run(self) -> None:
        self.feed.start_cursor()
        await self.copier.abort_leftovers()
        # The last success survives restarts: a restart that skips the start-up reconcile (not due yet)
        # must not export 0, which the FsgatewayBackupReconcileStale alert reads as "never".
        metrics.LAST_RECONCILE.set(float(self.state.get("last_reconcile") or 0))

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lifecycle.watchdog)
                nursery.start_soon(self._feed_loop)
                nursery.start_soon(self._worker_loop)
                nursery.start_soon(self._reconcile_loop)
                nursery.start_soon(self._gauges_loop)
                metrics.UP.set(1)
                notify.notify(f"READY=1\nSTATUS=serving: {self.opts.bucket} -> {self.opts.backup_bucket}")
                log.info("replicating %s to %s (cursor %s)", self.opts.bucket, self.opts.backup_bucket,
                         self.state.get("cursor"))

        try:
            await self._guarded(main)
        finally:
            metrics.UP.set(0)
        log.info("stopped; cursor %s", self.state.get("cursor"))

    async def _feed_loop(self) -> None:
        while True:
            if self.state.keep_file():  # StateError (replaced) stops syncd
                log.warning("state %s was removed while syncd ran; written back", self.state.path)
            try:
                if await self.feed.poll():
                    self.wake.set()
            except StoreError as exc:
                log.warning("change feed: %s (trying again)", exc)
            await trio.sleep(self.opts.feed_poll_interval)

    async def _worker_loop(self) -> None:
        while True:
            items = self.state.due(self.opts.concurrency * 8)
            if items:
                await self.rep.drain(items)
                continue
            due = self.state.next_due()
            timeout = self.opts.feed_poll_interval if due is None else min(max(due - time.time(), 0.05),
                                                                           self.opts.feed_poll_interval)
            with trio.move_on_after(timeout):
                await self.wake.wait()
            self.wake = trio.Event()

    async def _reconcile_loop(self) -> None:
        interval = self.opts.reconcile_interval
        next_at = float(self.state.get("last_reconcile") or 0) + interval
        while True:
            await trio.sleep(max(0.0, next_at - time.time()))
            ok = False
            try:
                report = await self._reconcile()
                ok = not report.failed
                log.info("reconcile: %s", report.line())
            except StoreError as exc:
                log.error("reconcile failed: %s", exc)
            metrics.RECONCILES.labels("ok" if ok else "error").inc()
            if ok:
                self._reconciled()
                try:
                    await self.feed.expire(self.opts.feed_retention, self.opts.concurrency)
                except StoreError as exc:
                    log.warning("could not expire old journal objects: %s", exc)
            next_at = time.time() + (interval if ok else min(interval, self.opts.retry_max_interval))

    def _reconciled(self) -> None:
        """Record a successful full reconcile: in the state (for the next start) and the gauge."""
        now = time.time()
        self.state.put("last_reconcile", str(now))
        metrics.LAST_RECONCILE.set(now)

    async def _gauges_loop(self) -> None:
        while True:
            b = self.state.backlog()
            behind = max(0.0, time.time() - b.oldest) if b.oldest is not None else 0.0
            metrics.PENDING_OBJECTS.set(b.objects)
            metrics.PENDING_BYTES.set(b.bytes)
            metrics.BEHIND.set(behind)
            metrics.FAILING.set(b.failing)
            metrics.FEED_LAG.set(time.time() - self.feed.read_at)
            status = f"STATUS={b.objects} pending, {behind:.0f} s behind, {b.failing} failing"
            if status != self.status:
                self.status = status
                notify.notify(status)
            await trio.sleep(1.0)
