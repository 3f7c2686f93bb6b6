"""The checker under faults: publishes that fail or are killed half-way, kills between the deletes of a package.

Faults are injected with a bucket policy that denies the checker (and
everyone) one kind of request on chosen keys: a PUT of the next snapshot, a
DELETE of one part of a package. The checker is then SIGKILLed where it stands,
the policy lifted, and a new checker started. Every scenario ends with the
invariants: every accepted release is in the signed targets and installs on a
device; no versioned metadata object ever changed; every verdict is closed and
there is one per package; nothing is left in incoming/ or the checker's staging.
"""

from __future__ import annotations

import json
import os
import signal
from contextlib import contextmanager
from datetime import datetime

import pytest

from tests.support.checker import MODEL, Pipeline, metric
from tests.support.faultproxy import FaultProxy
from tests.support.process import wait_for

VERSIONED = ("metadata/", "releases/")


def versioned(p: Pipeline) -> dict[str, bytes]:
    """Every object served as immutable: N.*.json, indexes, payloads (timestamp.json and root.json are not)."""
    out = {}
    for prefix in VERSIONED:
        for key in p.keys(prefix):
            if key.rsplit("/", 1)[-1] not in ("timestamp.json", "root.json"):
                out[key] = p.get(key)
    return out


@contextmanager
def denied(p: Pipeline, action: str, *keys: str):
    """Refuse `action` on `keys` (globs allowed) to everyone, the checker included, inside the block."""
    original = p.s3.get_bucket_policy(Bucket=p.bucket)["Policy"]
    policy = json.loads(original)
    policy["Statement"].append({"Sid": "fault", "Effect": "Deny", "Principal": "*", "Action": [action],
                                "Resource": [f"arn:aws:s3:::{p.bucket}/{k}" for k in keys]})
    p.s3.put_bucket_policy(Bucket=p.bucket, Policy=json.dumps(policy))
    try:
        yield
    finally:
        p.s3.put_bucket_policy(Bucket=p.bucket, Policy=original)


def published_targets_version(p: Pipeline) -> int:
    ts = json.loads(p.get("metadata/timestamp.json"))
    snapshot = json.loads(p.get(f"metadata/{ts['signed']['meta']['snapshot.json']['version']}.snapshot.json"))
    return snapshot["signed"]["meta"]["targets.json"]["version"]


def assert_invariants(p: Pipeline, before: dict[str, bytes], tmp_path, *, released: tuple[str, ...]) -> None:
    after = versioned(p)
    changed = [k for k, data in before.items() if after.get(k) != data]
    assert not changed, f"versioned objects rewritten or removed: {changed}"
    def query(sql: str) -> list[tuple]:
        db = p.db()
        try:
            return db.query(sql)
        finally:
            db.close()

    wait_for(lambda: not query("SELECT package FROM verdicts WHERE done = 0"), 30, "every verdict to be closed")
    assert query("SELECT package, COUNT(*) FROM verdicts GROUP BY package HAVING COUNT(*) > 1") == []
    assert query("SELECT COUNT(*) FROM publish_intent") == [(0,)]  # no publish left half done
    db = p.db()
    try:
        accepted = [r for r, _, _ in db.releases()]
    finally:
        db.close()
    targets = p.targets()
    assert sorted(r.version for r in accepted) == sorted(released)
    for r in accepted:
        assert targets[f"{r.model}/{r.version}/{r.name}"]["hashes"]["sha256"] == r.sha256
    wait_for(lambda: not p.keys("incoming/") and not p.keys(".fsgateway/checker/"), 30,
             "incoming/ and the checker's staging to be cleared")
    assert not p.keys("quarantine/"), p.keys("quarantine/")
    rc, out, err = p.device(tmp_path / f"device-{os.urandom(4).hex()}")
    assert rc == 0 and out["result"] == "updated" and out["installed"]["version"] == max(released), err


def first_publish(p: Pipeline):
    checker = p.start()
    wait_for(lambda: p.keys("metadata/timestamp.json"), 30, "the first timestamp.json")
    return checker


@pytest.mark.parametrize(("step", "database"), [("index", "sqlite"), ("targets", "sqlite"), ("snapshot", "sqlite"),
                                                ("timestamp", "sqlite"), ("snapshot", "postgresql")])
