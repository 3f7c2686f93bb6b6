"""The uploader's answer: status/<model>/<version>.json through a real mount and checker, and `fsgateway-fw status`."""

from __future__ import annotations

import json

from checker import status
from tests.support.checker import MODEL, metric
from tests.support.process import wait_for


def _read(path) -> status.Status | None:
    """The status document as the mount shows it (None until it is there, or while it reads short).

    Replaced by the checker (another process, another host maybe), the object
    can read cut at its old size for up to the mount's stat_ttl: the kernel
    keeps the size it was given (a mount issue, reported; not the checker's).
    """
    try:
        return status.parse(path.read_bytes())
    except (FileNotFoundError, status.StatusError):
        return None


def _in_state(path, state: str):
    def check() -> status.Status | None:
        st = _read(path)
        return st if st is not None and st.state == state else None
    return check


def test_missing_payload_is_pending_with_its_reason_then_accepted(pipeline, mounted, tmp_path):
    checker = pipeline.start(mounted.path, pending_deadline="300")
    files = pipeline.package("1.0.0", 1, b"p" * 5000)
    folder = mounted.path / "incoming" / MODEL / "1.0.0"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_bytes(files["manifest.json"])  # the payload is not there yet
    shown = mounted.path / "status" / MODEL / "1.0.0.json"

    st = wait_for(_in_state(shown, "pending"), 30, "a pending status through the mount")
    assert st.reason == "incomplete" and "'fw.bin' has not arrived" in st.detail
    assert st.package == f"incoming/{MODEL}/1.0.0/" and st.deadline > st.updated_at
    # Written once per change, not once per look: the checker lists incoming/ every second here.
    etag = pipeline.s3.head_object(Bucket=pipeline.bucket, Key=f"status/{MODEL}/1.0.0.json")["ETag"]
    seen = metric(checker.metrics(), "fsgateway_checker_last_reconcile_timestamp_seconds")
    wait_for(lambda: metric(checker.metrics(), "fsgateway_checker_last_reconcile_timestamp_seconds") > seen + 3,
             30, "three more listings of incoming/")
    assert pipeline.s3.head_object(Bucket=pipeline.bucket, Key=f"status/{MODEL}/1.0.0.json")["ETag"] == etag

    (folder / "fw.bin").write_bytes(files["fw.bin"])
    st = wait_for(_in_state(shown, "accepted"), 60, "an accepted status through the mount")
    assert pipeline.verdict("1.0.0")[:2] == ("accepted", "ok")
    assert st.reason == "ok" and [st.release] == pipeline.keys(f"releases/{MODEL}/1.0.0/")
    wait_for(lambda: not pipeline.keys(f"incoming/{MODEL}/1.0.0/"), 30, "the upload area to be cleared")
    assert pipeline.keys("status/") == [f"status/{MODEL}/1.0.0.json"]

    r = pipeline.fw("status", MODEL, "1.0.0")
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["MODEL", "VERSION", "STATE", "REASON"]
    assert lines[1].split()[:4] == [MODEL, "1.0.0", "accepted", "ok"] and st.release in lines[1]
    listed = json.loads(pipeline.fw("status", "--json").stdout)
    assert [(d["model"], d["version"], d["state"], d["release"]) for d in listed] == \
        [(MODEL, "1.0.0", "accepted", st.release)]


def test_misnamed_payload_says_what_was_found_and_the_rejection_says_why(pipeline, mounted):
    pipeline.start(mounted.path, pending_deadline="300")
    files = pipeline.package("2.0.0", 2, b"q" * 3000)
    folder = mounted.path / "incoming" / MODEL / "2.0.0"
    folder.mkdir(parents=True)
    (folder / "firmware.bin").write_bytes(files["fw.bin"])
    (folder / "manifest.json").write_bytes(files["manifest.json"])
    st = wait_for(_in_state(mounted.path / "status" / MODEL / "2.0.0.json", "pending"), 30, "a pending status")
    assert st.reason == "incomplete" and "'fw.bin'" in st.detail and "found firmware.bin" in st.detail

    stranger = pipeline.new_key("stranger")  # not authorised: rejected at once
    pipeline.put(pipeline.package("3.0.0", 3, b"r" * 100, key=stranger), "3.0.0")
    st = wait_for(_in_state(mounted.path / "status" / MODEL / "3.0.0.json", "rejected"), 60, "a rejected status")
    assert pipeline.verdict("3.0.0")[:2] == ("rejected", "key_unknown")
    assert st.reason == "key_unknown" and "not authorised" in st.detail
    assert st.quarantine.startswith(f"quarantine/{MODEL}/3.0.0/") and \
        f"{st.quarantine}reason.json" in pipeline.keys(st.quarantine)

    out = pipeline.fw("status", MODEL).stdout
    assert "2.0.0" in out and "pending" in out and "found firmware.bin" in out
    assert "3.0.0" in out and "rejected" in out and "key_unknown" in out and st.quarantine in out


def test_a_hostile_name_is_escaped_in_the_status_and_the_listing(pipeline):
    pipeline.start()
    version = "4.0.0\x1b[2J\nforged"
    pipeline.put(pipeline.package("4.0.0", 4, b"s" * 10), version)
    keys = wait_for(lambda: pipeline.keys(f"status/{status.INVALID}"), 60, "a status under _invalid/")
    assert len(keys) == 1
    raw = pipeline.get(keys[0])
    assert b"\x1b" not in raw and b"\\u001b" not in raw  # escaped before it was stored, not only JSON-quoted
    st = status.parse(raw)
    assert st.state == "rejected" and st.reason == "bad_name" and st.version == "4.0.0\\x1b[2J\\nforged"
    r = pipeline.fw("status")
    assert "\x1b" not in r.stdout and "4.0.0\\x1b[2J\\nforged" in r.stdout
    assert len(r.stdout.splitlines()) == 2  # header and one row: the newline did not forge another
    r = pipeline.fw("status", MODEL, version, check=False)
    assert r.returncode == 1 and "cannot be a package name" in r.stderr and "\x1b" not in r.stderr


def test_status_document_round_trip_and_planted_documents():
    st = status.build("incoming/m/1.0.0/", "m", "1.0.0", "pending", "incomplete", "payload 'a\x07' missing", 0.0,
                      deadline=900.0)
    back = status.parse(st.to_json())
    assert back == st and back.detail == "payload 'a\\x07' missing" and back.deadline == "1970-01-01T00:15:00Z"
    for planted in (b"[]", b"{", json.dumps({"schema": 1, "state": "accepted"}).encode(),
                    st.to_json().replace(b'"pending"', b'"published"')):
        try:
            status.parse(planted)
        except status.StatusError:
            continue
        raise AssertionError(f"accepted {planted!r}")
    assert status.key("p/", "m", "1.0.0", "abcdef0123456789ff") == "p/status/m/1.0.0.json"
    assert status.key("", "m", "..", "abcdef0123456789ff") == "status/_invalid/abcdef0123456789.json"
    assert status.key("", None, None, "abcdef0123456789ff") == "status/_invalid/abcdef0123456789.json"
