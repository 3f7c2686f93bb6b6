"""syncd's durable memory, one SQLite file under state_dir: feed cursor, pending keys, copies made.

Each change is one transaction, so a SIGKILL at any moment leaves a state
that a restart continues from: journal objects already read are not lost
(their keys are in `pending` before the cursor moves), copies already made
are known (`synced`), and multipart uploads under way are aborted at start.
Keys are stored as bytes (surrogate-escaped), so any key a listing returns fits.
The schema is versioned (PRAGMA user_version) and upgraded in place at open by
ordered migrations; all of syncd's SQL is here. Rules: checker/DATABASE.md.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from fsgateway.daemon import sqlitefile
from fsgateway.daemon.private import private_file, private_sqlite

from .plan import Record, Version

log = logging.getLogger("syncd.state")

# Each entry is one schema version, applied in order in one transaction; the number applied is the file's
# PRAGMA user_version. Append to add a version (see checker/DATABASE.md); never edit one that shipped.
MIGRATIONS: list[list[str]] = [
    [
        # v1: the first schema. IF NOT EXISTS: a state file made before versioning (user_version 0) holds
        # these tables already and is adopted as it is.
        "CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS synced (key BLOB PRIMARY KEY, src_size INTEGER, src_etag TEXT,
           src_mtime INTEGER, dst_size INTEGER, dst_etag TEXT)""",
        """CREATE TABLE IF NOT EXISTS pending (key BLOB PRIMARY KEY, since REAL NOT NULL,
           size INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL DEFAULT 0,
           last_error TEXT, gen INTEGER NOT NULL DEFAULT 0)""",
        "CREATE TABLE IF NOT EXISTS applied (journal TEXT PRIMARY KEY)",
        "CREATE TABLE IF NOT EXISTS uploads (upload_id TEXT PRIMARY KEY, key BLOB NOT NULL)",
    ],
    [
        # v2: the due queue is read by time (`due`, `next_due`): indexes, so a large backlog is not
        # scanned for every batch.
        "CREATE INDEX pending_next_try ON pending (next_try)",
        "CREATE INDEX pending_since ON pending (since)",
    ],
]


class StateError(RuntimeError):
    """The state cannot be used; the message is the one-line reason."""


