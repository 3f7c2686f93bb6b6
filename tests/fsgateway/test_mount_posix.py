"""POSIX operations through a real FUSE mount, checked against the bucket with boto3."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import subprocess
import threading

import pytest

from tests.support.process import drop_caches, metric_value, wait_for
from tests.support.s3 import user_keys

MiB = 1 << 20


def head(s3, bucket, key):
    return s3.head_object(Bucket=bucket, Key=key)


def body(s3, bucket, key) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.mark.tls
def test_write_close_then_object_complete_with_s3fs_metadata(mount, s3):
    p = mount.path / "fw.bin"
    data = os.urandom(3 * MiB + 17)
    with open(p, "wb") as f:
        f.write(data)
        # not in the bucket before close: never half-written
        assert "Contents" not in s3.list_objects_v2(Bucket=mount.bucket, Prefix="fw.bin")
    # close() returned: the object must be complete now, no waiting
    assert body(s3, mount.bucket, "fw.bin") == data
    meta = head(s3, mount.bucket, "fw.bin")["Metadata"]
    assert stat.S_ISREG(int(meta["mode"]))
    assert int(meta["uid"]) == os.getuid()
    assert meta["fsg-sha256"] == hashlib.sha256(data).hexdigest()
    assert abs(float(meta["mtime"]) - os.stat(p).st_mtime) < 1


@pytest.mark.tls
def test_large_file_streams_multipart_and_reads_back_after_drop_caches(mount, s3):
    data = os.urandom(40 * MiB + 12345)  # several 16 MiB parts plus a short last one
    p = mount.path / "big.bin"
    with open(p, "wb") as f:
        for i in range(0, len(data), MiB):
            f.write(data[i : i + MiB])
    h = head(s3, mount.bucket, "big.bin")
    assert h["ContentLength"] == len(data)
    assert h["Metadata"]["fsg-sha256"] == hashlib.sha256(data).hexdigest()
    # no staging leftovers once close() returned
    assert s3.list_objects_v2(Bucket=mount.bucket, Prefix=".fsgateway/staging/").get("KeyCount", 0) == 0
    assert not s3.list_multipart_uploads(Bucket=mount.bucket).get("Uploads")
    drop_caches()
    assert hashlib.sha256(p.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_fsync_makes_object_complete_before_close(mount, s3):
    p = mount.path / "synced"
    with open(p, "wb") as f:
        f.write(b"part one")
        f.flush()
        os.fsync(f.fileno())
        assert body(s3, mount.bucket, "synced") == b"part one"
        f.write(b" and two")
    assert body(s3, mount.bucket, "synced") == b"part one and two"


def test_append_to_existing_object(mount, s3):
    s3.put_object(Bucket=mount.bucket, Key="log.txt", Body=b"line1\n")
    with open(mount.path / "log.txt", "ab") as f:
        f.write(b"line2\n")
    assert body(s3, mount.bucket, "log.txt") == b"line1\nline2\n"


@pytest.mark.tls
def test_random_writes_use_staging_and_keep_every_byte(mount, s3):
    base = os.urandom(6 * MiB)
    s3.put_object(Bucket=mount.bucket, Key="img", Body=base)
    expected = bytearray(base)
    with open(mount.path / "img", "r+b") as f:
        for off in (5 * MiB, 17, 3 * MiB + 1):
            f.seek(off)
            f.write(b"PATCH")
            expected[off : off + 5] = b"PATCH"
        f.seek(0)
        assert f.read(100) == bytes(expected[:100])  # read-your-writes on the open handle
    assert body(s3, mount.bucket, "img") == bytes(expected)


@pytest.mark.tls
def test_backwards_write_after_parts_were_streamed(mount, s3):
    """A zip-style writer: stream 40 MiB, then seek back and patch the header."""
    data = bytearray(os.urandom(40 * MiB))
    with open(mount.path / "z", "wb") as f:
        f.write(data)
        f.seek(0)
        f.write(b"HEADER")
    data[:6] = b"HEADER"
    assert body(s3, mount.bucket, "z") == bytes(data)


def test_truncate_grow_and_shrink_closed_and_open(mount, s3):
    p = mount.path / "t"
    p.write_bytes(b"0123456789")
    os.truncate(p, 4)
    assert body(s3, mount.bucket, "t") == b"0123"
    os.truncate(p, 8)
    assert body(s3, mount.bucket, "t") == b"0123\0\0\0\0"
    with open(p, "r+b") as f:
        f.truncate(2)
        f.seek(0, os.SEEK_END)
        f.write(b"xy")
    assert body(s3, mount.bucket, "t") == b"01xy"
    assert p.stat().st_size == 4


def test_open_creat_rdonly_creates_the_file(mount, s3):
    fd = os.open(mount.path / "empty", os.O_CREAT | os.O_RDONLY, 0o640)
    os.close(fd)
    h = head(s3, mount.bucket, "empty")
    assert h["ContentLength"] == 0
    assert stat.S_IMODE(int(h["Metadata"]["mode"])) == 0o640


def test_create_exclusive_over_existing_name_is_eexist(mount):
    (mount.path / "x").write_bytes(b"1")
    with pytest.raises(FileExistsError):
        os.open(mount.path / "x", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with pytest.raises(FileExistsError):
        os.mkdir(mount.path / "x")
    with pytest.raises(FileExistsError):
        os.symlink("target", mount.path / "x")


def test_name_too_long_is_enametoolong(mount):
    with pytest.raises(OSError) as e:
        (mount.path / ("n" * 256)).write_bytes(b"")
    assert e.value.errno == errno.ENAMETOOLONG


def test_hard_link_is_refused_cleanly(mount):
    (mount.path / "a").write_bytes(b"1")
    with pytest.raises(OSError) as e:
        os.link(mount.path / "a", mount.path / "b")
    assert e.value.errno in (errno.EPERM, errno.ENOTSUP)


@pytest.mark.tls
def test_rename_file_and_directory_tree(mount, s3):
    (mount.path / "d" / "sub").mkdir(parents=True)
    (mount.path / "d" / "sub" / "f").write_bytes(b"deep")
    (mount.path / "d" / "g").write_bytes(b"top")
    os.rename(mount.path / "d" / "g", mount.path / "d" / "h")
    os.rename(mount.path / "d", mount.path / "e")
    keys = sorted(user_keys(s3, mount.bucket))
    assert keys == ["e/", "e/h", "e/sub/", "e/sub/f"]
    assert (mount.path / "e" / "sub" / "f").read_bytes() == b"deep"
    assert not (mount.path / "d").exists()
    # rename over an existing file replaces it
    (mount.path / "new").write_bytes(b"new")
    os.rename(mount.path / "new", mount.path / "e" / "h")
    assert body(s3, mount.bucket, "e/h") == b"new"


def test_rename_of_open_file_being_written_lands_at_new_name(mount, s3):
    """rsync's pattern, and worse: rename while the temp file is still open."""
    with open(mount.path / ".tmp.fw", "wb") as f:
        f.write(b"payload")
        os.rename(mount.path / ".tmp.fw", mount.path / "fw")
    assert body(s3, mount.bucket, "fw") == b"payload"
    assert "Contents" not in s3.list_objects_v2(Bucket=mount.bucket, Prefix=".tmp")


