"""The one streamed SHA-256 of an object (fsgateway/store/hashing.py), against a real server."""

from __future__ import annotations

import errno
import hashlib
import os

import pytest
import trio

from fsgateway.store.client import StoreError
from fsgateway.store.hashing import sha256_of


def test_digest_of_several_chunks_pinned_to_the_etag_read(server, s3, bucket):
    data = os.urandom(300_000)
    etag = s3.put_object(Bucket=bucket, Key="obj", Body=data)["ETag"]
    counted: list[int] = []
    digest, pinned = trio.run(lambda: sha256_of(server.store(bucket), "obj", len(data), chunk=64 << 10,
                                                hashed=counted.append))
    assert digest == hashlib.sha256(data).hexdigest()
    assert pinned == etag and sum(counted) == len(data) and len(counted) == 5


def test_empty_object(server, s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="empty", Body=b"")["ETag"]
    assert trio.run(sha256_of, server.store(bucket), "empty", 0) == (hashlib.sha256(b"").hexdigest(), etag)


@pytest.mark.parametrize("actual", [999, 1001, 0])
def test_another_size_than_expected_is_estale(server, s3, bucket, actual):
    """Signed bytes plus junk, a truncated copy, an emptied one: never "the digest of 1000 bytes"."""
    s3.put_object(Bucket=bucket, Key="obj", Body=os.urandom(actual))
    with pytest.raises(StoreError) as info:
        trio.run(sha256_of, server.store(bucket), "obj", 1000)
    assert info.value.errno == errno.ESTALE


def test_an_object_replaced_while_hashed_is_estale(server, s3, bucket):
    """Same size, other bytes, put between two ranged GETs: the second GET (If-Match) fails."""
    size, chunk = 200_000, 64 << 10
    s3.put_object(Bucket=bucket, Key="obj", Body=os.urandom(size))
    buffers = trio.CapacityLimiter(1)

    async def replace_after_first(n: int) -> None:
        if replace_after_first.calls == 1:  # type: ignore[attr-defined]
            await trio.to_thread.run_sync(lambda: s3.put_object(Bucket=bucket, Key="obj", Body=os.urandom(size)))
        replace_after_first.calls += 1  # type: ignore[attr-defined]

    replace_after_first.calls = 0  # type: ignore[attr-defined]
    with pytest.raises(StoreError) as info:
        trio.run(lambda: sha256_of(server.store(bucket), "obj", size, chunk=chunk, before_get=replace_after_first,
                                   buffers=buffers))
    assert info.value.errno == errno.ESTALE
    assert buffers.borrowed_tokens == 0  # every chunk's buffer given back, on failure too


def test_a_given_etag_that_is_not_the_objects_is_estale(server, s3, bucket):
    data = os.urandom(100)
    etag = s3.put_object(Bucket=bucket, Key="obj", Body=data)["ETag"]
    s3.put_object(Bucket=bucket, Key="obj", Body=os.urandom(100))
    with pytest.raises(StoreError) as info:
        trio.run(sha256_of, server.store(bucket), "obj", 100, etag)
    assert info.value.errno == errno.ESTALE
