"""The reader (io/reader.py) against the real S3 server: read-ahead, its cancel scope, the hash check. No mount."""

from __future__ import annotations

import errno
import hashlib
import os

import pytest
import trio

from fsgateway.formats.s3format import SHA256_META
from fsgateway.mount import metrics
from fsgateway.mount.io.reader import ObjectReader, ReadError
from tests.support.uploads import requests, store_for, until

CHUNK = 1 << 20


def put(s3, bucket: str, key: str, data: bytes, sha256: str) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata={SHA256_META: sha256})
    return s3.head_object(Bucket=bucket, Key=key)["ETag"]


def mismatches() -> float:
    return metrics.REGISTRY.get_sample_value("fsgateway_checksum_mismatches_total") or 0.0


async def read_all(reader: ObjectReader, size: int, step: int = 128 << 10) -> bytes:
    return b"".join([bytes(await reader.read(off, step)) for off in range(0, size, step)])


def test_a_sequential_read_reads_ahead_fetches_each_chunk_once_and_checks_the_hash(server, s3, bucket):
    data = os.urandom(6 * CHUNK + 99)
    etag = put(s3, bucket, "f", data, hashlib.sha256(data).hexdigest())
    store = store_for(server, bucket, role="reader-seq")

    async def main():
        async with trio.open_nursery() as nursery:
            reader = ObjectReader(store, nursery, "f", len(data), etag, hashlib.sha256(data).hexdigest(),
                                  CHUNK, 4 * CHUNK)
            assert bytes(await reader.read(0, 10)) == data[:10]
            await until(lambda: requests("reader-seq", "get") >= 3, "read-ahead past the first chunk")
            assert await read_all(reader, len(data)) == data
            assert reader.hash_next == 7 and not reader.corrupt  # the whole object was hashed, and matched
            assert reader.hasher is None
            reader.close()

    before = mismatches()
    trio.run(main)
    assert requests("reader-seq", "get") == 7
    assert mismatches() == before


def test_a_sequential_read_reuses_the_buffers_of_chunks_it_left_behind(server, s3, bucket):
    """Twelve chunks through a window of five: six buffers (the window and one being refilled), the bytes right."""
    data = os.urandom(12 * CHUNK)
    sha = hashlib.sha256(data).hexdigest()
    etag = put(s3, bucket, "f", data, sha)
    store = store_for(server, bucket)

    async def main():
        async with trio.open_nursery() as nursery:
            reader = ObjectReader(store, nursery, "f", len(data), etag, sha, CHUNK, 4 * CHUNK)
            buffers = {}  # chunk index -> the buffer it arrived in (held here, so that no id is reused)
            out = []
            for off in range(0, len(data), 128 << 10):
                out.append(bytes(await reader.read(off, 128 << 10)))
                buffers.update({i: c.data for i, c in reader.chunks.items() if c.ok() and i not in buffers})
            assert b"".join(out) == data
            assert reader.hash_next == 12 and not reader.corrupt
            assert len(buffers) == 12
            assert len({id(b) for b in buffers.values()}) == reader.max_ahead + 3
            reader.close()

    trio.run(main)


def test_a_corrupted_object_fails_the_read_with_eio(server, s3, bucket):
    data = os.urandom(3 * CHUNK)
    wrong = hashlib.sha256(data[:-1] + b"?").hexdigest()  # the content does not match its SHA-256
    etag = put(s3, bucket, "f", data, wrong)
    store = store_for(server, bucket)

    async def main():
        async with trio.open_nursery() as nursery:
            reader = ObjectReader(store, nursery, "f", len(data), etag, wrong, CHUNK, 4 * CHUNK)
            with pytest.raises(ReadError) as e:
                await read_all(reader, len(data))
            assert e.value.errno == errno.EIO
            reader.close()

    before = mismatches()
    trio.run(main)
    assert mismatches() == before + 1


