"""rename(2) and renameat2: content, ctime, parents' link counts and times, replacement rules; every errno."""

from __future__ import annotations

import os
import stat

from fsgateway.formats.s3format import parse_mtime
from tests.fsgateway.conformance.posix import RENAME_EXCHANGE, RENAME_NOREPLACE, errno_of, renameat2
from tests.support.process import wait_for
from tests.support.s3 import user_keys


def test_file_rename_keeps_attributes_and_moves_ctime(d, conformance_mount, s3):
    (d / "a").write_bytes(b"payload")
    os.chmod(d / "a", 0o640)
    os.chown(d / "a", 1234, 5678)
    before = os.stat(d / "a")
    parent = os.stat(d)
    os.rename(d / "a", d / "b")
    after = os.stat(d / "b")
    assert not (d / "a").exists() and (d / "b").read_bytes() == b"payload"
    assert (after.st_mode, after.st_uid, after.st_gid, after.st_size) == (
        before.st_mode, before.st_uid, before.st_gid, before.st_size)
    assert after.st_mtime_ns == before.st_mtime_ns and after.st_ctime_ns > before.st_ctime_ns
    assert os.stat(d).st_mtime_ns > parent.st_mtime_ns
    meta = s3.head_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/b")["Metadata"]
    assert (int(meta["mode"]), meta["uid"]) == (stat.S_IFREG | 0o640, "1234")
    assert parse_mtime(meta["ctime"]) // 1000 == after.st_ctime_ns // 1000  # exact: no float


def test_rename_keeps_what_other_tools_stored(d, conformance_mount, s3):
    """The copy that stores the new ctime keeps the Content-Type and metadata it does not know."""
    s3.put_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/page", Body=b"<p>", ContentType="text/html",
                  Metadata={"app-version": "7"})
    wait_for(lambda: (d / "page").exists(), 10, "an object put beside the mount to show")  # after stat_ttl
    os.rename(d / "page", d / "moved")
    h = s3.head_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/moved")
    assert h["ContentType"] == "text/html" and h["Metadata"]["app-version"] == "7"
    assert "ctime" in h["Metadata"] and (d / "moved").read_bytes() == b"<p>"


def test_rename_over_a_file_replaces_it(d):
    (d / "a").write_bytes(b"new")
    (d / "b").write_bytes(b"old")
    os.rename(d / "a", d / "b")
    assert (d / "b").read_bytes() == b"new" and sorted(os.listdir(d)) == ["b"]


def test_directory_rename_between_parents_moves_link_counts(d, conformance_mount, s3):
    for p in ("src/x/deep", "dst"):
        os.makedirs(d / p)
    (d / "src" / "x" / "deep" / "f").write_bytes(b"f")
    assert sorted(os.listdir(d / "src")) == ["x"] and os.listdir(d / "dst") == []
    src, dst = os.stat(d / "src"), os.stat(d / "dst")
    os.rename(d / "src" / "x", d / "dst" / "y")
    assert os.stat(d / "src").st_nlink == src.st_nlink - 1
    assert os.stat(d / "dst").st_nlink == dst.st_nlink + 1
    assert os.stat(d / "dst").st_mtime_ns > dst.st_mtime_ns and os.stat(d / "src").st_mtime_ns > src.st_mtime_ns
    assert (d / "dst" / "y" / "deep" / "f").read_bytes() == b"f"
    assert user_keys(s3, conformance_mount.bucket, f"{d.name}/src/x") == []


def test_directory_over_an_empty_directory(d):
    os.makedirs(d / "a" / "in")
    os.mkdir(d / "b")
    os.rename(d / "a", d / "b")
    assert os.listdir(d / "b") == ["in"] and not (d / "a").exists()


def test_errors(d, nobody):
    (d / "file").write_bytes(b"1")
    (d / "file2").write_bytes(b"2")
    os.makedirs(d / "dir" / "sub")
    os.mkdir(d / "full")
    (d / "full" / "f").write_bytes(b"")
    os.mkdir(d / "empty")
    os.symlink("loop", d / "loop")
    assert errno_of(os.rename, d / "file", d / "dir") == "EISDIR"
    assert errno_of(os.rename, d / "dir", d / "file") == "ENOTDIR"
    assert errno_of(os.rename, d / "empty", d / "full") == "ENOTEMPTY"
    assert errno_of(os.rename, d / "dir", d / "dir" / "sub" / "inside") == "EINVAL"
    assert errno_of(os.rename, d / "missing", d / "x") == "ENOENT"
    assert errno_of(os.rename, d / "file", d / "missing" / "x") == "ENOENT"
    assert errno_of(os.rename, d / "file" / "x", d / "y") == "ENOTDIR"
    assert errno_of(os.rename, d / "file", d / ("n" * 256)) == "ENAMETOOLONG"
    assert errno_of(os.rename, d / "loop" / "x", d / "y") == "ELOOP"
    assert errno_of(os.rename, d / "file", "/tmp/fsg-cross-device-rename") == "EXDEV"
    assert errno_of(renameat2, d / "file", d / "file2", RENAME_NOREPLACE) == "EEXIST"
    assert errno_of(renameat2, d / "file", d / "file2", RENAME_EXCHANGE) == "EINVAL"  # known limit
    assert nobody("os.rename(V['a'], V['b'])", a=d / "file", b=d / "moved") == "EACCES"
    assert (d / "file").read_bytes() == b"1" and (d / "file2").read_bytes() == b"2"