def test_unlink_and_rmdir(mount, s3):
    (mount.path / "d").mkdir()
    (mount.path / "d" / "f").write_bytes(b"1")
    with pytest.raises(OSError) as e:
        os.rmdir(mount.path / "d")
    assert e.value.errno == errno.ENOTEMPTY
    os.unlink(mount.path / "d" / "f")
    os.rmdir(mount.path / "d")
    assert user_keys(s3, mount.bucket) == []
    with pytest.raises(FileNotFoundError):
        os.unlink(mount.path / "nothing")


def test_unlink_of_open_file_being_written_uploads_nothing(mount, s3):
    f = open(mount.path / "gone", "wb")
    f.write(b"data")
    os.unlink(mount.path / "gone")
    f.write(b"more")
    f.close()
    assert user_keys(s3, mount.bucket) == []
    assert not (mount.path / "gone").exists()


def test_unlink_of_open_file_being_read_keeps_reading_what_was_fetched(mount, s3):
    s3.put_object(Bucket=mount.bucket, Key="r", Body=b"abc" * 1000)
    with open(mount.path / "r", "rb") as f:
        first = f.read(10)
        os.unlink(mount.path / "r")
        rest = f.read()
    assert first + rest == b"abc" * 1000


def test_symlink_and_readlink_stored_like_s3fs(mount, s3):
    os.symlink("../target/fw.bin", mount.path / "current")
    assert os.readlink(mount.path / "current") == "../target/fw.bin"
    assert body(s3, mount.bucket, "current") == b"../target/fw.bin"
    assert stat.S_ISLNK(int(head(s3, mount.bucket, "current")["Metadata"]["mode"]))
    assert stat.S_ISLNK(os.lstat(mount.path / "current").st_mode)


@pytest.mark.tls
def test_chmod_chown_utimens_stored_in_metadata(mount, s3):
    p = mount.path / "m"
    p.write_bytes(b"x")
    os.chmod(p, 0o600)
    os.chown(p, 1234, 5678)
    os.utime(p, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    meta = head(s3, mount.bucket, "m")["Metadata"]
    assert int(meta["mode"]) == stat.S_IFREG | 0o600
    assert (meta["uid"], meta["gid"]) == ("1234", "5678")
    assert meta["mtime"] == "1600000000.123456789"
    assert body(s3, mount.bucket, "m") == b"x"
    st = os.stat(p)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 1234, 5678)


