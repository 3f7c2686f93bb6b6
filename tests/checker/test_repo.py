"""The TUF repository over time: init refused twice, root renewal and rotation, expiry re-signing, metrics."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime

from tuf.api.metadata import Metadata, Root
from tuf.ngclient import Updater

from checker.service import refresh_delay
from tests.support.checker import MODEL, Pipeline, metric
from tests.support.process import wait_for
from tests.support.s3 import feed_events


def test_refresh_retries_on_a_short_backoff_never_longer_than_the_interval():
    interval = 6 * 3600
    assert refresh_delay(0, interval) == interval
    assert [refresh_delay(n, interval) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert refresh_delay(1000, interval) == 60  # no overflow after a long outage
    assert refresh_delay(3, 12) == 12  # a refresh interval shorter than the backoff wins


def test_repo_init_refuses_a_bucket_that_already_holds_a_repository(pipeline):
    root = pipeline.get("metadata/1.root.json")
    r = pipeline.fw("repo", "init", "--root-key", str(pipeline.tmp / "other-root.key"), "--root-out",
                    str(pipeline.tmp / "other-root.json"), check=False)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "already holds a TUF repository" in r.stderr, r.stderr
    assert pipeline.get("metadata/1.root.json") == root and pipeline.get("metadata/root.json") == root
    assert not (pipeline.tmp / "other-root.json").exists()


def stock_client(p: Pipeline, state, root: bytes | None = None) -> Updater:
    """python-tuf's ngclient as any device would run it, trusting `root` on first use."""
    meta, targets = state / "metadata", state / "targets"
    meta.mkdir(parents=True, exist_ok=True)
    targets.mkdir(exist_ok=True)
    base = f"{p.server.endpoint}/{p.bucket}/"
    updater = Updater(str(meta), base + "metadata/", str(targets), base + "releases/", bootstrap=root)
    updater.refresh()
    return updater


def signed_by(p: Pipeline, key: str) -> set[str]:
    return {s["keyid"] for s in json.loads(p.get(key))["signatures"]}


def test_devices_with_the_first_root_follow_renewal_and_both_key_rotations(pipeline, tmp_path):
    pipeline.start()
    pipeline.put(pipeline.package("1.0.0", 1, os.urandom(4096)), "1.0.0")
    assert pipeline.verdict("1.0.0")[0] == "accepted"
    old_device = tmp_path / "old-device"
    assert pipeline.device(old_device, check=True)[1]["result"] == "updated"
    first_root = (pipeline.tmp / "root.json").read_bytes()
    old_online = json.loads((pipeline.state_dir / "online.pub").read_text())

    # Root key rotation (and renewal): v2 signed by the old root key and the new one.
    pipeline.fw("repo", "renew-root", "--root-key", str(pipeline.tmp / "root.key"), "--new-root-key",
                str(pipeline.tmp / "root2.key"), "--root-out", str(tmp_path / "root2.json"), "--root-days", "400")
    v2 = Metadata[Root].from_bytes(pipeline.get("metadata/2.root.json")).signed
    v1 = Metadata[Root].from_bytes(first_root).signed
    assert len(signed_by(pipeline, "metadata/2.root.json")) == 2
    assert v2.roles["root"].keyids != v1.roles["root"].keyids and v2.expires > v1.expires
    assert pipeline.get("metadata/root.json") == pipeline.get("metadata/2.root.json")
    # announced in the change feed, so that syncd mirrors the root of trust at once
    announced = {(e.op, e.key) for e in feed_events(pipeline.s3, pipeline.bucket)}
    assert {("put", "metadata/2.root.json"), ("put", "metadata/root.json")} <= announced
    # The old root key can no longer change the root.
    r = pipeline.fw("repo", "renew-root", "--root-key", str(pipeline.tmp / "root.key"), "--root-out",
                    str(tmp_path / "x.json"), check=False)
    assert r.returncode == 1 and "is not a root key of root v2" in r.stderr, r.stderr

    # Online key rotation while the checker runs: v3 trusts both online keys, v4 only the new one.
    pipeline.fw("repo", "rotate-online-key", "--root-key", str(pipeline.tmp / "root2.key"))
    new_online = json.loads((pipeline.state_dir / "online.pub").read_text())
    assert new_online["keyval"] != old_online["keyval"]
    v4 = Metadata[Root].from_bytes(pipeline.get("metadata/4.root.json")).signed
    assert v4.roles["timestamp"].keyids == v4.roles["targets"].keyids and len(v4.roles["targets"].keyids) == 1
    new_keyid = v4.roles["targets"].keyids[0]
    assert signed_by(pipeline, "metadata/timestamp.json") == {new_keyid}
    announced = [e.key for e in feed_events(pipeline.s3, pipeline.bucket)]
    assert {"metadata/3.root.json", "metadata/4.root.json"} <= set(announced)
    assert announced.count("metadata/timestamp.json") >= 2  # the checker's release and the rotation's re-signing

    # The running checker signs the next release with the new key.
    pipeline.put(pipeline.package("1.1.0", 2, os.urandom(4096)), "1.1.0")
    assert pipeline.verdict("1.1.0")[0] == "accepted"
    wait_for(lambda: f"{MODEL}/1.1.0/fw.bin" in pipeline.targets(), 30, "1.1.0 in the signed targets")
    assert signed_by(pipeline, "metadata/timestamp.json") == {new_keyid}

    # A device that last ran under root v1, and a new device provisioned with root v1, follow the chain.
    rc, out, err = pipeline.device(old_device)
    assert rc == 0 and out["result"] == "updated" and out["installed"]["version"] == "1.1.0", err
    rc, out, err = pipeline.device(tmp_path / "new-device")
    assert rc == 0 and out["installed"]["version"] == "1.1.0", err
    stock = stock_client(pipeline, tmp_path / "stock", first_root)
    assert stock.get_targetinfo(f"{MODEL}/1.1.0/fw.bin") is not None
    assert json.loads((tmp_path / "stock" / "metadata" / "root.json").read_text())["signed"]["version"] == 4


