"""A dead mount of ours at the mountpoint (the daemon was killed) is taken over.

After a crash or SIGKILL the kernel keeps the FUSE mount whose daemon is gone:
every access to the path fails with ENOTCONN ("Transport endpoint is not
connected"). The systemd unit's `ExecStopPost` detaches it; for fstab and
manual mounts the command does the same before mounting: a lazy unmount of a
dead `fuse.fsgateway` mount only. A dead mount of another filesystem is left
alone and reported.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import subprocess

log = logging.getLogger("fsgateway.mount")

FSTYPE = "fuse.fsgateway"  # FUSE's "fuse." + our subtype (mount.fuse_options)
DEAD = (errno.ENOTCONN, errno.ECONNABORTED)


def _unescape(field: str) -> str:
    """/proc/self/mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def fstype_at(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The filesystem type of the topmost mount at `path`, or None when nothing is mounted there."""
    found = None
    with open(mountinfo) as f:
        for line in f:
            fields, _, rest = line.partition(" - ")
            parts = fields.split()
            if len(parts) > 4 and _unescape(parts[4]) == path:
                found = rest.split()[0] if rest else None
    return found


def take_over(path: str) -> str | None:
    """Detach a dead fsgateway mount at `path`; returns a reason when the path cannot be used."""
    try:
        os.statvfs(path)  # never answered from the kernel's attribute cache, unlike stat()
        return None
    except OSError as exc:
        if exc.errno not in DEAD:
            return None  # the caller's own checks say what is wrong
    fstype = fstype_at(path)
    if fstype != FSTYPE:
        return (f"{path} is a dead {fstype or 'unknown'} mount (transport endpoint is not connected): "
                f"unmount it first (fusermount3 -uz {path})")
    r = subprocess.run(["fusermount3", "-uz", path], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return f"cannot detach the dead fsgateway mount at {path}: {r.stderr.strip() or r.returncode}"
    log.warning("took over %s: the fsgateway mount there was dead (its daemon was killed); detached it", path)
    return None
