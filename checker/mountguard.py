"""Whether the fsgateway mount the checker watches is there; judging waits while it is not.

When the mount goes away (stopped, crashed, lazily unmounted), `/srv/firmware`
is a plain local directory again: uploads land on local disk and never reach
the bucket, so a package being uploaded would be rejected at its deadline for
parts that are sitting on the wrong disk. The checker says so (log, the
`fsgateway_checker_mount_up` gauge, `STATUS=`) and holds every verdict until
the mount is back; its inotify watch is then set up again on the new mount.
"""

from __future__ import annotations

import logging
import os

import trio

from fsgateway.daemon import notify

from . import metrics

log = logging.getLogger("checker.mount")


class MountGuard:
    def __init__(self, mount_dir: str, interval: float = 2.0) -> None:
        self.mount_dir = mount_dir
        self.interval = interval
        self.mounted = True  # the CLI refuses to start without the mount
        self.back = trio.Event()  # set while mounted; a new one each time the mount is lost
        self.back.set()
        self.lost = trio.Event()  # set once the mount is lost; a new one each time it is back
        self.gauge = metrics.MOUNT_UP.labels(mount_dir)  # a checker without a mount exports no such series
        self.gauge.set(1)

    async def run(self) -> None:
        while True:
            # A hung FUSE mount can block stat(): the thread is abandoned, the loop keeps its pace.
            with trio.move_on_after(max(self.interval, 5.0)) as scope:
                mounted = await trio.to_thread.run_sync(os.path.ismount, self.mount_dir, abandon_on_cancel=True)
            if scope.cancelled_caught:
                mounted = False
            if mounted != self.mounted:
                self._changed(mounted)
            await trio.sleep(self.interval)

    def _changed(self, mounted: bool) -> None:
        self.mounted = mounted
        self.gauge.set(1 if mounted else 0)
        if mounted:
            log.info("mount %s is back: judging again", self.mount_dir)
            notify.notify(f"STATUS=checking (mount {self.mount_dir} is back)")
            self.lost = trio.Event()
            self.back.set()
        else:
            log.error("mount %s is gone: uploads land on local disk now; no verdicts until it is back",
                      self.mount_dir)
            notify.notify(f"STATUS=waiting: {self.mount_dir} is not mounted (no verdicts until it is back)")
            self.back = trio.Event()
            self.lost.set()

    async def wait_mounted(self) -> None:
        while not self.mounted:
            await self.back.wait()