def test_statfs_and_xattrs(mount):
    st = os.statvfs(mount.path)
    assert st.f_namemax == 255 and st.f_bavail > 0
    p = mount.path / "x"
    p.write_bytes(b"hello")
    assert os.getxattr(p, "user.fsgateway.sha256").decode() == hashlib.sha256(b"hello").hexdigest()
    assert "user.fsgateway.key" in os.listxattr(p)
    with pytest.raises(OSError) as e:
        os.setxattr(p, "user.fsgateway.sha256", b"forged")
    assert e.value.errno == errno.EPERM


def test_cp_r_tree_reads_back_byte_exact_after_drop_caches(mount, tmp_path):
    src = tmp_path / "tree"
    for i in range(4):
        d = src / f"model{i}" / "1.0.0"
        d.mkdir(parents=True)
        (d / "payload.bin").write_bytes(os.urandom(MiB * i + 333))
        (d / "manifest.json").write_text(f'{{"v": {i}}}')
    subprocess.run(["cp", "-r", str(src), str(mount.path / "tree")], check=True)
    drop_caches()
    for f in src.rglob("*"):
        if f.is_file():
            assert (mount.path / "tree" / f.relative_to(src)).read_bytes() == f.read_bytes()


@pytest.mark.tls
def test_eight_parallel_writers(mount, s3):
    blobs = {f"w{i}": os.urandom(MiB * (i + 1) + i) for i in range(8)}
    errors: list[BaseException] = []

    def write(name: str) -> None:
        try:
            (mount.path / name).write_bytes(blobs[name])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in blobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for name, data in blobs.items():
        assert body(s3, mount.bucket, name) == data


def test_metrics_count_requests_and_bytes(mount):
    (mount.path / "m").write_bytes(b"z" * 1000)
    text = mount.metrics()
    assert metric_value(text, "fsgateway_s3_requests_total", kind="put", outcome="ok") >= 1
    assert metric_value(text, "fsgateway_s3_uploaded_bytes_total", role="primary") >= 1000
    assert metric_value(text, "fsgateway_uploads_total", outcome="ok") >= 1
    assert metric_value(text, "fsgateway_mount_up") == 1
    assert "secret" not in text.lower()


def test_external_changes_become_visible_within_stat_ttl(mount, s3):
    (mount.path / "e").write_bytes(b"old")
    s3.put_object(Bucket=mount.bucket, Key="e", Body=b"newer!")
    s3.put_object(Bucket=mount.bucket, Key="appeared", Body=b"1")
    wait_for(lambda: (mount.path / "appeared").exists(), 10, "a new object to appear")
    wait_for(lambda: (mount.path / "e").read_bytes() == b"newer!", 10, "an overwrite to show")
    s3.delete_object(Bucket=mount.bucket, Key="appeared")
    wait_for(lambda: not (mount.path / "appeared").exists(), 10, "a deleted object to vanish")


def test_rename_directory_onto_empty_directory_keeps_it(mount, s3):
    (mount.path / "a").mkdir()
    (mount.path / "b").mkdir()
    subprocess.run(["mv", "-T", str(mount.path / "a"), str(mount.path / "b")], check=True)
    assert os.path.isdir(mount.path / "b") and not os.path.exists(mount.path / "a")
    keys = user_keys(s3, mount.bucket)
    assert keys == ["b/"]


def test_chmod_after_a_fresh_listing_keeps_stored_metadata(mounter, bucket, s3):
    """A listing carries no metadata; chmod must not write listing defaults back over the real ones."""
    first = mounter()
    p = first.start(bucket)
    (p / "f").write_bytes(b"data")
    os.chown(p / "f", 4321, 4321)
    first.stop()
    second = mounter()
    q = second.start(bucket)
    assert os.listdir(q) == ["f"]
    os.chmod(q / "f", 0o600)
    meta = s3.head_object(Bucket=bucket, Key="f")["Metadata"]
    assert int(meta["mode"]) == stat.S_IFREG | 0o600
    assert meta["uid"] == "4321"
    assert meta["fsg-sha256"] == hashlib.sha256(b"data").hexdigest()


def test_two_handles_closing_at_once_commit_all_the_data(mount, s3):
    data = os.urandom(20 * MiB)
    a = os.open(mount.path / "shared", os.O_CREAT | os.O_WRONLY, 0o644)
    b = os.open(mount.path / "shared", os.O_WRONLY)
    os.write(a, data)
    threads = [threading.Thread(target=os.close, args=(fd,)) for fd in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert body(s3, mount.bucket, "shared") == data


def test_reserved_name_cannot_be_created(mount):
    with pytest.raises(PermissionError):
        os.mkdir(mount.path / ".fsgateway")


def test_open_reader_keeps_reading_after_the_file_is_renamed(mount, s3):
    data = os.urandom(30 * MiB)  # several read chunks: most are fetched after the rename
    s3.put_object(Bucket=mount.bucket, Key="before", Body=data)
    with open(mount.path / "before", "rb") as f:
        head_part = f.read(MiB)
        os.rename(mount.path / "before", mount.path / "after")
        rest = f.read()
    assert head_part + rest == data
