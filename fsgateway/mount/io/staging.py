"""The mount's local staging directory and its space budget (`cache_size`).

It holds staging files (`staging-*`, staged.py) and the spool files of streamed
parts (`spool-*`, spool.py); both count against the same `cache_size`.
"""

from __future__ import annotations

import errno
import logging
import os
import uuid

from fsgateway.mount import metrics
from fsgateway.mount.io.upload import WriteError, local_io

log = logging.getLogger("fsgateway.writer")

PREFIXES = ("staging-", "spool-")  # the files of this directory; anything with them at start was left by a crash


class StagingArea:
    """Local staging files of one mount, their total size bounded by `cache_size`.

    The directory is the mount's own (several mounts may share `cache_dir`), so
    what a crashed run left there can be removed at start. Removed under a
    running mount, it is made again for the next file; a staged file is
    copied back from its descriptor when committed, a spooled part that was
    removed fails its file's upload (EIO at close).
    """

    def __init__(self, directory: str, limit: int) -> None:
        self.directory = directory
        self.limit = limit
        self.used = 0
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for stale in os.listdir(directory):  # left by a crash: their data was never acknowledged
            if stale.startswith(PREFIXES):
                os.unlink(os.path.join(directory, stale))

    def create(self, prefix: str = "staging-") -> tuple[str, int]:
        """A new empty file (`prefix`: one of PREFIXES): its path and a descriptor open for reading and writing."""
        path = os.path.join(self.directory, f"{prefix}{uuid.uuid4().hex}")
        with local_io("staging file"):
            try:
                return path, os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            except FileNotFoundError:  # removed under the mount (an operator emptying cache_dir, a tmp cleaner)
                log.warning("staging directory %s was removed; made again", self.directory)
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                return path, os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)

    def reserve(self, delta: int) -> None:
        """Count `delta` more bytes (fewer when negative); past `cache_size` is ENOSPC and counts nothing."""
        if delta > 0 and self.used + delta > self.limit:
            raise WriteError(errno.ENOSPC, f"staging space exhausted ({self.used + delta} > cache_size {self.limit})")
        self.used += delta
        metrics.STAGING_BYTES.set(self.used)
