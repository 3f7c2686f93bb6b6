"""Running the mount: pyfuse3 session, the trio nursery, signals, readiness, watchdog."""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Callable
from functools import partial

import pyfuse3
import trio

from fsgateway.daemon import identity, lifecycle, notify
from fsgateway.mount import housekeeping, memory, metrics
from fsgateway.mount.adapter import FuseOperations
from fsgateway.mount.feedwal import FeedWal
from fsgateway.mount.fs.core import Filesystem
from fsgateway.mount.options import Config
from fsgateway.store.client import ObjectStore, StoreSettings

log = logging.getLogger("fsgateway.mount")


def fuse_options(cfg: Config) -> set[str]:
    opts = {f"fsname={cfg.fsname or cfg.source}", "subtype=fsgateway", "noatime"}
    if cfg.allow_other:
        # The core does not check permissions itself: other users get the kernel's checks, always.
        opts.update(("allow_other", "default_permissions"))
    if cfg.default_permissions:
        opts.add("default_permissions")
    if cfg.ro:
        opts.add("ro")
    return opts


async def _unmount(fs: Filesystem, signame: str) -> None:
    log.info("%s received: committing open files and unmounting", signame)
    await fs.flush_all()  # shielded by lifecycle.stop_on_signal: a forced unmount must not cut commits short
    pyfuse3.terminate()


def set_kernel_read_ahead(mountpoint: str, size: int) -> None:
    """Raise the kernel's read-ahead for this mount: 1 MiB FUSE reads instead of 128 KiB ones.

    Runs after the INIT reply (the kernel sets read-ahead from it). The backing
    device is found in /proc/self/mountinfo, not by stat(): a stat of our own
    mountpoint from inside the daemon would wait for ourselves.
    """
    if size <= 0:
        return
    try:
        with open("/proc/self/mountinfo") as f:
            dev = next(line.split()[2] for line in f if line.split()[4] == mountpoint)
        with open(f"/sys/class/bdi/{dev}/read_ahead_kb", "w") as f:
            f.write(str(size // 1024))
    except (OSError, StopIteration) as exc:
        log.info("kept the kernel's default read-ahead (%s)", exc)


def run(cfg: Config, settings: StoreSettings, on_ready: Callable[[], None]) -> None:
    """Mount, serve until unmounted or signalled, unmount. Raises on mount failure."""
    # The event loop serves every FUSE request; boto3 threads must not hold the GIL for the default 5 ms.
    sys.setswitchinterval(0.0005)
    memory.tune_allocator()  # so the documented memory bounds hold for the resident size too
    ops = FuseOperations.__new__(FuseOperations)
    pyfuse3.init(ops, cfg.mountpoint, fuse_options(cfg))
    clean = False
    try:
        trio.run(_serve, cfg, settings, ops, on_ready)
        clean = True
    finally:
        metrics.UP.set(0)
        pyfuse3.close(unmount=True)
        log.info("unmounted %s%s", cfg.mountpoint, "" if clean else " after an error")


def open_feed_wal(cfg: Config, fs: Filesystem, host: str) -> FeedWal | None:
    """The change feed's write-ahead log in cache_dir, adopting what a crashed run left; None when off."""
    feed = fs.ctx.feed
    if feed is None or cfg.feed_flush <= 0:
        return None
    wal = FeedWal(os.path.join(cfg.cache_dir, "feed", host), feed, cfg.feed_wal_size, cfg.feed_flush)
    try:
        wal.open()
    except OSError as exc:  # BlockingIOError: another run of this very mount holds it
        log.error("change feed: no write-ahead log in %s (%s); each close waits for its journal PUT", wal.dir, exc)
        return None
    feed.use_local(wal)
    return wal


async def _drain(wal: FeedWal | None, seconds: float, when: str) -> None:
    """Store what the write-ahead log holds, bounded; what is left is flushed later or at the next start."""
    if wal is None:
        return
    with trio.move_on_after(seconds):
        if await wal.drain():
            return
    log.warning("change feed: write-ahead log not emptied %s; it is kept in %s", when, wal.dir)


async def _serve(cfg: Config, settings: StoreSettings, ops: FuseOperations, on_ready: Callable[[], None]) -> None:
    store = ObjectStore(settings)
    host = identity.host_id(cfg.bucket, cfg.prefix, cfg.mountpoint)
    run_id = uuid.uuid4().hex[:12]
    async with trio.open_nursery() as nursery:
        fs = Filesystem(cfg, store, nursery, host, run_id)
        wal = open_feed_wal(cfg, fs, host)  # before the first request: every announcement goes through it
        if wal is not None:
            nursery.start_soon(wal.run)
        FuseOperations.__init__(ops, fs, after_init=lambda: nursery.start_soon(
            trio.to_thread.run_sync, set_kernel_read_ahead, cfg.mountpoint, cfg.kernel_read_ahead))
        nursery.start_soon(lifecycle.stop_on_signal, partial(_unmount, fs))
        nursery.start_soon(housekeeping.clean_staging, store, host, run_id, cfg.stale_upload_age)
        nursery.start_soon(lifecycle.watchdog)
        await _drain(wal, cfg.retry_deadline, "at start")  # a crashed run's announcements go first
        metrics.UP.set(1)
        on_ready()
        notify.notify(f"READY=1\nSTATUS=serving {cfg.source} at {cfg.mountpoint}")
        log.info("mounted %s at %s (endpoint %s)", cfg.source, cfg.mountpoint, settings.endpoint or "AWS")
        await pyfuse3.main()
        with trio.CancelScope(shield=True):  # unmounted from outside with files still open
            await fs.flush_all()
            await _drain(wal, cfg.retry_deadline, "at unmount")
        nursery.cancel_scope.cancel()
