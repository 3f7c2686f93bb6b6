"""Several checkers on one bucket (two mounts, one PostgreSQL), and a checker killed mid-validation."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading

from tests.support.checker import MODEL, metric
from tests.support.process import wait_for


def test_two_checkers_on_two_mounts_racing_for_one_release_counter(pipelines, mounter, pg_url, tmp_path):
    """Two hosts land 3.0.0 and 3.0.1 with the same counter at once, each checker sees both: one wins.

    Every package gets exactly one verdict although both checkers judge it,
    and exactly one of the two is released.
    """
    first = pipelines(database=pg_url)
    first.init()
    second = pipelines(database=pg_url, bucket=first.bucket)  # another host: same bucket and database
    second.state_dir.mkdir(parents=True)
    os.link(first.state_dir / "online.key", second.state_dir / "online.key")
    mounts = [mounter(), mounter()]
    paths = [m.start(first.bucket) for m in mounts]
    checkers = [first.start(paths[0]), second.start(paths[1])]

    versions = ["3.0.0", "3.0.1"]
    payloads = {v: os.urandom(1 << 20) for v in versions}
    for i, v in enumerate(versions):
        src = tmp_path / v
        src.mkdir()
        for name, data in first.package(v, 7, payloads[v]).items():
            (src / name).write_bytes(data)
        (paths[i] / "incoming" / MODEL).mkdir(parents=True, exist_ok=True)
    barrier = threading.Barrier(2)

    def land(i: int) -> None:
        barrier.wait()
        subprocess.run(["cp", "-r", str(tmp_path / versions[i]), str(paths[i] / "incoming" / MODEL)], check=True)

    threads = [threading.Thread(target=land, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    verdicts = {v: first.verdict(v) for v in versions}
    assert sorted(o for o, _, _ in verdicts.values()) == ["accepted", "rejected"]
    loser = next(v for v in versions if verdicts[v][0] == "rejected")
    winner = next(v for v in versions if v != loser)
    assert verdicts[loser][1] in ("counter_not_increasing", "version_not_increasing")
    assert [first.verdict_count(v) for v in versions] == [1, 1]
    assert [(r.version, r.sha256) for r, _, _ in first.db().releases(MODEL)] == [
        (winner, hashlib.sha256(payloads[winner]).hexdigest())]
    assert not first.keys(f"releases/{MODEL}/{loser}/")
    assert f"{MODEL}/{loser}/fw.bin" not in first.targets()
    judged = sum(metric(c.metrics(), "fsgateway_checker_verdicts_total") for c in checkers)
    assert judged == 2  # two packages, two verdicts in all, however the two checkers split them


def test_checker_killed_mid_validation_reaches_the_verdict_once_after_restart(pipeline, tmp_path):
    payload = os.urandom(96 << 20)
    checker = pipeline.start()
    pipeline.put(pipeline.package("4.0.0", 9, payload), "4.0.0")
    # Kill it while it hashes: the package is staged and partly read, nothing is recorded yet.
    wait_for(lambda: metric(checker.metrics(), "fsgateway_checker_hashed_bytes_total") > 0, 60, "hashing to start")
    checker.stop(signal.SIGKILL)
    assert pipeline.verdict_count("4.0.0") == 0
    assert not pipeline.keys(f"releases/{MODEL}/")

    restarted = pipeline.start()
    assert pipeline.verdict("4.0.0")[:2] == ("accepted", "ok")
    assert pipeline.verdict_count("4.0.0") == 1
    keys = pipeline.keys(f"releases/{MODEL}/4.0.0/")
    assert len(keys) == 1 and pipeline.get(keys[0]) == payload
    assert list(pipeline.targets()).count(f"{MODEL}/4.0.0/fw.bin") == 1
    wait_for(lambda: not pipeline.keys(".fsgateway/checker/"), 30, "the staging copy to be removed")
    assert metric(restarted.metrics(), "fsgateway_checker_verdicts_total", outcome="accepted") == 1


def test_checker_killed_after_the_verdict_finishes_the_actions_on_restart(pipeline):
    """A verdict recorded but not carried out (killed in between) is carried out once on restart."""
    checker = pipeline.start()
    pipeline.put(pipeline.package("5.0.0", 10, b"x" * 5000), "5.0.0")
    assert pipeline.verdict("5.0.0")[0] == "accepted"
    checker.stop(signal.SIGKILL)
    # Re-open the verdict as if the process had died before carrying it out.
    db = pipeline.db()
    with db.transaction() as tx:
        tx.execute("UPDATE verdicts SET done = 0")
        tx.execute("UPDATE releases SET stored = 0")
    db.close()
    pipeline.s3.delete_object(Bucket=pipeline.bucket, Key=pipeline.keys(f"releases/{MODEL}/5.0.0/")[0])
    pipeline.put(pipeline.package("5.0.0", 10, b"x" * 5000), "5.0.0")
    # The new landing is judged as a duplicate and puts the missing release object back.
    pipeline.start()
    wait_for(lambda: pipeline.keys(f"releases/{MODEL}/5.0.0/"), 60, "the release object to be restored")
    wait_for(lambda: not pipeline.keys(f"incoming/{MODEL}/5.0.0/"), 60, "the upload area to be cleared")
    # The re-upload holds the judged bytes (same ETags): the reopened verdict's clean-up may clear it before
    # it is looked at, or it is judged a duplicate of its own. Either way: one acceptance, nothing else.
    db = pipeline.db()
    try:
        outcomes = [row[0] for row in db.query("SELECT outcome FROM verdicts WHERE package = ?",
                                               (f"incoming/{MODEL}/5.0.0/",))]
    finally:
        db.close()
    assert outcomes.count("accepted") == 1 and set(outcomes) <= {"accepted", "duplicate"}, outcomes
    assert list(pipeline.targets()).count(f"{MODEL}/5.0.0/fw.bin") == 1
