"""Crashes and outages: SIGKILL mid-copy, a backup endpoint that goes away and comes back."""

from __future__ import annotations

import hashlib
import os
import signal

import boto3
import pytest
from botocore.config import Config

from fsgateway.formats.s3format import SHA256_META
from tests.support.process import metric_value, succeeds, wait_for
from tests.support.syncd import Backup, backup_keys, make_passwd
from tests.support.weed import Weed

MiB = 1 << 20


@pytest.fixture
def weed_backup(tmp_path):
    """A private SeaweedFS as the backup (streamed copies), which a test may kill and restart."""
    weed = Weed(tmp_path)
    weed.start()
    client = boto3.client("s3", endpoint_url=weed.endpoint, aws_access_key_id="fault-key",
                          aws_secret_access_key="fault-secret", region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))
    wait_for(lambda: succeeds(lambda: client.create_bucket(Bucket="backup")), 30, "the backup bucket")
    yield weed, Backup("backup", client, weed.endpoint, make_passwd(tmp_path / "weedpass", "fault-key",
                                                                     "fault-secret"), True)
    weed.stop()


def test_sigkill_mid_copy_then_restart_converges_without_recopying(bucket, s3, weed_backup, syncd_factory):
    _, backup = weed_backup
    sizes = {f"obj{i:02d}": 3 * MiB for i in range(10)} | {"multi.bin": 14 * MiB}
    for key, size in sizes.items():
        s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(size))
    syncd = syncd_factory(bucket, backup).start(bandwidth_limit="10M", concurrency=2, part_size="5M",
                                                copy_buffers=2)
    wait_for(lambda: len(backup_keys(backup)) >= 3, 60, "some copies to complete")
    syncd.proc.send_signal(signal.SIGKILL)
    syncd.proc.wait(timeout=30)
    syncd.proc = None
    complete = {k for k, size in backup_keys(backup).items() if sizes.get(k) == size}
    assert len(complete) < len(sizes), "everything was copied before the kill: make the objects bigger"
    syncd.start()
    wait_for(lambda: backup_keys(backup) == sizes, 120, "the backup to converge after the restart")
    copied = metric_value(syncd.metrics(), "fsgateway_syncd_copies_total", outcome="ok")
    assert copied <= len(sizes) - len(complete)  # what was complete was recognised, not copied again
    for key in ("obj00", "multi.bin"):
        assert (s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                == backup.client.get_object(Bucket="backup", Key=key)["Body"].read())
    wait_for(lambda: not backup.client.list_multipart_uploads(Bucket="backup").get("Uploads"), 30,
             "the killed run's multipart upload to be aborted")


def test_backup_down_for_a_while_then_everything_pending_arrives(mount, weed_backup, syncd_factory):
    weed, backup = weed_backup
    syncd = syncd_factory(mount.bucket, backup).start(retry_deadline=2)
    (mount.path / "a").write_bytes(b"before")
    wait_for(lambda: "a" in backup_keys(backup), 30, "a in the backup")
    weed.stop()
    for name in ("b", "c"):
        (mount.path / name).write_bytes(name.encode() * 1000)  # the mount does not care about the backup
    wait_for(lambda: metric_value(syncd.metrics(), "fsgateway_syncd_failing_objects") >= 1, 60,
             "the outage to show as failing objects")
    text = syncd.metrics()
    assert metric_value(text, "fsgateway_syncd_pending_objects") >= 2
    assert metric_value(text, "fsgateway_syncd_behind_seconds") > 0
    weed.start()
    wait_for(lambda: {"a", "b", "c"} <= set(backup_keys(backup)), 60, "the pending changes to arrive")
    assert backup.client.get_object(Bucket="backup", Key="c")["Body"].read() == b"c" * 1000
    wait_for(lambda: metric_value(syncd.metrics(), "fsgateway_syncd_pending_objects") == 0, 30, "no backlog")


@pytest.mark.ceph_only
def test_no_deletes_after_an_error_in_the_same_run(bucket, s3, weed_backup, syncd_factory):
    _, backup = weed_backup
    for key in ("k0", "k1"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    syncd = syncd_factory(bucket, backup)
    assert syncd.once(delete="mirror").returncode == 0
    s3.delete_object(Bucket=bucket, Key="k0")
    s3.put_object(Bucket=bucket, Key="x" * 300, Body=b"SeaweedFS refuses keys this long")
    r = syncd.once(delete="mirror")
    assert r.returncode == 1 and "1 failed, 0 deleted, 1 deletes held back" in r.stdout, r.stdout
    assert "errors in this run" in r.stderr and "k0" in backup_keys(backup)
    s3.delete_object(Bucket=bucket, Key="x" * 300)
    r = syncd.once(delete="mirror")
    assert r.returncode == 0 and "1 deleted" in r.stdout and set(backup_keys(backup)) == {"k1"}


@pytest.mark.parametrize("size", [3 * MiB, 14 * MiB], ids=["put", "multipart"])
def test_a_streamed_copy_damaged_on_the_way_never_reaches_the_backup(bucket, s3, same_backup, syncd_factory, proxy,
                                                                     server, passwd_file, size):
    """The backup object carries the primary's fsg-sha256, which the planner trusts: bytes damaged on
    the way must never get there under it. The copy is abandoned (counted), and the next run copies."""
    data = os.urandom(size)
    s3.put_object(Bucket=bucket, Key="fw", Body=data, Metadata={SHA256_META: hashlib.sha256(data).hexdigest()})
    if size > 5 * MiB:
        proxy.add("pass", "get", times=1)  # the first part goes through: a later one is damaged
    proxy.add("flip_answer", "get", times=1, after=300_000)
    syncd = syncd_factory(bucket, same_backup)
    streamed = {"endpoint": proxy.endpoint, "backup_endpoint": server.endpoint, "backup_passwd_file": passwd_file,
                "part_size": "5M", "retry_deadline": 5}  # another endpoint: a streamed copy
    first = syncd.once(**streamed)
    assert proxy.seen("get", "flip_answer")
    assert first.returncode == 1, first.stderr[-2000:]
    assert "fw" not in backup_keys(same_backup)
    assert not same_backup.client.list_multipart_uploads(Bucket=same_backup.name).get("Uploads")
    assert "bytes read have SHA-256" in first.stderr
    second = syncd.once(**streamed)
    assert second.returncode == 0, second.stderr[-2000:]
    got = same_backup.client.get_object(Bucket=same_backup.name, Key="fw")
    assert got["Body"].read() == data
    assert got["Metadata"][SHA256_META] == hashlib.sha256(data).hexdigest()
