"""Recording a verdict: policy re-checked in the same transaction, and every failure ends in a verdict.

On SQLite and PostgreSQL, with the checker's own `Checker.record` and real
signed manifests (no bucket needed: recording touches only the database).
"""

from __future__ import annotations

import hashlib
import json

import pytest

from checker import manifest, signing
from checker.db import Database
from checker.judge import Decision
from checker.landing import Package
from checker.rules import ModelPolicy
from checker.service import Checker

MODEL = "sensor-x"


@pytest.fixture
def db(database_url):
    d = Database(database_url)
    d.migrate()
    d.set_model(ModelPolicy(MODEL, ("A", "B"), 1 << 20))
    yield d
    d.close()


@pytest.fixture
def key(db, tmp_path) -> signing.CryptoSigner:
    signing.generate(str(tmp_path / "b.key"), str(tmp_path / "b.pub"))
    pub = signing.load_public_key(str(tmp_path / "b.pub"))
    db.add_key(pub.keyid, json.dumps(pub.to_dict()), "builder", [MODEL])
    return signing.load_signer(str(tmp_path / "b.key"))


def accepted(key, version: str = "1.0.0", hw: tuple[str, ...] = ("A",)) -> Decision:
    """What the judge hands over after hashing: the signature verified, the payload's hash matching."""
    signed = manifest.signed_document(MODEL, list(hw), version, 1, "stable", "fw.bin", 3,
                                      hashlib.sha256(b"abc").hexdigest())
    text = json.dumps({"signed": signed, "signatures": [signing.sign(manifest.canonical(signed), key)]})
    m = manifest.parse(text.encode())
    return Decision("accepted", "ok", "", m, text, key.public_key.keyid)


def record(db: Database, d: Decision, prefix: str = f"incoming/{MODEL}/1.0.0/") -> tuple[str, str, str]:
    checker = Checker(None, db, None, None, "", "testhost", 1, 1, 60)  # type: ignore[arg-type]
    verdict, ours = checker.record(Package(prefix, MODEL, "1.0.0"), hashlib.sha256(prefix.encode(
        "utf-8", "surrogatepass")).hexdigest()[:32], d)
    assert ours
    return verdict.outcome, verdict.reason, verdict.detail


def test_a_key_revoked_while_the_payload_was_hashed_is_refused(db, key):
    d = accepted(key)
    assert db.revoke_key(key.public_key.keyid)
    assert record(db, d)[:2] == ("rejected", "key_revoked")
    assert db.releases() == []


def test_a_model_narrowed_while_the_payload_was_hashed_is_refused(db, key):
    d = accepted(key, hw=("A", "B"))
    db.set_model(ModelPolicy(MODEL, ("A",), 1 << 20))
    assert record(db, d)[:2] == ("rejected", "hw_incompatible")
    assert db.releases() == []


def test_the_same_decision_without_changes_is_accepted(db, key):
    assert record(db, accepted(key))[:2] == ("accepted", "ok")
    assert [r.version for r, _, _ in db.releases()] == ["1.0.0"]


def test_a_lone_surrogate_in_what_is_recorded_ends_in_a_verdict(db, key):
    """Detail and package name from uploaders: neither SQLite nor PostgreSQL can store a lone surrogate."""
    d = Decision("rejected", "schema", "signed: unknown field(s) \ud800")
    outcome, reason, detail = record(db, d, prefix=f"incoming/{MODEL}/\udcff/")
    assert (outcome, reason) == ("rejected", "schema")
    assert "\\ud800" in detail
    (package,) = [row[0] for row in db.query("SELECT package FROM verdicts")]
    assert package == f"incoming/{MODEL}/\ufffd/"


def test_any_failure_while_recording_ends_in_a_rejection_that_says_why(db, key):
    d = accepted(key)
    broken = Decision(d.outcome, d.reason, d.detail, d.manifest, d.manifest_text, "")  # keyid lost: no authority
    assert record(db, broken)[:2] == ("rejected", "key_unknown")
    bad_text = Decision(d.outcome, d.reason, d.detail, d.manifest, "\ud800", d.keyid, "")
    outcome, reason, detail = record(db, bad_text, prefix=f"incoming/{MODEL}/2.0.0/")
    assert (outcome, reason) == ("rejected", "record_failed")
    assert "UnicodeEncodeError" in detail or "Error" in detail
    assert db.releases() == []


def test_a_nul_in_what_is_recorded_ends_in_a_verdict(db, key):
    """PostgreSQL text cannot hold NUL; a detail or a key carrying one is stored escaped or replaced."""
    outcome, reason, detail = record(db, Decision("rejected", "schema", "unknown field(s) a\0b"),
                                     prefix=f"incoming/{MODEL}/a\0b/")
    assert (outcome, reason, detail) == ("rejected", "schema", "unknown field(s) a\\x00b")
    assert [row[0] for row in db.query("SELECT package FROM verdicts")] == [f"incoming/{MODEL}/a\ufffdb/"]
