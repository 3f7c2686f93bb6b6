"""A daemon's SQLite file kept under its name while the daemon runs.

An operator emptying a state directory (or a tmp cleaner) removes the file under
an open connection: SQLite goes on writing to the unnamed file, and all of it is
gone at the next start. The daemons look at their file now and then
(`ensure`): removed, it is written back from the open connection, which still
holds all of it (a consistent copy, SQLite's backup API); replaced by another
file, which of the two is right is the operator's to say, so it is an error,
and the open one is kept beside it.
"""

from __future__ import annotations

import os
import sqlite3
import time

from fsgateway.daemon.private import replace_whole


class Replaced(RuntimeError):
    """Another file took the database's name while it was open."""


def identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def ensure(conn: sqlite3.Connection, path: str, known: tuple[int, int]) -> bool:
    """True if the file was missing and has been written back from `conn` (reopen it: `conn` still writes
    to the unnamed one); False if it is in place. OSError and sqlite3.Error: it could not be written back
    (nothing is lost yet: try again later). Replaced: another file has the name; what `conn` holds is
    kept beside it first, named in the error, since the daemon is about to stop and take it along."""
    try:
        if identity(path) == known:
            return False
    except FileNotFoundError:
        _copy(conn, path)
        return True
    aside = f"{path}.kept-{time.strftime('%Y%m%dT%H%M%S')}"
    try:
        _copy(conn, aside)
        kept = f"; the database as it was open is kept in {aside}"
    except (sqlite3.Error, OSError) as exc:
        kept = f"; the database as it was open could not be kept ({exc})"
    raise Replaced(f"SQLite database {path} was replaced by another file while it was open{kept}")


def _copy(conn: sqlite3.Connection, path: str) -> None:
    """A consistent copy of `conn`'s database at `path` (0600, its directory made if missing), whole or not
    at all."""
    def fill(part: str) -> None:
        copy = sqlite3.connect(part)
        try:
            conn.backup(copy)
        finally:
            copy.close()

    replace_whole(path, fill)
