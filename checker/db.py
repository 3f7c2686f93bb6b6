"""The version database (the RDS role): SQLite on one host, PostgreSQL for several.

UNIQUE constraints settle races between checkers: (model, version) and
(model, channel, release_counter) for releases, the package id for verdicts,
so of two hosts judging the same upload exactly one records the verdict.
Decisions that read before they write run under a lock (SQLite: BEGIN
IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock), always short: no
transaction or lock is held across an S3 request (the rules: DATABASE.md). The
schema is versioned; `migrate()` applies what is missing, once, under the same
lock. All of the checker's SQL is here. Blocking calls: the daemon runs them in
a worker thread.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fsgateway.daemon import sqlitefile
from fsgateway.daemon.private import private_sqlite

from .landing import Part
from .rules import ModelPolicy, Release
from .semver import Version
from .signing import AuthorisedKey, public_key_from_json

log = logging.getLogger("checker.db")

# Each entry is one schema version; statements use {serial} and {real} for the dialect's spellings.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE models (name TEXT PRIMARY KEY, hw_revisions TEXT NOT NULL, max_payload BIGINT NOT NULL)""",
        """CREATE TABLE keys (keyid TEXT PRIMARY KEY, public_key TEXT NOT NULL, label TEXT NOT NULL,
           added_at {real} NOT NULL, revoked_at {real})""",
        """CREATE TABLE key_models (keyid TEXT NOT NULL REFERENCES keys(keyid), model TEXT NOT NULL,
           UNIQUE (keyid, model))""",
        """CREATE TABLE releases (id {serial}, model TEXT NOT NULL, channel TEXT NOT NULL,
           version TEXT NOT NULL, release_counter BIGINT NOT NULL, sha256 TEXT NOT NULL, length BIGINT NOT NULL,
           name TEXT NOT NULL, hw_revisions TEXT NOT NULL, manifest TEXT NOT NULL, release_key TEXT NOT NULL,
           package_id TEXT NOT NULL, keyid TEXT NOT NULL, accepted_at {real} NOT NULL,
           UNIQUE (model, version), UNIQUE (model, channel, release_counter))""",
        """CREATE TABLE verdicts (package_id TEXT PRIMARY KEY, package TEXT NOT NULL, outcome TEXT NOT NULL,
           reason TEXT NOT NULL, detail TEXT NOT NULL, decided_at {real} NOT NULL, host TEXT NOT NULL,
           done INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE repo_versions (role TEXT PRIMARY KEY, version BIGINT NOT NULL)""",
    ],
    [
        # v2: a release enters the TUF metadata only once its payload is in place under releases/.
        """ALTER TABLE releases ADD COLUMN stored INTEGER NOT NULL DEFAULT 0""",
        """CREATE INDEX verdicts_open ON verdicts (done)""",
    ],
    [
        # v3: a publish is recorded (its versions and immutable objects) before anything is written, so a
        # failed or killed one is continued, never rebuilt under the same numbers; what devices can reach
        # is tracked apart from the numbers reserved; a verdict keeps the parts it judged (its identity).
        """CREATE TABLE publish_intent (id INTEGER PRIMARY KEY, doc TEXT NOT NULL, created_at {real} NOT NULL)""",
        """CREATE TABLE repo_published (role TEXT PRIMARY KEY, version BIGINT NOT NULL, expires {real} NOT NULL,
           keyid TEXT NOT NULL)""",
        """ALTER TABLE releases ADD COLUMN published INTEGER NOT NULL DEFAULT 0""",
        """ALTER TABLE verdicts ADD COLUMN parts TEXT NOT NULL DEFAULT '[]'""",
    ],
    [
        # v4: publishing takes no lock across S3 requests; an intent whose immutable objects are all in
        # place is marked, so whoever signs the next timestamp.json (any host) points it at that snapshot.
        """ALTER TABLE publish_intent ADD COLUMN placed INTEGER NOT NULL DEFAULT 0""",
    ],
]
DIALECT = {
    "sqlite": {"serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL"},
    "postgresql": {"serial": "BIGSERIAL PRIMARY KEY", "real": "DOUBLE PRECISION"},
}