def test_publish_killed_at_each_step_is_continued_never_rewritten(pipelines, request, tmp_path, step, database):
    pipeline = pipelines(database=request.getfixturevalue("pg_url") if database == "postgresql" else "")
    pipeline.init()
    blocked = {"index": f"releases/{MODEL}/*.index.json", "targets": "metadata/*.targets.json",
               "snapshot": "metadata/*.snapshot.json", "timestamp": "metadata/timestamp.json"}[step]
    checker = first_publish(pipeline)
    payload = os.urandom(64 << 10)
    with denied(pipeline, "s3:PutObject", blocked):
        pipeline.put(pipeline.package("1.0.0", 1, payload), "1.0.0")
        wait_for(lambda: metric(checker.metrics(), "fsgateway_checker_publishes_total", outcome="error"), 60,
                 "the publish to fail")
        checker.stop(signal.SIGKILL)
        at_kill = versioned(pipeline)
        # Restarted while the fault lasts: the repository devices see stays whole (no 404 on a snapshot).
        again = pipeline.start()
        wait_for(lambda: metric(again.metrics(), "fsgateway_checker_publishes_total", outcome="error"), 60,
                 "the continued publish to fail again")
        rc, out, err = pipeline.device(tmp_path / "during")
        assert rc == 0 and out["result"] == "no_release", err
    # The fault is gone: the same checker retries without a restart.
    wait_for(lambda: "sensor-x/1.0.0/fw.bin" in pipeline.targets(), 60, "the release in the signed targets")
    assert_invariants(pipeline, at_kill, tmp_path, released=("1.0.0",))
    assert published_targets_version(pipeline) == 2  # the interrupted publish (v2) was continued, not rebuilt


def test_failed_publish_is_retried_without_a_restart(pipeline, tmp_path):
    checker = first_publish(pipeline)
    with denied(pipeline, "s3:PutObject", "metadata/*.snapshot.json"):
        pipeline.put(pipeline.package("1.0.0", 1, os.urandom(4096)), "1.0.0")
        wait_for(lambda: metric(checker.metrics(), "fsgateway_checker_publishes_total", outcome="error"), 60,
                 "the publish to fail")
        during = versioned(pipeline)
    wait_for(lambda: "sensor-x/1.0.0/fw.bin" in pipeline.targets(), 60, "the release in the signed targets")
    pipeline.put(pipeline.package("1.1.0", 2, os.urandom(4096)), "1.1.0")
    wait_for(lambda: "sensor-x/1.1.0/fw.bin" in pipeline.targets(), 60, "the next release")
    assert_invariants(pipeline, during, tmp_path, released=("1.0.0", "1.1.0"))


@pytest.mark.parametrize("part", ["fw.bin", "manifest.json", "", "staging"])
@pytest.mark.parametrize("outcome", ["accepted", "rejected"])
def test_kill_between_deleting_the_parts_gives_no_second_verdict(pipeline, tmp_path, part, outcome):
    """"" is the folder marker a mkdir leaves, "staging" the checker's hashed copy: every part is gone,
    only the clean-up and closing the verdict are left."""
    checker = first_publish(pipeline)
    pipeline.put(pipeline.package("0.9.0", 1, os.urandom(4096)), "0.9.0")
    pipeline.verdict("0.9.0")
    files = pipeline.package("1.0.0", 2, os.urandom(8192), sha256=None if outcome == "accepted" else "0" * 64)
    folder = f"incoming/{MODEL}/1.0.0/"
    with denied(pipeline, "s3:DeleteObject", ".fsgateway/checker/*" if part == "staging" else folder + part):
        pipeline.s3.put_object(Bucket=pipeline.bucket, Key=folder, Body=b"")  # what mkdir on the mount leaves
        pipeline.put(files, "1.0.0")
        wait_for(lambda: metric(checker.metrics(), "fsgateway_checker_errors_total", stage="judge"), 60,
                 "clearing the package to fail")
        checker.stop(signal.SIGKILL)
        before = versioned(pipeline)
    pipeline.start()
    got = pipeline.verdict("1.0.0")
    assert got[0] == outcome and pipeline.verdict_count("1.0.0") == 1
    if outcome == "rejected":
        assert pipeline.reason("1.0.0")["reason"] == "sha256_mismatch"
        for key in pipeline.keys("quarantine/"):
            pipeline.s3.delete_object(Bucket=pipeline.bucket, Key=key)
    assert_invariants(pipeline, before, tmp_path, released=("0.9.0", "1.0.0") if outcome == "accepted" else ("0.9.0",))


def test_failed_timestamp_re_signs_are_retried_before_it_expires(pipeline):
    checker = pipeline.start(timestamp_expiry="120")  # re-signed every 30 s
    wait_for(lambda: pipeline.keys("metadata/timestamp.json"), 30, "the first timestamp.json")
    first = json.loads(pipeline.get("metadata/timestamp.json"))["signed"]
    expires = datetime.fromisoformat(first["expires"].replace("Z", "+00:00"))
    with denied(pipeline, "s3:PutObject", "metadata/timestamp.json"):
        wait_for(lambda: metric(checker.metrics(), "fsgateway_checker_errors_total", stage="timestamp") >= 3, 100,
                 "three failed re-signs in a row")
    wait_for(lambda: json.loads(pipeline.get("metadata/timestamp.json"))["signed"]["version"] > first["version"],
             60, "timestamp.json re-signed")
    head = pipeline.s3.head_object(Bucket=pipeline.bucket, Key="metadata/timestamp.json")
    assert head["LastModified"] < expires, "timestamp.json expired before it was re-signed"


