"""Huge sparse truncates: only real bytes count against cache_size; sizes no object can hold are EFBIG."""

from __future__ import annotations

import errno
import os

import pytest

GiB = 1 << 30


def test_sparse_truncate_far_past_cache_size_then_back(mounter, bucket, s3):
    path = mounter().start(bucket, "cache_size=64M")
    fd = os.open(path / "sparse", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"head")
        os.ftruncate(fd, 8 * GiB)  # 128 times cache_size, all of it a hole
        assert os.fstat(fd).st_size == 8 * GiB
        os.pwrite(fd, b"middle", 4 * GiB)
        assert os.pread(fd, 10, 4 * GiB - 2) == b"\0\0middle\0\0"
        assert os.pread(fd, 4, 0) == b"head"
        with pytest.raises(OSError) as e:  # real bytes still count: 80 MiB of data does not fit in 64 MiB
            for off in range(0, 80 << 20, 1 << 20):
                os.pwrite(fd, os.urandom(1 << 20), GiB + off)
        assert e.value.errno == errno.ENOSPC
        os.ftruncate(fd, 16)
    finally:
        os.close(fd)
    assert s3.get_object(Bucket=bucket, Key="sparse")["Body"].read() == b"head" + b"\0" * 12


def test_sizes_no_object_can_hold_are_efbig(mount):
    p = mount.path / "f"
    p.write_bytes(b"keep")
    with pytest.raises(OSError) as e:
        os.truncate(p, 200 * GiB)  # over 10,000 parts of the default 16 MiB multipart_size
    assert e.value.errno == errno.EFBIG
    fd = os.open(p, os.O_RDWR)
    try:
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"x", 200 * GiB)
        assert e.value.errno == errno.EFBIG
    finally:
        os.close(fd)
    assert p.read_bytes() == b"keep"