def storable(text: str) -> str:
    """`text` as any database and JSON can store it: lone surrogates (undecodable key bytes) and NUL
    (which PostgreSQL text refuses) become U+FFFD."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF or c == "\0" else c for c in text)


class DatabaseError(RuntimeError):
    """The database cannot be used; the message is the one-line reason."""


@dataclass(frozen=True)
class Verdict:
    package_id: str
    package: str
    outcome: str  # accepted | rejected | duplicate
    reason: str
    detail: str
    done: bool
    parts: tuple[Part, ...] = ()  # what was judged: the package's identity while its parts are cleared


@dataclass(frozen=True)
class TimestampPlan:
    """What one timestamp.json write signs: its own version and the snapshot (and targets) it points at."""

    version: int
    records: int  # timestamp.json records so far, when reserved: another one before ours is a race
    targets: int
    snapshot: int
    expires: float  # of targets and snapshot
    keyid: str  # that signed targets and snapshot


def _parts_json(parts: tuple[Part, ...]) -> str:
    """ASCII JSON (surrogates of non-UTF-8 key bytes escaped, so any key survives a TEXT column)."""
    return json.dumps([[p.key, p.size, p.etag, p.last_modified] for p in parts])


def _parts(text: str) -> tuple[Part, ...]:
    return tuple(Part(k, size, etag, lm) for k, size, etag, lm in json.loads(text))


def _release(row: tuple) -> Release:
    model, channel, version, counter, sha, length, name, hw = row
    return Release(model, channel, version, counter, sha, length, name, tuple(json.loads(hw)))


_RELEASE_COLUMNS = "model, channel, version, release_counter, sha256, length, name, hw_revisions"
_KEYS_SQL = ("SELECT k.keyid, k.public_key, k.revoked_at, m.model FROM keys k "
             "LEFT JOIN key_models m ON m.keyid = k.keyid {where} ORDER BY k.keyid, m.model")


def _authorised(rows: list[tuple]) -> dict[str, AuthorisedKey]:
    out: dict[str, AuthorisedKey] = {}
    for keyid, public, revoked, model in rows:
        prev = out.get(keyid)
        models = (*prev.models, model) if prev else ((model,) if model else ())
        out[keyid] = AuthorisedKey(public_key_from_json(public), models, revoked is not None)
    return out


class Tx:
    """One transaction's statements, in the `?` paramstyle whatever the driver."""

    def __init__(self, cursor: Any, dialect: str) -> None:
        self.cursor = cursor
        self.dialect = dialect

    def execute(self, sql: str, args: tuple = ()) -> Tx:
        self.cursor.execute(sql.replace("?", "%s") if self.dialect == "postgresql" else sql, args)
        return self

    def one(self) -> tuple | None:
        return self.cursor.fetchone()

    def all(self) -> list[tuple]:
        return self.cursor.fetchall()


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.Lock()  # one connection, shared by the daemon's worker threads
        if url.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.dialect = "postgresql"
            self.unique_violation: tuple[type[Exception], ...] = (psycopg.errors.UniqueViolation,)
            self.unavailable: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError)
            try:
                self.conn: Any = psycopg.connect(url, autocommit=True, connect_timeout=10)
            except psycopg.Error as exc:
                raise DatabaseError(f"cannot connect to PostgreSQL: {str(exc).strip().splitlines()[-1]}") from exc
        else:
            path = self.path = url.removeprefix("sqlite://")  # sqlite:///var/lib/x.db or a plain path
            try:
                private_sqlite(path)  # owner-only, even in a state directory that is not
            except OSError as exc:
                raise DatabaseError(f"cannot create SQLite database {path}: {exc.strerror}") from exc
            self.dialect = "sqlite"
            self.unique_violation = (sqlite3.IntegrityError,)
            self.unavailable = (sqlite3.OperationalError,)  # locked, disk I/O: worth another try
            self._open_sqlite()

    def _open_sqlite(self) -> None:
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.identity = sqlitefile.identity(self.path)
        except (sqlite3.Error, OSError) as exc:
            raise DatabaseError(f"cannot open SQLite database {self.path}: {exc}") from exc

    def keep_file(self) -> None:
        """SQLite: a database file removed under the checker (its state directory emptied) is written back
        (`sqlitefile`; tried again at the next call if it cannot be yet); replaced by another file,
        DatabaseError: the next start checks that file against the published repository (continuity.py)."""
        if self.dialect != "sqlite":
            return
        with self.lock:
            try:
                if not sqlitefile.ensure(self.conn, self.path, self.identity):
                    return
            except sqlitefile.Replaced as exc:
                raise DatabaseError(f"{exc}; stopping (the next start checks it against the published "
                                    "repository)") from exc
            except (sqlite3.Error, OSError) as exc:  # the connection still holds all of it: try again later
                log.error("SQLite database %s was removed and cannot be written back yet: %s", self.path, exc)
                return
            self.conn.close()
            self._open_sqlite()
            log.warning("SQLite database %s was removed while the checker ran; written back from its connection",
                        self.path)

    def close(self) -> None:
        self.conn.close()

    def begin(self, lock_name: str = "fsgateway-checker") -> Tx:
        """Start a serialised read-then-write transaction: every checker on this database queues here.

        Short by rule (DATABASE.md): never held across an S3 request or any other wait on the network.
        """
        self.lock.acquire()
        try:
            tx = Tx(self.conn.cursor(), self.dialect)
            if self.dialect == "sqlite":
                tx.execute("BEGIN IMMEDIATE")
            else:
                tx.execute("BEGIN")
                tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (lock_name,))
        except BaseException:
            self.lock.release()
            raise
        return tx

    def end(self, tx: Tx, commit: bool) -> None:
        try:
            tx.execute("COMMIT" if commit else "ROLLBACK")
        finally:
            self.lock.release()

    @contextmanager
    def transaction(self, lock_name: str = "fsgateway-checker") -> Iterator[Tx]:
        tx = self.begin(lock_name)
        try:
            yield tx
        except BaseException:
            self.end(tx, commit=False)
            raise
        self.end(tx, commit=True)

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.lock:
            return Tx(self.conn.cursor(), self.dialect).execute(sql, args).all()

    # ------------------------------------------------------------------ schema
    def migrate(self) -> int:
        """Bring the schema to the newest version; returns how many migrations were applied."""
        with self.transaction("fsgateway-checker-migrate") as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = tx.execute("SELECT version FROM schema_version").one()
            if row is None:
                tx.execute("INSERT INTO schema_version (version) VALUES (0)")
            version = row[0] if row else 0
            if version > len(MIGRATIONS):
                raise DatabaseError(f"database schema {version} is newer than this checker knows ({len(MIGRATIONS)})")
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    tx.execute(statement.format(**DIALECT[self.dialect]))
            tx.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))
        return len(MIGRATIONS) - version

    # ------------------------------------------------------------------ models and keys
    def set_model(self, policy: ModelPolicy) -> None:
        with self.transaction() as tx:
            tx.execute("DELETE FROM models WHERE name = ?", (policy.name,))
            tx.execute("INSERT INTO models (name, hw_revisions, max_payload) VALUES (?, ?, ?)",
                       (policy.name, json.dumps(sorted(policy.hw_revisions)), policy.max_payload))

    def models(self) -> dict[str, ModelPolicy]:
        rows = self.query("SELECT name, hw_revisions, max_payload FROM models ORDER BY name")
        return {n: ModelPolicy(n, tuple(json.loads(hw)), cap) for n, hw, cap in rows}

    def add_key(self, keyid: str, public_key_json: str, label: str, models: list[str]) -> None:
        """Authorise a key for model patterns (adding a second key for a model is a rotation)."""
        with self.transaction() as tx:
            if tx.execute("SELECT revoked_at FROM keys WHERE keyid = ?", (keyid,)).one() is None:
                tx.execute("INSERT INTO keys (keyid, public_key, label, added_at) VALUES (?, ?, ?, ?)",
                           (keyid, public_key_json, label, time.time()))
            for model in models:
                tx.execute("DELETE FROM key_models WHERE keyid = ? AND model = ?", (keyid, model))
                tx.execute("INSERT INTO key_models (keyid, model) VALUES (?, ?)", (keyid, model))

    def revoke_key(self, keyid: str) -> bool:
        """Revoke at once (the next signature check sees it); False if the key is unknown."""
        with self.transaction() as tx:
            found = tx.execute("SELECT keyid FROM keys WHERE keyid = ?", (keyid,)).one()
            if found:
                tx.execute("UPDATE keys SET revoked_at = ? WHERE keyid = ? AND revoked_at IS NULL",
                           (time.time(), keyid))
            return found is not None

    def keys(self) -> dict[str, AuthorisedKey]:
        return _authorised(self.query(_KEYS_SQL.format(where="")))

    def tx_key(self, tx: Tx, keyid: str) -> AuthorisedKey | None:
        """The key as this transaction sees it: a revocation committed meanwhile counts."""
        return _authorised(tx.execute(_KEYS_SQL.format(where="WHERE k.keyid = ?"), (keyid,)).all()).get(keyid)

    def tx_model(self, tx: Tx, name: str) -> ModelPolicy | None:
        row = tx.execute("SELECT name, hw_revisions, max_payload FROM models WHERE name = ?", (name,)).one()
        return ModelPolicy(row[0], tuple(json.loads(row[1])), row[2]) if row else None

    def key_rows(self) -> list[tuple[str, str, float, float | None, str]]:
        """(keyid, label, added_at, revoked_at, models) for listings."""
        rows = self.query("SELECT k.keyid, k.label, k.added_at, k.revoked_at, m.model FROM keys k "
                          "LEFT JOIN key_models m ON m.keyid = k.keyid ORDER BY k.added_at, m.model")
        merged: dict[str, list] = {}
        for keyid, label, added, revoked, model in rows:
            merged.setdefault(keyid, [keyid, label, added, revoked, []])[4].append(model or "")
        return [(k, lbl, a, r, ",".join(m for m in ms if m)) for k, lbl, a, r, ms in merged.values()]

    # ------------------------------------------------------------------ releases
    def release(self, model: str, version: str) -> Release | None:
        rows = self.query(f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE model = ? AND version = ?",
                          (model, version))
        return _release(rows[0]) if rows else None

    def latest(self, model: str, channel: str) -> Release | None:
        rows = self.query(f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE model = ? AND channel = ? "
                          "ORDER BY release_counter DESC LIMIT 1", (model, channel))
        return _release(rows[0]) if rows else None

    def releases(self, model: str | None = None) -> list[tuple[Release, str, float]]:
        """(release, release key, accepted_at), oldest first."""
        where, args = ("WHERE model = ?", (model,)) if model else ("", ())
        rows = self.query(f"SELECT {_RELEASE_COLUMNS}, release_key, accepted_at FROM releases {where} "
                          "ORDER BY model, release_counter", args)
        return [(_release(r[:8]), r[8], r[9]) for r in rows]

    def record_release(self, tx: Tx, r: Release, manifest: str, release_key: str, package_id: str,
                       keyid: str) -> None:
        tx.execute(f"INSERT INTO releases ({_RELEASE_COLUMNS}, manifest, release_key, package_id, keyid, "
                   "accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (r.model, r.channel, r.version, r.release_counter, r.sha256, r.length, r.name,
                    json.dumps(list(r.hw_revisions)), manifest, release_key, package_id, keyid, time.time()))

    def tx_release(self, tx: Tx, model: str, version: str) -> Release | None:
        row = tx.execute(f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE model = ? AND version = ?",
                         (model, version)).one()
        return _release(row) if row else None

    def tx_equal_release(self, tx: Tx | None, model: str, version: str) -> Release | None:
        """The release of `model` whose version equals `version` in SemVer precedence (build metadata ignored).

        `61.0.0` and `61.0.0+evil` are one version to a device comparing
        versions, so at most one of them may name bytes. `tx` None: outside a transaction.
        """
        sql, args = f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE model = ?", (model,)
        rows = tx.execute(sql, args).all() if tx is not None else self.query(sql, args)
        wanted = Version.parse(version)
        same = [_release(r) for r in rows if Version.parse(r[2]) == wanted]
        return next((r for r in same if r.version == version), same[0] if same else None)

    def tx_latest(self, tx: Tx, model: str, channel: str) -> Release | None:
        row = tx.execute(f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE model = ? AND channel = ? "
                         "ORDER BY release_counter DESC LIMIT 1", (model, channel)).one()
        return _release(row) if row else None

    def mark_stored(self, model: str, version: str) -> bool:
        """Record that the payload is in place; True if it was not recorded before."""
        with self.transaction() as tx:
            tx.execute("UPDATE releases SET stored = 1 WHERE model = ? AND version = ? AND stored = 0",
                       (model, version))
            return tx.cursor.rowcount > 0

    def unpublished_releases(self) -> int:
        """Releases whose payload is in place but which no completed publish has carried yet."""
        return self.query("SELECT COUNT(*) FROM releases WHERE stored = 1 AND published = 0")[0][0]

    def is_published(self, model: str, version: str) -> bool:
        return bool(self.query("SELECT 1 FROM releases WHERE model = ? AND version = ? AND published = 1",
                               (model, version)))

    def tx_stored_releases(self, tx: Tx) -> list[Release]:
        rows = tx.execute(f"SELECT {_RELEASE_COLUMNS} FROM releases WHERE stored = 1 ORDER BY model, "
                          "release_counter").all()
        return [_release(r) for r in rows]

    def release_record(self, model: str, version: str) -> tuple[str, str, str, float] | None:
        """(manifest text, release key, signing keyid, accepted_at) of a release, for `fsgateway-fw show`."""
        rows = self.query("SELECT manifest, release_key, keyid, accepted_at FROM releases WHERE model = ? AND "
                          "version = ?", (model, version))
        return rows[0] if rows else None

    # ------------------------------------------------------------------ verdicts
    def tx_verdict(self, tx: Tx, package_id: str) -> tuple[str, str, str] | None:
        """(outcome, reason, detail) of the package's verdict as this transaction sees it."""
        return tx.execute("SELECT outcome, reason, detail FROM verdicts WHERE package_id = ?", (package_id,)).one()

    def record_verdict(self, tx: Tx, v: Verdict, host: str) -> bool:
        """Insert the verdict unless one exists; True if this call recorded it."""
        if tx.execute("SELECT 1 FROM verdicts WHERE package_id = ?", (v.package_id,)).one():
            return False
        tx.execute("INSERT INTO verdicts (package_id, package, outcome, reason, detail, decided_at, host, done, "
                   "parts) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                   (v.package_id, v.package, v.outcome, v.reason, v.detail, time.time(), host, _parts_json(v.parts)))
        return True

    def verdict(self, package_id: str) -> Verdict | None:
        rows = self.query("SELECT package_id, package, outcome, reason, detail, done, parts FROM verdicts "
                          "WHERE package_id = ?", (package_id,))
        if not rows:
            return None
        pid, package, outcome, reason, detail, done, parts = rows[0]
        return Verdict(pid, package, outcome, reason, detail, bool(done), _parts(parts))

    def open_verdicts(self, package: str | None = None) -> list[Verdict]:
        """Verdicts recorded but not carried out yet (of one package, or all)."""
        where, args = ("AND package = ?", (package,)) if package is not None else ("", ())
        rows = self.query("SELECT package_id, package, outcome, reason, detail, parts FROM verdicts "
                          f"WHERE done = 0 {where} ORDER BY decided_at", args)
        return [Verdict(pid, package, outcome, reason, detail, False, _parts(parts))
                for pid, package, outcome, reason, detail, parts in rows]

    def mark_done(self, package_id: str) -> None:
        with self.transaction() as tx:
            tx.execute("UPDATE verdicts SET done = 1 WHERE package_id = ?", (package_id,))

    def verdict_rows(self, since: float, outcome: str | None = None, package_prefix: str | None = None,
                     limit: int = 50) -> list[tuple[float, str, str, str, str, str]]:
        """(decided_at, package, outcome, reason, detail, host) of verdicts since `since`, newest first."""
        where: list[str] = ["decided_at >= ?"]
        args: list[Any] = [since]
        if outcome:
            where.append("outcome = ?")
            args.append(outcome)
        if package_prefix:
            where.append("substr(package, 1, ?) = ?")
            args += [len(package_prefix), package_prefix]
        return self.query("SELECT decided_at, package, outcome, reason, detail, host FROM verdicts WHERE "
                          + " AND ".join(where) + " ORDER BY decided_at DESC LIMIT ?", (*args, limit))

    # ------------------------------------------------------------------ TUF metadata versions
    def next_version(self, tx: Tx, role: str) -> int:
        row = tx.execute("SELECT version FROM repo_versions WHERE role = ?", (role,)).one()
        version = (row[0] if row else 0) + 1
        if row:
            tx.execute("UPDATE repo_versions SET version = ? WHERE role = ?", (version, role))
        else:
            tx.execute("INSERT INTO repo_versions (role, version) VALUES (?, ?)", (role, version))
        return version

    def counters(self, roles: tuple[str, ...]) -> dict[str, int]:
        """role -> the last version number taken for it (a role never taken is left out)."""
        return {role: v for role, v in self.query("SELECT role, version FROM repo_versions") if role in roles}

    def raise_counters(self, versions: dict[str, int]) -> None:
        """Take every version number up to `versions[role]` (used by the bucket already). With targets or
        snapshot among them, what devices reach is newer than what this database recorded as published:
        that record is dropped, so the next refresh publishes anew (a timestamp.json pointing at the
        recorded, older snapshot would be a rollback to devices)."""
        with self.transaction() as tx:
            for role, version in versions.items():
                row = tx.execute("SELECT version FROM repo_versions WHERE role = ?", (role,)).one()
                if row is None:
                    tx.execute("INSERT INTO repo_versions (role, version) VALUES (?, ?)", (role, version))
                elif row[0] < version:
                    tx.execute("UPDATE repo_versions SET version = ? WHERE role = ?", (version, role))
            if {"targets", "snapshot"} & set(versions):
                tx.execute("DELETE FROM repo_published WHERE role IN ('targets', 'snapshot')")

    def publish_intent(self) -> dict | None:
        """The publish recorded but not completed (its document, see Publisher), if any."""
        rows = self.query("SELECT doc FROM publish_intent WHERE id = 1")
        return json.loads(rows[0][0]) if rows else None

    def record_publish_intent(self, make: Callable[[Tx], dict]) -> dict:
        """The open intent, or a new one from `make` (which reserves versions in the same transaction)."""
        with self.transaction() as tx:
            row = tx.execute("SELECT doc FROM publish_intent WHERE id = 1").one()
            if row:
                return json.loads(row[0])
            doc = make(tx)
            tx.execute("INSERT INTO publish_intent (id, doc, created_at) VALUES (1, ?, ?)",
                       (json.dumps(doc), time.time()))
            return doc

    def drop_publish_intent(self, doc: dict) -> None:
        """Abandon this intent (its version numbers stay taken); a no-op if it is not the open one."""
        with self.transaction() as tx:
            tx.execute("DELETE FROM publish_intent WHERE id = 1 AND doc = ?", (json.dumps(doc),))

    def mark_placed(self, doc: dict) -> None:
        """Every immutable object of this intent is in place: the next timestamp.json may point at it."""
        with self.transaction() as tx:
            tx.execute("UPDATE publish_intent SET placed = 1 WHERE id = 1 AND doc = ?", (json.dumps(doc),))

    def reserve_timestamp(self) -> TimestampPlan | None:
        """A new timestamp version and the newest snapshot whose objects are in place (None: none yet)."""
        with self.transaction() as tx:
            version = self.next_version(tx, "timestamp")
            records = self._timestamp_records(tx)
            rows = {role: (v, until, keyid) for role, v, until, keyid in tx.execute(
                "SELECT role, version, expires, keyid FROM repo_published WHERE role IN ('targets', 'snapshot')").all()}
            row = tx.execute("SELECT doc FROM publish_intent WHERE id = 1 AND placed = 1").one()
            doc = json.loads(row[0]) if row else None
            if doc is not None and doc["snapshot"] > rows.get("snapshot", (0,))[0]:
                return TimestampPlan(version, records, doc["targets"], doc["snapshot"], doc["expires"], doc["keyid"])
            if "snapshot" not in rows:
                return None
            snapshot, until, keyid = rows["snapshot"]
            return TimestampPlan(version, records, rows["targets"][0], snapshot, until, keyid)

    def timestamp_superseded(self, plan: TimestampPlan) -> bool:
        """Whether another timestamp.json was recorded since `plan` was reserved: `plan` would lose (below)."""
        return self._timestamp_records(None) != plan.records

    def _timestamp_records(self, tx: Tx | None) -> int:
        sql = "SELECT version FROM repo_versions WHERE role = 'timestamp-records'"
        rows = tx.execute(sql).all() if tx is not None else self.query(sql)
        return rows[0][0] if rows else 0

    def record_timestamp(self, plan: TimestampPlan, expires: float, keyid: str) -> bool:
        """timestamp.json of `plan` was written. True: it is what devices reach; recorded (never going
        back), and the intent it carries is complete. False: another writer recorded one between our
        reservation and now, so either PUT may have landed last; the caller writes again, newer (of two
        writers in one window, only the second to record does, so racing writers do not race for ever)."""
        with self.transaction() as tx:
            won = self._timestamp_records(tx) == plan.records
            self.next_version(tx, "timestamp-records")
            if not won:
                return False
            published = {"timestamp": (plan.version, expires, keyid),
                         "targets": (plan.targets, plan.expires, plan.keyid),
                         "snapshot": (plan.snapshot, plan.expires, plan.keyid)}
            for role, (version, until, signer) in published.items():
                row = tx.execute("SELECT version FROM repo_published WHERE role = ?", (role,)).one()
                if row is None:
                    tx.execute("INSERT INTO repo_published (role, version, expires, keyid) VALUES (?, ?, ?, ?)",
                               (role, version, until, signer))
                elif row[0] < version:
                    tx.execute("UPDATE repo_published SET version = ?, expires = ?, keyid = ? WHERE role = ?",
                               (version, until, signer, role))
            row = tx.execute("SELECT doc FROM publish_intent WHERE id = 1 AND placed = 1").one()
            doc = json.loads(row[0]) if row else None
            if doc is not None and doc["snapshot"] <= plan.snapshot:
                for model, version in doc["releases"]:
                    tx.execute("UPDATE releases SET published = 1 WHERE model = ? AND version = ?", (model, version))
                tx.execute("DELETE FROM publish_intent WHERE id = 1")
            return True

    def published(self) -> dict[str, tuple[int, float, str]]:
        """role -> (version, expiry as Unix time, signing keyid) of what timestamp.json leads devices to."""
        return {r: (v, e, k) for r, v, e, k in self.query("SELECT role, version, expires, keyid FROM repo_published")}