def test_closing_a_reader_cancels_its_read_ahead_at_once(server, s3, bucket, proxy):
    """Read-ahead in flight when the handle is released: its tasks end, and no GET of it is counted after.
    The reads waiting, for their chunk or for the hash to reach it, get EBADF at once."""
    data = os.urandom(4 * CHUNK)
    sha = hashlib.sha256(data).hexdigest()
    etag = put(s3, bucket, "f", data, sha)
    store = store_for(server, bucket, endpoint=proxy.endpoint, role="reader-close")
    proxy.add("stall", "get")

    async def main():
        async with trio.open_nursery() as nursery:
            reader = ObjectReader(store, nursery, "f", len(data), etag, sha, CHUNK, 4 * CHUNK)
            failed = []

            async def read(off: int) -> None:
                try:
                    await reader.read(off, 4096)
                except ReadError as exc:
                    failed.append(exc.errno)

            with trio.fail_after(10):  # the waiting reads must end when their reader closes
                async with trio.open_nursery() as readers:
                    readers.start_soon(read, 0)
                    await until(lambda: len(proxy.seen("get")) == 3, "the chunk read and two ahead requested")
                    readers.start_soon(read, 2 * CHUNK)  # held back: chunks 0 and 1 are not hashed yet
                    await trio.sleep(0)
                    assert len(nursery.child_tasks) == 3
                    reader.close()
            assert failed == [errno.EBADF, errno.EBADF]  # not empty bytes
            await until(lambda: not nursery.child_tasks, "the reader's fetch tasks to end", timeout=10)
            proxy.clear()  # the stalled requests go on to the server, their answers to abandoned threads
            await until(lambda: all(s.status is not None for s in proxy.seen("get")), "the stalled GETs answered")
            await trio.sleep(0)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert len(proxy.seen("get")) == 3  # no request started after close
    assert requests("reader-close", "get") == 0  # and none counted


def test_a_read_waiting_for_its_chunk_gets_it_while_another_read_moves_the_window_away(server, s3, bucket):
    """Concurrent reads (the kernel sends several at once) at both ends of a file: the first one's
    chunk arrives after the second moved the window; it must not be evicted under the read waiting
    for it (which then fetched it again, forever)."""
    data = os.urandom(8 * CHUNK)
    etag = put(s3, bucket, "f", data, hashlib.sha256(data).hexdigest())
    store = store_for(server, bucket, role="reader-pin")
    got: dict[str, bytes] = {}

    async def read(name: str, off: int) -> None:
        got[name] = bytes(await reader.read(off, 4096))

    async def main() -> None:
        nonlocal reader
        async with trio.open_nursery() as nursery:
            reader = ObjectReader(store, nursery, "f", len(data), etag, None, CHUNK, 3 * CHUNK)
            with trio.fail_after(30):
                async with trio.open_nursery() as reads:
                    reads.start_soon(read, "start", 0)
                    await trio.sleep(0)  # the first read has started its fetch and waits for it
                    reads.start_soon(read, "end", 7 * CHUNK)
            reader.close()

    reader: ObjectReader
    trio.run(main)
    assert got == {"start": data[:4096], "end": data[7 * CHUNK:7 * CHUNK + 4096]}
    assert requests("reader-pin", "get") <= 8  # each chunk at most once


@pytest.mark.parametrize("window", [2, 4])
@pytest.mark.parametrize("intact", [True, False], ids=["intact", "corrupted"])
def test_concurrent_sequential_reads_far_ahead_of_the_hash_still_check_the_whole_object(server, s3, bucket, intact,
                                                                                         window):
    """The kernel sends a sequential reader's reads several at once, ahead of the chunks hashed so far.
    The hash must hold them back, not switch itself off: a reader that goes through the whole object
    gets EIO on a mismatch whatever the order its reads arrive in (the check was lost under CPU load)."""
    n = 12
    data = os.urandom(n * CHUNK)
    sha = hashlib.sha256(data if intact else data[:-1] + b"?").hexdigest()
    etag = put(s3, bucket, "f", data, sha)
    store = store_for(server, bucket)
    got: dict[int, bytes | int] = {}
    held: list[int] = []  # chunks the reader held as each read returned

    async def read(index: int) -> None:
        try:
            got[index] = bytes(await reader.read(index * CHUNK, CHUNK))
        except ReadError as exc:
            got[index] = exc.errno
        held.append(len(reader.chunks))

    async def main() -> None:
        nonlocal reader
        async with trio.open_nursery() as nursery:
            reader = ObjectReader(store, nursery, "f", len(data), etag, sha, CHUNK, window * CHUNK)
            with trio.fail_after(60):
                async with trio.open_nursery() as reads:
                    for index in range(n):  # all in flight at once, in order, as the kernel's read-ahead sends them
                        reads.start_soon(read, index)
                        await trio.sleep(0)
            assert reader.hash_next == n  # every chunk went through the hash
            assert max(held) <= reader.max_ahead + 2  # and meanwhile the reader held no more than its window
            reader.close()

    reader: ObjectReader
    before = mismatches()
    trio.run(main)
    if intact:
        assert got == {i: data[i * CHUNK:(i + 1) * CHUNK] for i in range(n)}
        assert mismatches() == before
    else:
        assert got[n - 1] == errno.EIO  # the read that hands out the last bytes never succeeds
        assert mismatches() == before + 1