def _known(db: sqlite3.Connection, path: str) -> int:
    """The file's schema version, refused if a newer syncd wrote it (its meaning is unknown here)."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StateError(f"state {path} has schema {version}, newer than this fsgateway-syncd knows "
                         f"({len(MIGRATIONS)}); run a newer syncd or use another state_dir")
    return version


def migrate(db: sqlite3.Connection, path: str) -> int:
    """Bring the schema to the newest version in one transaction; returns how many versions were applied."""
    with db:
        db.execute("BEGIN IMMEDIATE")
        version = _known(db, path)
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    return len(MIGRATIONS) - version


class StateLocked(StateError):
    """Another syncd uses this state_dir."""


def _b(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def _s(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Pending:
    key: str
    since: float
    size: int
    attempts: int
    gen: int  # bumped by every new change of the key


@dataclass(frozen=True)
class Backlog:
    objects: int
    bytes: int
    oldest: float | None  # `since` of the oldest pending change
    failing: int  # pending keys whose last attempt failed


class State:
    def __init__(self, state_dir: str, read_only: bool = False) -> None:
        """The state in `state_dir` (0700), locked against a second syncd; `read_only` (dry runs) takes no lock."""
        path = os.path.join(state_dir, "state.sqlite")
        self.state_dir, self.path = state_dir, path
        self._lock: TextIO | None = None
        if read_only:
            exists = os.path.exists(path)
            self.db = sqlite3.connect(f"file:{path}?mode=ro" if exists else ":memory:", uri=True,
                                      isolation_level=None)
            if not exists:
                migrate(self.db, ":memory:")
            else:
                try:
                    if (version := _known(self.db, path)) < len(MIGRATIONS):
                        raise StateError(f"state {path} has schema {version}, older than this fsgateway-syncd's "
                                         f"{len(MIGRATIONS)}; a dry run changes nothing: run once without --dry-run")
                except StateError:
                    self.db.close()
                    raise
            return
        self._open()
        try:
            migrate(self.db, path)
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        """Lock `state_dir` (made 0700 if missing) and connect to the state in it."""
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        private_file(os.path.join(self.state_dir, "lock"))
        lock = open(os.path.join(self.state_dir, "lock"), "w")  # noqa: SIM115 - held while the state is open
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise StateLocked(f"state_dir {self.state_dir} is in use by another fsgateway-syncd") from exc
        self._lock = lock
        private_sqlite(self.path)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: a process crash loses nothing committed
        self.identity = sqlitefile.identity(self.path)

    def keep_file(self) -> bool:
        """The state file removed under syncd (state_dir emptied) is written back (`sqlitefile`) and its
        directory locked again: True (False when it is in place, or cannot be written back yet). Replaced
        by another file: StateError."""
        if self._lock is None:
            return False  # a dry run's, read-only
        try:
            if not sqlitefile.ensure(self.db, self.path, self.identity):
                return False
        except sqlitefile.Replaced as exc:
            raise StateError(str(exc)) from exc
        except (sqlite3.Error, OSError) as exc:  # the connection still holds all of it: try again later
            log.error("state %s was removed and cannot be written back yet: %s", self.path, exc)
            return False
        self.close()
        self._open()
        return True

    def close(self) -> None:
        self.db.close()
        if self._lock is not None:
            self._lock.close()

    # ------------------------------------------------------------ key/value
    def get(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM kv WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def put(self, name: str, value: str) -> None:
        self.db.execute("INSERT INTO kv VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                        (name, value))

    # ------------------------------------------------------------ copies made
    def record(self, key: str) -> Record | None:
        row = self.db.execute("SELECT src_size, src_etag, src_mtime, dst_size, dst_etag FROM synced "
                              "WHERE key = ?", (_b(key),)).fetchone()
        return Record(Version(row[0], row[1], row[2]), row[3], row[4]) if row else None

    def remember(self, key: str, rec: Record) -> None:
        self.db.execute("INSERT OR REPLACE INTO synced VALUES (?, ?, ?, ?, ?, ?)",
                        (_b(key), rec.src.size, rec.src.etag, rec.src.mtime, rec.dst_size, rec.dst_etag))

    def forget(self, keys: Iterable[str]) -> None:
        self.db.executemany("DELETE FROM synced WHERE key = ?", ((_b(k),) for k in keys))

    def recorded_keys(self) -> list[str]:
        return [_s(r[0]) for r in self.db.execute("SELECT key FROM synced")]

    # ------------------------------------------------------------ feed
    def apply_journal(self, journal: str, changes: list[tuple[str, float, int]], cursor: str) -> None:
        """A journal object's (key, since, size) changes become pending and the cursor moves, atomically."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO pending (key, since, size) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "since = min(since, excluded.since), size = excluded.size, next_try = 0, gen = gen + 1",
                ((_b(k), since, size) for k, since, size in changes))
            self.db.execute("INSERT OR IGNORE INTO applied VALUES (?)", (journal,))
            self.put("cursor", max(cursor, self.get("cursor") or ""))

    def applied(self, after: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT journal FROM applied WHERE journal > ?", (after,))}

    def prune_applied(self, before: str) -> None:
        """Journal names behind the lookback window can no longer be listed again: drop them."""
        self.db.execute("DELETE FROM applied WHERE journal <= ?", (before,))

    # ------------------------------------------------------------ pending keys
    def due(self, limit: int, now: float | None = None) -> list[Pending]:
        rows = self.db.execute("SELECT key, since, size, attempts, gen FROM pending WHERE next_try <= ? "
                               "ORDER BY since LIMIT ?", (now if now is not None else time.time(), limit))
        return [Pending(_s(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    def next_due(self) -> float | None:
        row = self.db.execute("SELECT min(next_try) FROM pending").fetchone()
        return row[0]

    def done(self, item: Pending) -> None:
        """Replicated: gone from pending, unless a newer change of the key arrived meanwhile."""
        self.db.execute("DELETE FROM pending WHERE key = ? AND gen = ?", (_b(item.key), item.gen))

    def failed(self, key: str, error: str, retry_at: float) -> None:
        self.db.execute("UPDATE pending SET attempts = attempts + 1, next_try = ?, last_error = ? WHERE key = ?",
                        (retry_at, error[:500], _b(key)))

    def backlog(self) -> Backlog:
        row = self.db.execute("SELECT count(*), coalesce(sum(size), 0), min(since), "
                              "coalesce(sum(attempts > 0), 0) FROM pending").fetchone()
        return Backlog(row[0], row[1], row[2], row[3])

    # ------------------------------------------------------------ multipart uploads under way
    def upload_started(self, key: str, upload_id: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO uploads VALUES (?, ?)", (upload_id, _b(key)))

    def upload_ended(self, upload_id: str) -> None:
        self.db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))

    def uploads(self) -> list[tuple[str, str]]:
        return [(_s(r[1]), r[0]) for r in self.db.execute("SELECT upload_id, key FROM uploads")]
