"""A daemon's SQLite file kept under its name (daemon/sqlitefile.py): written back, or kept aside."""

from __future__ import annotations

import shutil
import sqlite3
import stat

import pytest

from fsgateway.daemon import sqlitefile


def test_a_removed_database_is_written_back_whole_and_a_replaced_one_kept_aside(tmp_path):
    path = tmp_path / "state" / "db.sqlite"
    path.parent.mkdir()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (v)")
    conn.execute("INSERT INTO t VALUES ('before')")
    known = sqlitefile.identity(str(path))
    assert sqlitefile.ensure(conn, str(path), known) is False
    shutil.rmtree(path.parent)
    conn.execute("INSERT INTO t VALUES ('after')")  # into the unnamed file
    assert sqlitefile.ensure(conn, str(path), known) is True
    with sqlite3.connect(path) as back:
        assert [r[0] for r in back.execute("SELECT v FROM t")] == ["before", "after"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not list(path.parent.glob("*.part"))

    conn.execute("INSERT INTO t VALUES ('only in the open one')")
    with pytest.raises(sqlitefile.Replaced, match="kept in") as e:
        sqlitefile.ensure(conn, str(path), known)  # the written-back file is another file than `known`
    (aside,) = path.parent.glob("db.sqlite.kept-*")
    assert str(aside) in str(e.value) and stat.S_IMODE(aside.stat().st_mode) == 0o600
    with sqlite3.connect(aside) as kept:
        assert [r[0] for r in kept.execute("SELECT v FROM t")][-1] == "only in the open one"
    conn.close()
