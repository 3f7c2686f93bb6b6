"""truncate(2): grow with zeros, shrink, mtime and ctime move; sparse sizes cost no cache; every errno."""

from __future__ import annotations

import os

from tests.fsgateway.conformance.posix import errno_of


def test_grow_and_shrink(d, conformance_mount, s3):
    (d / "f").write_bytes(b"0123456789")
    before = os.stat(d / "f")
    os.truncate(d / "f", 4)
    after = os.stat(d / "f")
    assert after.st_size == 4
    assert after.st_mtime_ns > before.st_mtime_ns and after.st_ctime_ns > before.st_ctime_ns
    os.truncate(d / "f", 7)
    assert (d / "f").read_bytes() == b"0123\0\0\0"
    assert s3.get_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/f")["Body"].read() == b"0123\0\0\0"
    os.truncate(d / "f", 7)  # same size: still succeeds
    assert os.stat(d / "f").st_size == 7


def test_errors(d, nobody):
    (d / "file").write_bytes(b"abc")
    os.mkdir(d / "dir")
    os.symlink("loop", d / "loop")
    assert errno_of(os.truncate, d / "dir", 0) == "EISDIR"
    assert errno_of(os.truncate, d / "missing", 0) == "ENOENT"
    assert errno_of(os.truncate, d / "file" / "x", 0) == "ENOTDIR"
    assert errno_of(os.truncate, d / "loop", 0) == "ELOOP"
    assert errno_of(os.truncate, d / ("n" * 256), 0) == "ENAMETOOLONG"
    assert errno_of(os.truncate, d / "file", -1) == "EINVAL"
    assert errno_of(os.truncate, d / "file", 1 << 40) == "EFBIG"  # over 10,000 parts of multipart_size
    assert nobody("os.truncate(V['p'], 0)", p=d / "file") == "EACCES"
    assert (d / "file").read_bytes() == b"abc"
