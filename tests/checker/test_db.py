"""The version database on SQLite and PostgreSQL: migrations, authorisation, arbitration under races."""

from __future__ import annotations

import json
import threading

import pytest

from checker import db as dbmod
from checker.db import Database, Verdict
from checker.rules import ModelPolicy, Release
from checker.signing import generate


def release(version: str, counter: int, sha: str = "a" * 64) -> Release:
    return Release("m", "stable", version, counter, sha, 10, "fw.bin", ("A",))


def test_migrations_run_once_and_refuse_a_newer_schema(database_url):
    db = Database(database_url)
    assert db.migrate() == len(dbmod.MIGRATIONS)
    assert db.migrate() == 0
    with db.transaction() as tx:
        tx.execute("UPDATE schema_version SET version = ?", (len(dbmod.MIGRATIONS) + 1,))
    with pytest.raises(dbmod.DatabaseError, match="newer"):
        db.migrate()
    db.close()


def test_upgrade_from_the_first_schema_keeps_data(database_url, monkeypatch):
    monkeypatch.setattr(dbmod, "MIGRATIONS", dbmod.MIGRATIONS[:1])
    db = Database(database_url)
    assert db.migrate() == 1
    db.set_model(ModelPolicy("m", ("A",), 100))
    monkeypatch.undo()
    assert db.migrate() == len(dbmod.MIGRATIONS) - 1
    assert db.models()["m"].hw_revisions == ("A",)
    with db.transaction() as tx:  # the v2 column exists and defaults to "not stored"
        db.record_release(tx, release("1.0.0", 1), "{}", "k", "p1", "kid")
        assert db.tx_stored_releases(tx) == []
    db.close()


def test_keys_are_authorised_per_model_and_revoked_at_once(database_url, tmp_path):
    db = Database(database_url)
    db.migrate()
    key = generate(str(tmp_path / "k.key"), str(tmp_path / "k.pub"))
    db.add_key(key.keyid, json.dumps(key.to_dict()), "builder", ["sensor-*", "gw"])
    record = db.keys()[key.keyid]
    assert record.may_sign("sensor-x") and record.may_sign("gw") and not record.may_sign("other")
    assert not record.revoked
    assert db.revoke_key(key.keyid)
    assert db.keys()[key.keyid].revoked
    assert not db.revoke_key("0" * 64)
    db.close()


def test_unique_constraints_refuse_a_second_release_of_a_version_or_counter(database_url):
    db = Database(database_url)
    db.migrate()
    with db.transaction() as tx:
        db.record_release(tx, release("1.0.0", 1), "{}", "k1", "p1", "kid")
    for dup in (release("1.0.0", 2), release("1.1.0", 1)):
        with pytest.raises(db.unique_violation), db.transaction() as tx:
            db.record_release(tx, dup, "{}", "k2", "p2", "kid")
    assert [r.version for r, _, _ in db.releases("m")] == ["1.0.0"]
    db.close()


def test_two_checkers_racing_on_one_version_exactly_one_wins(database_url):
    """Two connections (two hosts) decide the same version at once: one release, one verdict each."""
    from checker.rules import version_decision
    from tests.checker.manifests import manifest_for

    dbs = [Database(database_url) for _ in range(2)]
    dbs[0].migrate()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(i: int) -> None:
        m = manifest_for("m", "2.0.0", 5, sha=str(i) * 64)
        barrier.wait()
        with dbs[i].transaction() as tx:
            problem = version_decision(m, dbs[i].tx_release(tx, "m", "2.0.0"), dbs[i].tx_latest(tx, "m", "stable"))
            if problem is None:
                dbs[i].record_release(tx, release("2.0.0", 5, sha=str(i) * 64), "{}", "k", f"p{i}", "kid")
            dbs[i].record_verdict(tx, Verdict(f"p{i}", "incoming/m/2.0.0/", "x", "y", "", False), f"h{i}")
        outcomes.append("accepted" if problem is None else problem.reason)

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["accepted", "version_exists"]
    assert len(dbs[0].releases("m")) == 1
    for d in dbs:
        d.close()


def _intent(db: Database, targets: int, snapshot: int, releases: list[list[str]]) -> dict:
    doc = {"targets": targets, "snapshot": snapshot, "keyid": "kid", "expires": 1e10, "releases": releases,
           "blobs": []}
    assert db.record_publish_intent(lambda tx: doc) == doc
    return doc


def test_an_open_intent_survives_the_upgrade_to_v4_unplaced(database_url, monkeypatch):
    monkeypatch.setattr(dbmod, "MIGRATIONS", dbmod.MIGRATIONS[:3])
    db = Database(database_url)
    db.migrate()
    doc = _intent(db, 2, 2, [])
    monkeypatch.undo()
    assert db.migrate() == 1
    assert db.publish_intent() == doc and db.reserve_timestamp() is None  # not placed: nothing to point at
    db.mark_placed(doc)
    plan = db.reserve_timestamp()
    assert plan is not None and (plan.targets, plan.snapshot) == (2, 2)
    db.close()


@pytest.mark.parametrize("first", ["older", "newer"])
def test_of_two_racing_timestamp_writers_the_second_to_record_writes_again(database_url, first):
    """Two writers of timestamp.json, no lock, both PUTs done: either may have landed last, so the one that
    records second writes again (newer, newest snapshot); the first is what devices reach; nothing goes back."""
    db = Database(database_url)
    db.migrate()
    with db.transaction() as tx:
        db.record_release(tx, release("1.0.0", 1), "{}", "k", "p1", "kid")
    db.mark_stored("m", "1.0.0")
    intent = _intent(db, 1, 1, [["m", "1.0.0"]])
    db.mark_placed(intent)
    older, newer = db.reserve_timestamp(), db.reserve_timestamp()
    assert older is not None and newer is not None and newer.version > older.version
    assert older.snapshot == newer.snapshot == 1
    winner, loser = (older, newer) if first == "older" else (newer, older)
    assert not db.timestamp_superseded(loser)
    assert db.record_timestamp(winner, 100.0, "kid")
    assert db.publish_intent() is None and db.unpublished_releases() == 0  # the intent it carries is complete
    assert db.timestamp_superseded(loser)  # not worth a PUT any more
    assert not db.record_timestamp(loser, 50.0, "kid")
    assert db.published()["timestamp"] == (winner.version, 100.0, "kid")  # the loser recorded nothing
    again = db.reserve_timestamp()
    assert again is not None and again.version > newer.version and again.snapshot == 1
    assert db.record_timestamp(again, 150.0, "kid")
    assert db.published()["timestamp"] == (again.version, 150.0, "kid")
    # A newer snapshot placed meanwhile is what the next write points at, never an older one.
    second = _intent(db, 2, 2, [["m", "1.0.0"]])
    db.mark_placed(second)
    newest = db.reserve_timestamp()
    assert newest is not None and (newest.targets, newest.snapshot) == (2, 2)
    db.close()
