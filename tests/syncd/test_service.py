"""fsgateway-syncd run end to end: a real mount writes, a real syncd process replicates, boto3 checks the backup."""

from __future__ import annotations

import hashlib
import os

import pytest

from tests.support.process import metric_value, wait_for
from tests.support.s3 import user_keys
from tests.support.syncd import backup_body, backup_keys

MiB = 1 << 20


def same_object(s3, primary: str, backup, key: str) -> bool:
    """Bytes, user metadata and Content-Type of the backup's `key` equal the primary's."""
    try:
        a = s3.get_object(Bucket=primary, Key=key)
        b = backup.client.get_object(Bucket=backup.name, Key=key)
    except (s3.exceptions.NoSuchKey, backup.client.exceptions.NoSuchKey):
        return False
    return (a["Body"].read() == b["Body"].read() and a["Metadata"] == b["Metadata"]
            and a.get("ContentType") == b.get("ContentType"))


def test_writes_through_the_mount_reach_the_backup(mount, s3, backup, syncd_factory):
    syncd = syncd_factory(mount.bucket, backup).start()
    (mount.path / "incoming").mkdir()
    (mount.path / "incoming" / "fw.bin").write_bytes(os.urandom(3000))
    os.symlink("fw.bin", mount.path / "incoming" / "latest")
    for key in ("incoming/fw.bin", "incoming/latest"):
        wait_for(lambda key=key: same_object(s3, mount.bucket, backup, key), 30, f"{key} in the backup")
    if backup.other_server:  # SeaweedFS keeps no metadata on directory markers
        wait_for(lambda: "incoming/" in backup_keys(backup), 30, "the directory marker")
    else:
        wait_for(lambda: same_object(s3, mount.bucket, backup, "incoming/"), 30, "the directory marker")
    meta = backup.client.head_object(Bucket=backup.name, Key="incoming/fw.bin")["Metadata"]
    assert meta["fsg-sha256"] and meta["mode"] == "33188"
    assert not [k for k in backup_keys(backup) if k.startswith(".fsgateway/")]  # the feed is not mirrored
    text = syncd.metrics()
    assert metric_value(text, "fsgateway_syncd_copies_total", outcome="ok") >= 3
    method = "streamed" if backup.other_server else "server_side"
    assert metric_value(text, "fsgateway_syncd_copies_total", method=method, outcome="ok") >= 2
    wait_for(lambda: metric_value(syncd.metrics(), "fsgateway_syncd_pending_objects") == 0, 10, "no backlog")


def test_objects_put_straight_into_the_primary_are_caught_by_the_reconcile(bucket, s3, backup, syncd_factory):
    s3.put_object(Bucket=bucket, Key="before", Body=b"seeded", ContentType="text/plain", Metadata={"a": "1"})
    syncd = syncd_factory(bucket, backup).start(reconcile_interval=1)
    wait_for(lambda: same_object(s3, bucket, backup, "before"), 30, "the first reconcile")
    s3.put_object(Bucket=bucket, Key="later/x", Body=b"by another tool")
    wait_for(lambda: same_object(s3, bucket, backup, "later/x"), 30, "a later reconcile")
    s3.put_object(Bucket=bucket, Key="before", Body=b"SEEDED", Metadata={"a": "2"})  # same size, no fsg-sha256
    wait_for(lambda: same_object(s3, bucket, backup, "before"), 30, "the overwrite")
    text = syncd.metrics()
    assert metric_value(text, "fsgateway_syncd_last_reconcile_success_timestamp_seconds") > 0
    assert metric_value(text, "fsgateway_syncd_drift_objects_total", kind="missing") >= 2


def test_overwrite_chmod_rename_and_delete_in_keep_mode(mount, s3, backup, syncd_factory):
    syncd_factory(mount.bucket, backup).start()
    p = mount.path
    (p / "f").write_bytes(b"one")
    wait_for(lambda: backup_body(backup, "f") == b"one", 30, "f")
    (p / "f").write_bytes(b"two")  # same size: only the checksum tells
    wait_for(lambda: backup_body(backup, "f") == b"two", 30, "the overwrite")
    (p / "f").chmod(0o600)
    wait_for(lambda: backup.client.head_object(Bucket=backup.name, Key="f")["Metadata"].get("mode") == "33152",
             30, "the metadata change")
    assert same_object(s3, mount.bucket, backup, "f")
    (p / "f").rename(p / "g")
    wait_for(lambda: same_object(s3, mount.bucket, backup, "g"), 30, "the renamed file")
    (p / "g").unlink()
    (p / "h").write_bytes(b"marker")  # the feed is in order: once h is there, the delete was seen
    wait_for(lambda: backup_body(backup, "h") == b"marker", 30, "h")
    assert backup_body(backup, "f") == b"two" and backup_body(backup, "g") == b"two"  # keep mode keeps both


def files(keys) -> set[str]:
    return {k for k in keys if not k.endswith("/")}


def test_mirror_mode_follows_deletes_and_renames(mount, s3, backup, syncd_factory):
    syncd = syncd_factory(mount.bucket, backup).start(delete="mirror")
    p = mount.path
    (p / "d").mkdir()
    for name in ("a", "b", "c"):
        (p / "d" / name).write_bytes(name.encode())
    wait_for(lambda: {"d/", "d/a", "d/b", "d/c"} <= set(backup_keys(backup)), 30, "the files")
    (p / "d" / "a").unlink()
    (p / "d" / "b").rename(p / "d" / "e")
    (p / "d").rename(p / "x")
    wait_for(lambda: set(backup_keys(backup)) >= {"x/", "x/c", "x/e"}, 30, "renames mirrored")
    # SeaweedFS shows an emptied directory `d/` for a while (HEAD and listings): compare files only
    wait_for(lambda: files(backup_keys(backup)) == files(user_keys(s3, mount.bucket)) == {"x/c", "x/e"}, 30,
             "deletes mirrored")
    assert metric_value(syncd.metrics(), "fsgateway_syncd_deletes_total", outcome="done") >= 3


def test_large_multipart_object(mount, s3, backup, syncd_factory):
    syncd_factory(mount.bucket, backup).start()
    data = os.urandom(40 * MiB)
    with open(mount.path / "big.bin", "wb") as f:
        for i in range(0, len(data), MiB):
            f.write(data[i : i + MiB])
    wait_for(lambda: backup_keys(backup).get("big.bin") == len(data), 120, "the 40 MiB object")
    got = backup.client.get_object(Bucket=backup.name, Key="big.bin")
    assert hashlib.sha256(got["Body"].read()).hexdigest() == got["Metadata"]["fsg-sha256"] \
        == hashlib.sha256(data).hexdigest()
    assert not backup.client.list_multipart_uploads(Bucket=backup.name).get("Uploads")


@pytest.mark.ceph_only
def test_keys_no_file_name_can_show_are_replicated(bucket, s3, same_backup, syncd_factory):
    odd = ["a//b", "x/./y", "dir/", "ünïcode/ key with spaces", "x" * 300]
    for key in odd:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode()[:50])
    syncd = syncd_factory(bucket, same_backup)
    r = syncd.once()
    assert r.returncode == 0, r.stderr
    assert set(backup_keys(same_backup)) == set(odd)
    assert all(backup_body(same_backup, k) == k.encode()[:50] for k in odd)
