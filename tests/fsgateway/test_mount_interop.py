"""Buckets written by other tools read correctly; keys that cannot be names never break listings."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from tests.support.process import drop_caches, metric_value


def test_objects_without_metadata_get_defaults(mount, s3):
    s3.put_object(Bucket=mount.bucket, Key="plain.bin", Body=b"aws cli wrote me")
    s3.put_object(Bucket=mount.bucket, Key="implicit/dir/file", Body=b"x")
    st = os.stat(mount.path / "plain.bin")
    assert stat.S_ISREG(st.st_mode) and st.st_size == 16
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert (mount.path / "plain.bin").read_bytes() == b"aws cli wrote me"
    assert os.path.isdir(mount.path / "implicit" / "dir")
    assert os.listdir(mount.path / "implicit") == ["dir"]
    assert (mount.path / "implicit" / "dir" / "file").read_bytes() == b"x"


def test_s3fs_metadata_is_honoured_including_lenient_forms(mount, s3):
    s3.put_object(Bucket=mount.bucket, Key="s3fs", Body=b"1",
                  Metadata={"mode": "33216", "uid": "42", "gid": "43", "mtime": "1500000000"})
    s3.put_object(Bucket=mount.bucket, Key="octal", Body=b"1", Metadata={"mode": "0600", "mtime": "1500000000.5"})
    s3.put_object(Bucket=mount.bucket, Key="link", Body=b"s3fs", Metadata={"mode": str(stat.S_IFLNK | 0o777)})
    st = os.stat(mount.path / "s3fs")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (0o700, 42, 43, 1500000000)
    st = os.stat(mount.path / "octal")
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_mtime_ns == 1_500_000_000_500_000_000
    assert os.readlink(mount.path / "link") == "s3fs"


@pytest.mark.ceph_only
def test_s3fs_directory_marker_metadata(mount, s3):
    """SeaweedFS keeps no user metadata on `dir/` objects, so only Ceph can show a marker's mode."""
    s3.put_object(Bucket=mount.bucket, Key="s3fsdir/", Body=b"", ContentType="application/x-directory",
                  Metadata={"mode": "16832", "uid": "42"})
    st = os.stat(mount.path / "s3fsdir")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == 42


def test_directory_shadows_file_of_the_same_name(mount, s3):
    for key in ["x", "x/inside", "ok"]:
        s3.put_object(Bucket=mount.bucket, Key=key, Body=b"1")
    assert sorted(os.listdir(mount.path)) == ["ok", "x"]
    assert os.path.isdir(mount.path / "x")
    assert os.listdir(mount.path / "x") == ["inside"]
    assert metric_value(mount.metrics(), "fsgateway_unmappable_keys_total", reason="shadowed_by_directory") >= 1


@pytest.mark.ceph_only
def test_unmappable_keys_are_counted_and_do_not_break_listing(mount, s3):
    """Keys SeaweedFS will not even store (it folds `a//b` to `a/b`, refuses `..` and >255-byte names)."""
    for key in ["good", "a//b", "x", "x/inside", "dots/../up", "long/" + "n" * 300, "ok/fine"]:
        s3.put_object(Bucket=mount.bucket, Key=key, Body=b"1")
    top = sorted(os.listdir(mount.path))
    assert top == ["a", "dots", "good", "long", "ok", "x"]
    assert os.path.isdir(mount.path / "x")  # the directory shadows the file `x`
    assert os.listdir(mount.path / "a") == []  # `a//b` has an empty component
    assert os.listdir(mount.path / "long") == []
    assert os.listdir(mount.path / "ok") == ["fine"]
    assert os.listdir(mount.path / "dots") == []
    text = mount.metrics()
    assert metric_value(text, "fsgateway_unmappable_keys_total", reason="empty_component") >= 1
    assert metric_value(text, "fsgateway_unmappable_keys_total", reason="name_too_long") >= 1
    assert metric_value(text, "fsgateway_unmappable_keys_total", reason="shadowed_by_directory") >= 1
    assert metric_value(text, "fsgateway_unmappable_keys_total", reason="dot_component") >= 1
    log = mount.log.read_text()
    assert "'a//'" in log and "shadowed_by_directory" in log


