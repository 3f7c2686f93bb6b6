"""A version database that is lost or older than what the bucket published: the checker refuses to start."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

from checker.continuity import Published, behind, revived, unknown_releases
from checker.rules import Release
from tests.support.checker import MODEL, Pipeline
from tests.support.process import wait_for


def _release(version: str, sha: str = "ab" * 32, length: int = 3) -> Release:
    return Release(MODEL, "stable", version, 1, sha, length, "fw.bin", ("A",))


def test_every_published_release_must_be_stored_with_the_same_bytes():
    published = Published({"targets": 3}, {f"{MODEL}/1.0.0/fw.bin": (3, "ab" * 32),
                                           f"{MODEL}/2.0.0/fw.bin": (3, "ab" * 32)})
    assert unknown_releases(published, [_release("1.0.0"), _release("2.0.0")]) == []
    assert unknown_releases(published, [_release("1.0.0")]) == [f"{MODEL}/2.0.0/fw.bin"]
    assert unknown_releases(published, [_release("1.0.0"), _release("2.0.0", sha="cd" * 32)]) == \
        [f"{MODEL}/2.0.0/fw.bin"]  # the same version with other bytes: a second release of it
    assert unknown_releases(published, [_release("1.0.0", length=4), _release("2.0.0")]) == [f"{MODEL}/1.0.0/fw.bin"]
    assert unknown_releases(Published({}, {}), []) == []  # nothing published yet


def test_a_key_revoked_in_the_bucket_must_not_be_authorised_by_the_database():
    from securesystemslib.signer import CryptoSigner

    from checker.signing import AuthorisedKey

    key = CryptoSigner.generate_ed25519().public_key
    keys = {"a" * 64: AuthorisedKey(key, ("m",), False), "b" * 64: AuthorisedKey(key, ("m",), True)}
    assert revived({"a" * 64, "b" * 64, "c" * 64}, keys) == ["a" * 64]  # c: unknown, refused anyway
    assert revived({"b" * 64}, keys) == []


def test_version_numbers_the_bucket_used_are_taken():
    published = Published({"targets": 7, "snapshot": 7, "timestamp": 40}, {})
    assert behind(published, {"targets": 7, "snapshot": 9, "timestamp": 12}) == {"timestamp": 40}
    assert behind(published, {}) == {"targets": 7, "snapshot": 7, "timestamp": 40}
    assert behind(Published({}, {}), {"timestamp": 3}) == {}


def _run_checker(pipeline: Pipeline) -> subprocess.CompletedProcess:
    """One start of the checker that is expected to refuse (it would serve until stopped otherwise)."""
    return subprocess.run([sys.executable, "-m", "checker", "run", "--set", "metrics_address=off"],
                          env=pipeline.env(), capture_output=True, text=True, timeout=120)


def _timestamp_version(pipeline: Pipeline) -> int:
    return json.loads(pipeline.get("metadata/timestamp.json"))["signed"]["version"]


def _copy_db(src: str, dst: str) -> None:
    """A consistent copy, as a backup tool would make it."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def _put_db(copy: str, path: str) -> None:
    """The database restored from `copy` (no checker running): a new file, no WAL of the old one."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    _copy_db(copy, path)


def test_a_database_older_than_the_published_repository_is_refused(pipeline, tmp_path):
    """Restored from a copy made before 2.0.0 was published, the database would let 1.5.0 (a downgrade for
    every device on 2.0.0) and another 2.0.0 through: the checker names what it misses and stops. The newest
    copy starts; one that missed only re-signs starts, publishing above what devices have seen."""
    db_path = str(pipeline.state_dir / "versions.db")
    old, newest = str(pipeline.tmp / "old.db"), str(pipeline.tmp / "newest.db")
    for version, counter, backup in (("1.0.0", 10, old), ("2.0.0", 20, newest)):
        proc = pipeline.start()
        pipeline.put(pipeline.package(version, counter, version.encode() * 1000), version)
        assert pipeline.verdict(version)[0] == "accepted"
        proc.stop()
        _copy_db(db_path, backup)

    _put_db(old, db_path)
    r = _run_checker(pipeline)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"does not hold {MODEL}/2.0.0/fw.bin" in r.stderr and "older copy" in r.stderr
    roots = pipeline.keys("metadata/")
    r = pipeline.fw("repo", "rotate-online-key", "--root-key", str(pipeline.tmp / "root.key"), check=False)
    assert r.returncode != 0 and f"does not hold {MODEL}/2.0.0/fw.bin" in r.stderr, r.stderr  # it publishes too
    assert pipeline.keys("metadata/") == roots

    for suffix in ("", "-wal", "-shm"):  # lost: a new, empty database
        if os.path.exists(db_path + suffix):
            os.unlink(db_path + suffix)
    r = _run_checker(pipeline)
    assert r.returncode != 0 and f"does not hold {MODEL}/1.0.0/fw.bin and 1 more" in r.stderr, r.stderr

    _put_db(newest, db_path)
    rc, seen, err = pipeline.device(tmp_path / "device")
    assert rc == 0 and seen["installed"]["version"] == "2.0.0", err
    db = pipeline.db()
    try:  # a copy that missed re-signs of every role: its version numbers and its record of them are behind
        db.query("UPDATE repo_versions SET version = 1")
        db.query("UPDATE repo_published SET version = 1")
    finally:
        db.close()
    signed = _timestamp_version(pipeline)
    pipeline.start()
    wait_for(lambda: _timestamp_version(pipeline) > signed, 60, "timestamp.json signed at start")
    rc, seen, err = pipeline.device(tmp_path / "device")  # a version number it has seen would be a rollback
    assert rc == 0 and seen["result"] == "up_to_date", err
    pipeline.put(pipeline.package("2.1.0", 21, b"three" * 1000), "2.1.0")
    assert pipeline.verdict("2.1.0")[0] == "accepted"
    rc, seen, err = pipeline.device(tmp_path / "device")  # a timestamp.json version it saw would be a rollback
    assert rc == 0 and seen["installed"]["version"] == "2.1.0", err


def test_a_database_removed_under_the_checker_is_written_back_and_one_replaced_stops_it(pipeline):
    """The state directory emptied while the checker runs: the database is written back from its open
    connection and nothing is forgotten; the online key read at start goes on signing. Another file put
    in the database's place (an older copy restored live): the checker stops with the reason, and its
    next start judges that file against the bucket."""
    db_path = str(pipeline.state_dir / "versions.db")
    proc = pipeline.start()
    pipeline.put(pipeline.package("1.0.0", 10, b"one" * 1000), "1.0.0")
    assert pipeline.verdict("1.0.0")[0] == "accepted"
    old = str(pipeline.tmp / "old.db")
    _copy_db(db_path, old)
    key = (pipeline.state_dir / "online.key").read_bytes()
    shutil.rmtree(pipeline.state_dir)
    wait_for(lambda: os.path.exists(db_path), 30, "the database written back")
    pipeline.put(pipeline.package("2.0.0", 20, b"two" * 1000), "2.0.0")
    assert pipeline.verdict("2.0.0")[0] == "accepted"  # judged with the database written back
    assert f"{MODEL}/2.0.0/fw.bin" in pipeline.targets()  # signed with the online key read at start
    log = proc.log.read_text()
    assert "was removed while the checker ran" in log and "online key" in log
    (pipeline.state_dir / "online.key").write_bytes(key)
    (pipeline.state_dir / "online.key").chmod(0o600)

    _copy_db(old, db_path + ".new")
    for suffix in ("-wal", "-shm"):  # the live database's own: they must not be replayed into the old copy
        os.unlink(db_path + suffix)
    os.replace(db_path + ".new", db_path)
    wait_for(lambda: proc.proc.poll() is not None, 60, "the checker to stop")
    assert proc.proc.returncode != 0 and "was replaced by another file" in proc.log.read_text()
    r = _run_checker(pipeline)
    assert r.returncode != 0 and f"does not hold {MODEL}/2.0.0/fw.bin" in r.stderr, r.stderr


def test_a_database_from_before_a_key_revocation_is_refused(pipeline):
    """A builder key leaked and was revoked; a copy of the database from before would authorise it again.
    The revocation is recorded in the bucket too (by fsgateway-fw, and by every start for any the bucket
    lacks), so that copy is refused."""
    db_path = str(pipeline.state_dir / "versions.db")
    leaked = pipeline.new_key("leaked", models=MODEL)
    keyid = leaked.public_key.keyid
    before = str(pipeline.tmp / "before.db")
    _copy_db(db_path, before)
    assert pipeline.fw("key", "revoke", keyid).returncode == 0
    marker = f"keys/revoked/{keyid}.json"
    assert pipeline.keys("keys/revoked/") == [marker]
    newest = str(pipeline.tmp / "newest.db")
    _copy_db(db_path, newest)

    _put_db(before, db_path)
    r = _run_checker(pipeline)
    assert r.returncode != 0 and f"authorises builder key {keyid}" in r.stderr, r.stderr

    _put_db(newest, db_path)
    pipeline.s3.delete_object(Bucket=pipeline.bucket, Key=marker)  # say fsgateway-fw could not write it
    pipeline.start()
    assert pipeline.keys("keys/revoked/") == [marker]  # recorded at start
    pipeline.put(pipeline.package("3.0.0", 30, b"x" * 1000, key=leaked), "3.0.0")
    assert pipeline.verdict("3.0.0")[:2] == ("rejected", "key_revoked")
