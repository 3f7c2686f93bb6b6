"""unlink(2): the name and object go, the parent's times follow, an open file shows st_nlink 0; every errno."""

from __future__ import annotations

import os

from tests.fsgateway.conformance.posix import errno_of
from tests.support.s3 import user_keys


def test_removes_file_and_updates_parent(d, conformance_mount, s3):
    (d / "f").write_bytes(b"data")
    before = os.stat(d)
    nlink = before.st_nlink
    os.unlink(d / "f")
    assert not (d / "f").exists()
    after = os.stat(d)
    assert after.st_mtime_ns > before.st_mtime_ns and after.st_ctime_ns > before.st_ctime_ns
    assert after.st_nlink == nlink  # a file is not a subdirectory
    assert user_keys(s3, conformance_mount.bucket, f"{d.name}/f") == []


def test_open_file_unlinked_has_no_links_and_a_new_ctime(d):
    (d / "f").write_bytes(b"data")
    fd = os.open(d / "f", os.O_RDONLY)
    try:
        before = os.fstat(fd)
        assert before.st_nlink == 1
        os.unlink(d / "f")
        after = os.fstat(fd)
        assert after.st_nlink == 0
        assert after.st_ctime_ns > before.st_ctime_ns
    finally:
        os.close(fd)


def test_symlink_itself_is_removed_not_its_target(d):
    (d / "t").write_bytes(b"1")
    os.symlink("t", d / "l")
    os.unlink(d / "l")
    assert not os.path.lexists(d / "l") and (d / "t").read_bytes() == b"1"


def test_errors(d, nobody):
    os.mkdir(d / "dir")
    (d / "file").write_bytes(b"")
    assert errno_of(os.unlink, d / "dir") == "EISDIR"
    assert errno_of(os.unlink, d / "missing") == "ENOENT"
    assert errno_of(os.unlink, d / "file" / "x") == "ENOTDIR"
    assert errno_of(os.unlink, d / ("n" * 256)) == "ENAMETOOLONG"
    assert nobody("os.unlink(V['p'])", p=d / "file") == "EACCES"
    assert (d / "file").exists()
