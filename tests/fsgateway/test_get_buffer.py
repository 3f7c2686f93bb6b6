"""Ranged GETs into a buffer (`ObjectStore.get_buffer`: store/quickcalls.py, store/client.py) against the real server.

The body goes from the socket straight into the buffer (http.client's readinto, below botocore and
urllib3), so what urllib3 did on its own is checked here: exact sizes, a short body is an error, the
connection goes back to the pool after a whole body and never after a broken one.
"""

from __future__ import annotations

import errno
import logging
import os

import pytest
import trio
from botocore.exceptions import ResponseStreamingError
from botocore.response import StreamingBody

from fsgateway.store.client import StoreError, receive_exactly
from tests.support.uploads import requests, store_for

MIB = 1 << 20


def new_connections(caplog: pytest.LogCaptureFixture) -> int:
    """Connections urllib3 opened (it logs each at DEBUG)."""
    return sum("Starting new HTTP" in r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool")


@pytest.mark.tls
def test_a_range_lands_in_the_buffer_given_and_the_connection_serves_the_next(server, s3, bucket, caplog):
    data = os.urandom(3 * MIB + 5)
    etag = s3.put_object(Bucket=bucket, Key="f", Body=data)["ETag"]
    store = store_for(server, bucket)
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    buf = bytearray(MIB)

    async def main() -> None:
        for start in range(0, 3 * MIB, MIB):
            got = await store.get_buffer("f", start, start + MIB, etag, into=buf)
            assert got is buf and got == data[start:start + MIB]
        assert await store.get_buffer("f", 3 * MIB, 3 * MIB + 5, etag) == data[-5:]  # a buffer of its own

    trio.run(main)
    assert new_connections(caplog) == 1  # each GET's connection went back to the pool, whole


def test_a_buffer_of_another_size_than_the_range_is_refused(server, bucket):
    with pytest.raises(ValueError, match="11 bytes for a range of 10"):
        trio.run(lambda: store_for(server, bucket).get_buffer("f", 0, 10, into=bytearray(11)))


def test_a_range_past_the_end_is_an_error_not_a_short_buffer(server, s3, bucket):
    """The server answers a range that overlaps the end with fewer bytes: that is no success."""
    s3.put_object(Bucket=bucket, Key="f", Body=b"x" * 100)
    store = store_for(server, bucket, role="getbuf-past", retry_deadline=1)
    with pytest.raises(StoreError) as e:
        trio.run(lambda: store.get_buffer("f", 50, 150))
    assert e.value.errno == errno.EIO and "answer of 50 bytes to a range of 100" in str(e.value)


def test_an_overwritten_object_is_estale(server, s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="f", Body=b"old" * 1000)["ETag"]
    s3.put_object(Bucket=bucket, Key="f", Body=b"new" * 1000)
    with pytest.raises(StoreError) as e:
        trio.run(lambda: store_for(server, bucket).get_buffer("f", 0, 3000, etag, into=bytearray(3000)))
    assert e.value.errno == errno.ESTALE


def test_a_body_cut_short_is_retried_on_a_new_connection(server, s3, bucket, proxy):
    """The connection closes cleanly mid-body: an error (never a buffer with a zero tail), retried whole."""
    data = os.urandom(2 * MIB)
    etag = s3.put_object(Bucket=bucket, Key="f", Body=data)["ETag"]
    store = store_for(server, bucket, endpoint=proxy.endpoint, role="getbuf-cut")
    proxy.add("cut", "get", after=300_000, times=1)
    buf = bytearray(2 * MIB)
    assert trio.run(lambda: store.get_buffer("f", 0, 2 * MIB, etag, into=buf)) == data
    assert [s.action for s in proxy.seen("get")] == ["cut", "pass"]
    assert requests("getbuf-cut", "get", "transient") == 1 and requests("getbuf-cut", "get") == 1


def test_a_body_always_cut_short_fails_with_eio(server, s3, bucket, proxy):
    data = os.urandom(MIB)
    etag = s3.put_object(Bucket=bucket, Key="f", Body=data)["ETag"]
    store = store_for(server, bucket, endpoint=proxy.endpoint, role="getbuf-cut-always", retry_deadline=1)
    proxy.add("cut", "get", after=100_000)
    with pytest.raises(StoreError) as e:
        trio.run(lambda: store.get_buffer("f", 0, MIB, etag))
    assert e.value.errno == errno.EIO and "short ranged GET" in str(e.value)
    assert requests("getbuf-cut-always", "get", "ok") == 0


def test_a_body_without_http_clients_response_below_is_read_through_botocore(server, s3, bucket, caplog):
    """Should botocore's internals change (no urllib3 response over an http.client one below the body),
    its public readinto serves: the same bytes, the same checks, the connection still reused."""
    data = os.urandom(MIB)
    s3.put_object(Bucket=bucket, Key="f", Body=data)
    client = store_for(server, bucket).client
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    for start in (0, MIB // 2):
        response = client.get_object(Bucket=bucket, Key="f", Range=f"bytes={start}-{MIB - 1}")
        response["Body"] = StreamingBody(response["Body"], response["ContentLength"])  # hides `_fp`
        buf = bytearray(MIB - start)
        receive_exactly(response, memoryview(buf))
        assert buf == data[start:]
    response = client.get_object(Bucket=bucket, Key="f", Range="bytes=0-99")
    response["Body"] = StreamingBody(response["Body"], response["ContentLength"])
    with pytest.raises(ResponseStreamingError, match="answer of 100 bytes to a range of 101"):
        receive_exactly(response, memoryview(bytearray(101)))
    assert new_connections(caplog) == 1
    assert client.get_object(Bucket=bucket, Key="f", Range="bytes=0-9")["Body"].read() == data[:10]
    assert new_connections(caplog) == 2  # the refused answer was not read: its connection was closed, not reused