def test_targets_and_snapshot_are_re_signed_before_they_expire(pipeline, tmp_path):
    """Short lifetimes: the first targets/snapshot expire, devices go on updating, the metrics say when."""
    checker = pipeline.start(targets_expiry="20", timestamp_expiry="120")
    pipeline.put(pipeline.package("1.0.0", 1, os.urandom(4096)), "1.0.0")
    assert pipeline.verdict("1.0.0")[0] == "accepted"
    wait_for(lambda: f"{MODEL}/1.0.0/fw.bin" in pipeline.targets(), 30, "1.0.0 in the signed targets")
    ts = json.loads(pipeline.get("metadata/timestamp.json"))["signed"]
    snap_v = ts["meta"]["snapshot.json"]["version"]
    first = json.loads(pipeline.get(f"metadata/{snap_v}.snapshot.json"))["signed"]
    expires = datetime.fromisoformat(first["expires"].replace("Z", "+00:00")).timestamp()
    cached = tmp_path / "device"
    assert pipeline.device(cached, check=True)[1]["result"] == "updated"
    stock_client(pipeline, tmp_path / "stock", (pipeline.tmp / "root.json").read_bytes())

    wait_for(lambda: time.time() > expires + 2, 60, "the first snapshot's expiry to pass")
    rc, out, err = pipeline.device(cached)
    assert rc == 0 and out["result"] == "up_to_date", err
    rc, out, err = pipeline.device(tmp_path / "fresh")
    assert rc == 0 and out["result"] == "updated", err
    assert stock_client(pipeline, tmp_path / "stock").get_targetinfo(f"{MODEL}/1.0.0/fw.bin") is not None
    text = checker.metrics()
    for role in ("root", "targets", "snapshot", "timestamp"):
        assert metric(text, "fsgateway_checker_metadata_expiry_timestamp_seconds", role=role) > time.time(), role
    root_expiry = Metadata[Root].from_bytes(pipeline.get("metadata/root.json")).signed.expires.timestamp()
    assert metric(text, "fsgateway_checker_metadata_expiry_timestamp_seconds", role="root") == root_expiry
