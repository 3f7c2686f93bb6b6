"""The durable state: pending keys, cursor, records, the lock; across reopen (a restart)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat

import pytest

from syncd.plan import Record, Version
from syncd.state import State, StateError, StateLocked


def test_journal_changes_survive_a_restart_and_newer_changes_win(tmp_path):
    s = State(str(tmp_path / "st"))
    assert stat.S_IMODE(os.stat(tmp_path / "st").st_mode) == 0o700
    s.apply_journal("j1", [("a", 10.0, 5), ("b\udcff", 11.0, 6)], "j1")
    item = next(p for p in s.due(10) if p.key == "a")
    s.apply_journal("j2", [("a", 12.0, 7)], "j2")  # a new change while `a` is being copied
    s.done(item)  # ... so `a` stays pending
    s.close()
    s = State(str(tmp_path / "st"))
    assert s.get("cursor") == "j2"
    assert {p.key for p in s.due(10)} == {"a", "b\udcff"}
    assert s.backlog().objects == 2 and s.backlog().oldest == 10.0 and s.backlog().bytes == 13
    for p in s.due(10):
        s.done(p)
    assert s.backlog().objects == 0


def test_failed_keys_wait_for_their_retry_time(tmp_path):
    s = State(str(tmp_path))
    s.apply_journal("j1", [("a", 1.0, 1)], "j1")
    s.failed("a", "boom", retry_at=1e12)
    assert s.due(10) == [] and s.backlog().failing == 1 and s.next_due() == 1e12
    s.apply_journal("j2", [("a", 2.0, 1)], "j2")  # a new change: try at once
    assert [p.key for p in s.due(10)] == ["a"]


def test_applied_journals_are_bounded_by_the_window(tmp_path):
    s = State(str(tmp_path))
    for name in ("j1", "j2", "j3"):
        s.apply_journal(name, [], name)
    assert s.applied("j1") == {"j2", "j3"}
    s.prune_applied("j2")
    assert s.applied("") == {"j3"}
    assert s.get("cursor") == "j3"


def test_records_uploads_and_single_owner(tmp_path):
    s = State(str(tmp_path))
    rec = Record(Version(3, "e", 100), 3, "d")
    s.remember("k", rec)
    assert s.record("k") == rec and s.recorded_keys() == ["k"]
    s.forget(["k"])
    assert s.record("k") is None
    s.upload_started("big", "u1")
    assert s.uploads() == [("big", "u1")]
    s.upload_ended("u1")
    assert s.uploads() == []
    with pytest.raises(StateLocked):
        State(str(tmp_path))
    ro = State(str(tmp_path), read_only=True)  # a dry run may look while the daemon runs
    assert ro.get("cursor") is None
    ro.close()


def test_read_only_state_of_a_fresh_dir_creates_nothing(tmp_path):
    s = State(str(tmp_path / "none"), read_only=True)
    assert s.record("k") is None and s.backlog().objects == 0
    s.close()
    assert not (tmp_path / "none").exists()


def test_state_files_are_owner_only_whatever_the_directory_mode(public_tmp):
    from tests.support.process import readable_by_nobody

    state_dir = public_tmp / "state"
    state = State(str(state_dir))
    state.put("cursor", "x")
    os.chmod(state_dir, 0o755)  # loosened later by an operator or a package
    try:
        files = sorted(state_dir.iterdir())
        assert {f.name for f in files} >= {"state.sqlite", "lock"}
        for f in files:
            assert not readable_by_nobody(f), f.name
    finally:
        state.close()


# The schema of state files written before the state was versioned (user_version 0): a fixture of the old format.
UNVERSIONED = """
CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS synced (key BLOB PRIMARY KEY, src_size INTEGER, src_etag TEXT, src_mtime INTEGER,
                                   dst_size INTEGER, dst_etag TEXT);
CREATE TABLE IF NOT EXISTS pending (key BLOB PRIMARY KEY, since REAL NOT NULL, size INTEGER NOT NULL DEFAULT 0,
                                    attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL DEFAULT 0,
                                    last_error TEXT, gen INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS applied (journal TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS uploads (upload_id TEXT PRIMARY KEY, key BLOB NOT NULL);
INSERT INTO kv VALUES ('cursor', 'j7');
INSERT INTO pending (key, since, size) VALUES (X'61ff', 5.0, 3);
INSERT INTO synced VALUES (X'62', 1, '"e1"', 100, 1, '"e2"');
INSERT INTO uploads VALUES ('u1', X'63');
"""


def _unversioned(state_dir) -> str:
    import sqlite3

    state_dir.mkdir(mode=0o700)
    path = str(state_dir / "state.sqlite")
    with sqlite3.connect(path) as db:
        db.executescript(UNVERSIONED)
    return path


def test_an_unversioned_state_file_is_upgraded_in_place_keeping_everything(tmp_path):
    import sqlite3

    from syncd import state as state_mod

    path = _unversioned(tmp_path / "st")
    with pytest.raises(state_mod.StateError, match="older than"):  # a dry run never writes: it says what to do
        State(str(tmp_path / "st"), read_only=True)
    s = State(str(tmp_path / "st"))
    assert s.get("cursor") == "j7"
    assert [(p.key, p.since, p.size) for p in s.due(10)] == [("a\udcff", 5.0, 3)]
    assert s.record("b") == Record(Version(1, '"e1"', 100), 1, '"e2"')
    assert s.uploads() == [("c", "u1")]
    s.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(state_mod.MIGRATIONS)
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"pending_next_try", "pending_since"} <= indexes
    s = State(str(tmp_path / "st"))  # migrations run once: reopening changes nothing
    assert s.get("cursor") == "j7"
    s.close()
    State(str(tmp_path / "st"), read_only=True).close()


def test_a_state_file_from_a_newer_syncd_is_refused_with_one_line(tmp_path):
    import sqlite3

    from syncd.state import StateError

    path = _unversioned(tmp_path / "st")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    for read_only in (False, False, True):  # the second: the lock of the first was given back
        with pytest.raises(StateError) as info:
            State(str(tmp_path / "st"), read_only=read_only)
        assert "schema 99, newer than" in str(info.value) and "\n" not in str(info.value)
    with sqlite3.connect(path) as db:  # untouched
        assert db.execute("PRAGMA user_version").fetchone()[0] == 99


def test_a_state_dir_emptied_under_syncd_is_written_back_and_locked_again(tmp_path):
    """The state survives its directory being removed while open (else: a full reconcile at the next start),
    a second syncd is still kept out, and another file in its place is an error, not a silent switch."""
    state_dir = tmp_path / "state"
    s = State(str(state_dir))
    rec = Record(Version(3, "e", 100), 3, "d")
    s.remember("k", rec)
    s.put("cursor", "c1")
    assert s.keep_file() is False
    shutil.rmtree(state_dir)
    s.put("cursor", "c2")  # written to the unnamed file: kept too
    assert s.keep_file() is True
    assert s.record("k") == rec and s.get("cursor") == "c2"
    with pytest.raises(StateLocked):
        State(str(state_dir))
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((state_dir / "state.sqlite").stat().st_mode) == 0o600
    s.close()
    again = State(str(state_dir))
    assert again.record("k") == rec and again.get("cursor") == "c2"
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(state_dir / "state.sqlite") as a, sqlite3.connect(other) as b:
        a.backup(b)
    os.replace(other, state_dir / "state.sqlite")
    with pytest.raises(StateError, match="replaced"):
        again.keep_file()
    again.close()
