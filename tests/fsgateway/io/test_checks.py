"""Unit tests of the write path's pure checks: sizes and ETags (io/upload.py) and the one-pass hash (io/staged.py)."""

from __future__ import annotations

import errno
import hashlib
import os

import pytest

from fsgateway.mount.io.staged import hash_file
from fsgateway.mount.io.upload import WriteError, check_complete, check_etag, check_length
from fsgateway.store.client import ObjectInfo, multipart_etag

A, B = hashlib.md5(b"a").hexdigest(), hashlib.md5(b"b").hexdigest()


def info(size: int, etag: str) -> ObjectInfo:
    return ObjectInfo("k", size, etag, None)


def test_a_plain_md5_etag_must_be_the_md5_of_the_bytes_sent():
    check_etag("k", "part 1", f'"{A}"', A)
    with pytest.raises(WriteError) as e:
        check_etag("k", "part 1", f'"{B}"', A)
    assert e.value.errno == errno.EIO


def test_an_etag_that_is_no_md5_cannot_be_checked_and_passes():
    check_etag("k", "part 1", "", A)  # RGW's empty answers
    check_etag("k", "part 1", '"not-an-md5"', A)


def test_a_completed_object_has_our_size_part_count_and_multipart_etag():
    parts = [A, B]
    assert check_complete("k", info(2, f'"{multipart_etag(parts)}"'), 2, parts).size == 2
    for wrong in (info(3, f'"{multipart_etag(parts)}"'),  # size
                  info(2, f'"{multipart_etag([A, A])}"'),  # other parts
                  info(2, f'"{multipart_etag(parts)[:-1]}3"'),  # part count
                  None):  # vanished
        with pytest.raises(WriteError):
            check_complete("k", wrong, 2, parts)


def test_a_commit_never_stores_another_length():
    check_length("k", 5, 5)
    with pytest.raises(WriteError):
        check_length("k", 4, 5)


def test_hash_file_gives_the_sha256_and_each_parts_md5_in_one_read(tmp_path):
    data = os.urandom(2500)
    path = tmp_path / "f"
    path.write_bytes(data + b"beyond the file's size")
    sha, md5s = hash_file(str(path), len(data), 1000)
    assert sha == hashlib.sha256(data).hexdigest()
    assert md5s == [hashlib.md5(data[i:i + 1000]).hexdigest() for i in (0, 1000, 2000)]
    assert hash_file(str(path), 0, 1000)[1] == [hashlib.md5(b"").hexdigest()]
    with pytest.raises(OSError):
        hash_file(str(path), len(data) + 1000, 1000)