def test_reserved_prefix_is_hidden(mount, s3):
    s3.put_object(Bucket=mount.bucket, Key=".fsgateway/feed/0001", Body=b"journal")
    s3.put_object(Bucket=mount.bucket, Key="visible", Body=b"1")
    assert os.listdir(mount.path) == ["visible"]
    assert not os.path.exists(mount.path / ".fsgateway")


def test_prefix_mount_sees_only_its_subtree(mounter, bucket, s3):
    s3.put_object(Bucket=bucket, Key="fw/incoming/a.bin", Body=b"a")
    s3.put_object(Bucket=bucket, Key="other/b.bin", Body=b"b")
    m = mounter()
    path = m.start(f"{bucket}:/fw")
    assert os.listdir(path) == ["incoming"]
    (path / "incoming" / "c.bin").write_bytes(b"c")
    assert s3.get_object(Bucket=bucket, Key="fw/incoming/c.bin")["Body"].read() == b"c"


def test_files_written_by_the_gateway_read_back_through_a_second_mount(mounter, bucket):
    first, second = mounter(), mounter()
    a = first.start(bucket)
    b = second.start(bucket)
    os.symlink("t", a / "l")
    (a / "f").write_bytes(b"shared")
    os.chmod(a / "f", 0o640)
    assert (b / "f").read_bytes() == b"shared"
    assert stat.S_IMODE(os.stat(b / "f").st_mode) == 0o640
    assert os.readlink(b / "l") == "t"


@pytest.mark.parametrize("size", [3 << 20, 96 << 20])
def test_content_not_matching_stored_sha256_fails_the_read(mount, s3, size):
    """Corruption at rest (or a tool that changed bytes but kept our metadata) is EIO, not silent; also
    for a file of many chunks, whose reads the kernel sends ahead of the mount's hash."""
    good = os.urandom(size)
    (mount.path / "fw").write_bytes(good)
    meta = s3.head_object(Bucket=mount.bucket, Key="fw")["Metadata"]
    bad = bytearray(good)
    bad[12345] ^= 0xFF
    s3.put_object(Bucket=mount.bucket, Key="fw", Body=bytes(bad), Metadata=meta)
    drop_caches()
    with pytest.raises(OSError) as e:
        (mount.path / "fw").read_bytes()
    assert e.value.errno == errno.EIO
    assert metric_value(mount.metrics(), "fsgateway_checksum_mismatches_total") >= 1
    assert "checksum mismatch" in mount.log.read_text()


@pytest.mark.parametrize(("change", "expected"), [("overwrite", errno.ESTALE), ("delete", errno.ENOENT)])
def test_an_object_changed_by_another_tool_while_open_fails_later_reads(mounter, bucket, s3, change, expected):
    """A reader is pinned to the object it opened: what it had not fetched yet is never read from another."""
    s3.put_object(Bucket=bucket, Key="r", Body=os.urandom(40 << 20))
    m = mounter()
    m.start(bucket, "read_ahead=8M", "kernel_read_ahead=128K")  # far less than the object is fetched ahead
    with open(m.path / "r", "rb") as f:
        assert len(f.read(4096)) == 4096
        if change == "overwrite":
            s3.put_object(Bucket=bucket, Key="r", Body=b"new")
        else:
            s3.delete_object(Bucket=bucket, Key="r")
        with pytest.raises(OSError) as e:
            f.read()
    assert e.value.errno == expected


@pytest.mark.parametrize("size", [100, 3 << 20])
def test_a_new_open_reads_all_of_an_object_another_tool_made_longer(mounter, bucket, s3, size):
    """The kernel's cached size of the old object must not cut the new one short (stat_ttl is long)."""
    s3.put_object(Bucket=bucket, Key="fw", Body=b"old")
    m = mounter()
    m.start(bucket, "stat_ttl=300")
    assert (m.path / "fw").read_bytes() == b"old"  # size 3 cached by the kernel and the mount
    new = os.urandom(size)
    s3.put_object(Bucket=bucket, Key="fw", Body=new)
    assert (m.path / "fw").read_bytes() == new  # open revalidates with a HEAD: a new object, its size
    assert os.stat(m.path / "fw").st_size == size