@pytest.mark.parametrize("fault", ["killed_while_a_put_hangs", "answer_dropped_after_the_put"])
def test_publish_through_a_faulty_network(pipeline, server, tmp_path, fault):
    """The fault proxy between checker and server: a SIGKILL while N.snapshot.json's PUT hangs (N.targets.json
    is stored, the database knows nothing more on the old code), or a PUT of N.targets.json whose answer is
    lost after the server stored it (the retry meets If-None-Match)."""
    if server.ca_bundle:
        pytest.skip("the fault proxy judges plain HTTP only")
    proxy = FaultProxy.to(server.endpoint).start()
    try:
        checker = pipeline.start(endpoint=proxy.endpoint)
        wait_for(lambda: pipeline.keys("metadata/timestamp.json"), 30, "the first timestamp.json")
        kept = versioned(pipeline)
        if fault == "killed_while_a_put_hangs":
            proxy.add("stall", "put", key=r"metadata/\d+\.snapshot\.json$")
            pipeline.put(pipeline.package("1.0.0", 1, os.urandom(4096)), "1.0.0")
            wait_for(lambda: proxy.seen("put", "stall"), 60, "the snapshot PUT to hang")
            checker.stop(signal.SIGKILL)
            kept = versioned(pipeline)
            assert "metadata/2.targets.json" in kept
            proxy.clear()
            pipeline.start(endpoint=proxy.endpoint)
        else:
            proxy.add("drop", "put", key=r"metadata/\d+\.targets\.json$", times=1)
            pipeline.put(pipeline.package("1.0.0", 1, os.urandom(4096)), "1.0.0")
        wait_for(lambda: "sensor-x/1.0.0/fw.bin" in pipeline.targets(), 60, "the release in the signed targets")
        assert proxy.seen("put", "stall" if fault == "killed_while_a_put_hangs" else "drop")
        assert_invariants(pipeline, kept, tmp_path, released=("1.0.0",))
        assert published_targets_version(pipeline) == 2
    finally:
        proxy.stop()


def test_kill_before_a_stray_key_is_cleared_closes_its_one_verdict_later(pipeline, tmp_path):
    checker = first_publish(pipeline)
    with denied(pipeline, "s3:DeleteObject", "incoming/stray.bin"):
        pipeline.s3.put_object(Bucket=pipeline.bucket, Key="incoming/stray.bin", Body=b"not in a package")
        wait_for(lambda: pipeline.keys("quarantine/_invalid/"), 60, "the stray key to be quarantined")
        wait_for(lambda: metric(checker.metrics(), "fsgateway_checker_errors_total", stage="reconcile"), 60,
                 "clearing it to fail")
        checker.stop(signal.SIGKILL)
    pipeline.s3.delete_object(Bucket=pipeline.bucket, Key="incoming/stray.bin")  # gone before the restart
    pipeline.start()
    db = pipeline.db()
    try:
        wait_for(lambda: db.query("SELECT outcome, reason, done FROM verdicts") == [("rejected", "bad_layout", 1)],
                 30, "the stray's one verdict to be closed")
    finally:
        db.close()
    assert [k for k in pipeline.keys("quarantine/") if k.endswith("/stray.bin")]


@pytest.mark.parametrize(("what", "damaged"), [("payload", 1), ("payload", 2), ("manifest", 1)])
def test_a_package_read_damaged_on_the_way_is_read_again_before_a_verdict(pipeline, server, what, damaged):
    """Nothing checks a GET's body on its way: one damaged read of a good package must not refuse it (the
    payload is hashed once more, the manifest read again); a payload whose every read disagrees with its
    manifest is refused."""
    if server.ca_bundle:
        pytest.skip("the fault proxy judges plain HTTP only")
    proxy = FaultProxy.to(server.endpoint).start()
    try:
        pipeline.start(endpoint=proxy.endpoint)
        package = pipeline.package("1.0.0", 1, os.urandom(1 << 20))
        if what == "payload":  # the checker's staged copy of it
            proxy.add("flip_answer", "get", key=r"\.fsgateway/checker/", times=damaged, after=300_000)
        else:  # a byte in the middle of its body
            proxy.add("flip_answer", "get", key=r"manifest\.json$", times=damaged,
                      after=-len(package["manifest.json"]) // 2)
        pipeline.put(package, "1.0.0")
        outcome, reason, _ = pipeline.verdict("1.0.0")
        assert len(proxy.seen("get", "flip_answer")) == damaged
        if damaged == 1:
            assert (outcome, reason) == ("accepted", "ok")
            wait_for(lambda: "sensor-x/1.0.0/fw.bin" in pipeline.targets(), 60, "the release in the signed targets")
        else:
            assert (outcome, reason) == ("rejected", "sha256_mismatch")
    finally:
        proxy.stop()
