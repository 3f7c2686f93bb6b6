"""ftruncate(2) on open descriptors: sizes and content, times, EINVAL on a read-only descriptor, EFBIG."""

from __future__ import annotations

import os

from tests.fsgateway.conformance.posix import errno_of


def test_shrink_grow_write_on_one_descriptor(d, conformance_mount, s3):
    fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"0123456789")
        os.ftruncate(fd, 3)
        before = os.fstat(fd)
        os.ftruncate(fd, 6)
        after = os.fstat(fd)
        assert after.st_size == 6 and after.st_mtime_ns > before.st_mtime_ns
        os.pwrite(fd, b"Z", 8)
        assert os.pread(fd, 100, 0) == b"012\0\0\0\0\0Z"
    finally:
        os.close(fd)
    assert s3.get_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/f")["Body"].read() == b"012\0\0\0\0\0Z"


def test_a_truncate_alone_is_stored_when_its_descriptor_closes(d, conformance_mount, s3):
    """ftruncate is a change made through the descriptor: its close() commits it, like a write's."""
    (d / "f").write_bytes(b"0123456789")
    for size, expected in ((4, b"0123"), (6, b"0123\0\0")):
        fd = os.open(d / "f", os.O_RDWR)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        assert s3.get_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/f")["Body"].read() == expected


def test_errors(d):
    (d / "f").write_bytes(b"abc")
    fd = os.open(d / "f", os.O_RDONLY)
    try:
        assert errno_of(os.ftruncate, fd, 0) == "EINVAL"
    finally:
        os.close(fd)
    fd = os.open(d / "f", os.O_RDWR)
    try:
        assert errno_of(os.ftruncate, fd, -1) == "EINVAL"
        assert errno_of(os.ftruncate, fd, 6 << 40) == "EFBIG"
    finally:
        os.close(fd)
    assert (d / "f").read_bytes() == b"abc"
