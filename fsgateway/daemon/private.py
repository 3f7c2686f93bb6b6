"""Files only their owner may read: state, databases, logs, whatever the directory's mode or the umask.

A state directory that already exists with mode 0755 (made by a package, an
operator, an older version) must not make the version database or a log full
of object names readable by every local user. So each such file is created
0600 before anything writes it, and an existing one loses group and other
access. Daemons also run with umask 077, for the files SQLite adds itself.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable

UMASK = 0o077


def private_dir(path: str) -> None:
    """Create `path` (and parents) 0700 if missing; an existing directory keeps its mode."""
    os.makedirs(path, mode=0o700, exist_ok=True)


def private_file(path: str, create: bool = True) -> None:
    """Make `path` 0600 at most: created empty if missing (unless `create` is False), tightened if it exists."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        if create:
            raise
        return
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            os.fchmod(fd, mode & 0o700)
    finally:
        os.close(fd)


def private_sqlite(path: str) -> None:
    """A SQLite database and the journal files beside it (SQLite gives new ones the database's mode)."""
    private_dir(os.path.dirname(path) or ".")
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        private_file(path + suffix, create=False)


def replace_whole(path: str, fill: Callable[[str], None]) -> None:
    """A new file at `path`, whole or not at all: `fill` writes `path`.part (made 0600, its directory made
    if missing; `fill` makes it durable if it must be), which then takes the name; if anything fails, the
    part is removed and the name keeps what it had."""
    part = path + ".part"
    private_dir(os.path.dirname(part) or ".")
    private_file(part)
    try:
        fill(part)
        os.replace(part, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise
