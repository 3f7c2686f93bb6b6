"""rmdir(2): the entry and its marker go, the parent's link count and times follow; every errno."""

from __future__ import annotations

import os

from tests.fsgateway.conformance.posix import errno_of
from tests.support.s3 import user_keys


def test_removes_directory_and_updates_parent(d, conformance_mount, s3):
    os.mkdir(d / "sub")
    before = os.stat(d)
    os.rmdir(d / "sub")
    assert not (d / "sub").exists()
    after = os.stat(d)
    assert after.st_nlink == before.st_nlink - 1
    assert after.st_mtime_ns > before.st_mtime_ns and after.st_ctime_ns > before.st_ctime_ns
    assert user_keys(s3, conformance_mount.bucket, f"{d.name}/sub") == []


def test_errors(d, nobody):
    os.mkdir(d / "full")
    (d / "full" / "f").write_bytes(b"1")
    (d / "file").write_bytes(b"")
    os.mkdir(d / "empty")
    assert errno_of(os.rmdir, d / "full") == "ENOTEMPTY"
    assert errno_of(os.rmdir, d / "file") == "ENOTDIR"
    assert errno_of(os.rmdir, d / "missing") == "ENOENT"
    assert errno_of(os.rmdir, d / "file" / "x") == "ENOTDIR"
    assert errno_of(os.rmdir, d / ("n" * 256)) == "ENAMETOOLONG"
    assert errno_of(os.rmdir, f"{d}/empty/.")  # pathlib would drop the "." == "EINVAL"
    assert nobody("os.rmdir(V['p'])", p=d / "empty") == "EACCES"
    assert (d / "empty").is_dir() and (d / "full" / "f").read_bytes() == b"1"
