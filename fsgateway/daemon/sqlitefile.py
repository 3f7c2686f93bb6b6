"""A daemon's SQLite file kept under its name while the daemon runs.

An operator emptying a state directory (or a tmp cleaner) removes the file under
an open connection: SQLite goes on writing to the unnamed file, and all of it is
gone at the next start. The daemons look at their file now and then
(`ensure`): removed, it is written back from the open connection, which still
holds all of it (a consistent copy, SQLite's backup API); replaced by another
file, which of the two is right is the operator's to say, so it is an error.
"""

from __future__ import annotations

import os
import sqlite3

from fsgateway.daemon.private import private_sqlite


class Replaced(RuntimeError):
    """Another file took the database's name while it was open."""


def identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def ensure(conn: sqlite3.Connection, path: str, known: tuple[int, int]) -> bool:
    """True if the file was missing and has been written back from `conn` (reopen it: `conn` still writes
    to the unnamed one); False if it is in place. Replaced: another file has the name; OSError and
    sqlite3.Error: it could not be written back."""
    try:
        if identity(path) == known:
            return False
    except FileNotFoundError:
        private_sqlite(path)  # its directory too, owner-only
        copy = sqlite3.connect(path)
        try:
            conn.backup(copy)
        finally:
            copy.close()
        return True
    raise Replaced(f"SQLite database {path} was replaced by another file while it was open")
