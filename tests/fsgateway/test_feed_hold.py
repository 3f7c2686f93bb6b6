"""A single PUT's feed record is written while the PUT is under way: held back from journals until it is settled.

The trap this guards: the flusher storing the record in a journal object, and syncd
reading it, before the PUT has landed (a PUT may be retried for up to retry_deadline):
syncd would copy the old state and nothing would announce the new one.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from collections.abc import Callable

import pytest
import trio

from fsgateway.mount import feedwal
from fsgateway.store.feedwriter import FeedWriter, Hold
from tests.support.faultproxy import FaultProxy
from tests.support.mount import write_in_thread
from tests.support.process import wait_for
from tests.support.s3 import feed_events
from tests.support.uploads import store_for, until


def _keys(s3, bucket: str) -> set[str]:
    return {e.key for e in feed_events(s3, bucket)}


Log = Callable[..., tuple[FeedWriter, feedwal.FeedWal]]


@pytest.fixture
def make_log(server, bucket, tmp_path) -> Log:
    """An opened log in tmp_path/wal whose records the writer stores in `bucket`; the writer uses it."""

    def make(max_bytes: int = 1 << 20, interval: float = 600) -> tuple[FeedWriter, feedwal.FeedWal]:
        writer = FeedWriter(store_for(server, bucket), "h", "r")
        wal = feedwal.FeedWal(str(tmp_path / "wal"), writer, max_bytes, interval)
        wal.open()
        writer.use_local(wal)
        return writer, wal

    return make


# ------------------------------------------------------------------ the log's bookkeeping
def test_a_held_record_keeps_its_segment_back_while_other_segments_go(make_log, bucket, s3, tmp_path):
    async def main() -> None:
        writer, wal = make_log()
        hold = Hold()
        assert await wal.append((writer.event("put", "held"),), hold)
        assert not await wal.drain()  # its segment is closed, not flushed: the PUT is not settled
        assert _keys(s3, bucket) == set()
        assert await wal.append((writer.event("put", "free"),))
        assert not await wal.drain()  # a later segment goes; the held one still waits
        assert _keys(s3, bucket) == {"free"}
        hold.settle()
        hold.settle()  # once only
        assert await wal.drain()
        assert _keys(s3, bucket) == {"free", "held"}

    trio.run(main)
    assert len(list((tmp_path / "wal").glob("*.wal"))) == 1  # only the open, empty segment is left


def test_a_failed_change_raises_its_own_error_and_its_record_still_goes(make_log, bucket, s3):
    """Events are hints: syncd HEADs the primary and copies what is there (or nothing)."""

    async def main() -> None:
        writer, wal = make_log()

        async def failing_put() -> str:
            await trio.sleep(0)
            raise OSError(errno.EIO, "the PUT failed")

        with pytest.raises(OSError, match="the PUT failed"):  # itself, not an ExceptionGroup
            await writer.record_during(failing_put, writer.event("put", "failed"))
        assert await wal.drain()  # settled in a finally: nothing held

    trio.run(main)
    assert _keys(s3, bucket) == {"failed"}


def test_the_flusher_stores_a_held_record_once_its_change_has_landed(make_log, bucket, s3, tmp_path):
    async def main() -> None:
        writer, wal = make_log(interval=0.05)
        landed = trio.Event()
        results: list[tuple[str, bool]] = []

        async def slow_put() -> str:
            await landed.wait()
            return '"etag"'

        async def close() -> None:
            results.append(await writer.record_during(slow_put, writer.event("put", "slow")))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wal.run)
            nursery.start_soon(close)
            # The flusher closes the record's segment after its interval; then a record in the next one goes.
            await until(lambda: len(list((tmp_path / "wal").glob("*.wal"))) >= 2, "the held segment closed")
            assert await wal.append((writer.event("put", "later"),))
            await until(lambda: "later" in _keys(s3, bucket), "the later record's journal")
            assert "slow" not in _keys(s3, bucket) and not results  # the PUT has not landed: held back
            landed.set()
            await until(lambda: "slow" in _keys(s3, bucket), "the held record's journal, once settled")
            nursery.cancel_scope.cancel()
        assert results == [('"etag"', True)]

    trio.run(main)


def test_a_refused_record_is_left_to_the_caller_and_nothing_is_journaled_before_the_change(make_log, bucket, s3):
    """The log full: record_during says so, and no journal PUT names the key while its PUT is under way."""
    record = len(feedwal.encode_record((FeedWriter.event("put", "first"),)))

    async def main() -> None:
        writer, wal = make_log(max_bytes=record + record // 2)
        assert await wal.append((writer.event("put", "first"),))  # the log is now full

        async def put() -> str:
            await writer.announce(writer.event("put", "meanwhile"))  # full: a journal PUT of its own
            assert "meanwhile" in _keys(s3, bucket) and "refused" not in _keys(s3, bucket)
            return '"etag"'

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            assert await writer.record_during(put, writer.event("put", "refused")) == ('"etag"', False)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert "refused" not in _keys(s3, bucket)


# ------------------------------------------------------------------ a real mount
def test_a_put_held_back_longer_than_feed_flush_is_announced_only_once_it_landed(mounter, bucket, proxy, s3):
    m = mounter()
    path = m.start(bucket, "feed_flush=0.2", endpoint=proxy.endpoint)
    wal_files = lambda: list((m.tmp / "cache" / "feed").glob("*/*.wal"))  # noqa: E731
    data = os.urandom(4096)
    rule = proxy.add("stall", "put", key="^stalled$")
    outcome: list[BaseException | None] = []
    t = write_in_thread(path / "stalled", data, outcome)
    try:
        wait_for(lambda: proxy.seen("put", "stall"), 30, "the data PUT held back")
        # The record is in the log, and the flusher has closed its segment (one feed_flush later).
        wait_for(lambda: len(wal_files()) >= 2 and any(b'"stalled"' in p.read_bytes() for p in wal_files()), 30,
                 "the record's segment closed")
        (path / "free").write_bytes(b"x")  # its record goes to the next segment, flushed in its turn
        wait_for(lambda: "free" in _keys(s3, bucket), 30, "the later close's journal")
        assert "stalled" not in _keys(s3, bucket)  # the PUT has not landed: no journal names it
        assert t.is_alive()  # nor has close() returned
    finally:
        proxy.remove(rule)
        proxy.release()
        t.join(timeout=60)
    assert outcome == [None]
    wait_for(lambda: "stalled" in _keys(s3, bucket), 30, "the announcement once the PUT landed")
    event = next(e for e in feed_events(s3, bucket) if e.key == "stalled")
    head = s3.head_object(Bucket=bucket, Key="stalled")
    assert (event.op, event.size, event.etag, event.sha256) == ("put", 4096, head["ETag"],
                                                                head["Metadata"]["fsg-sha256"])


def test_killed_between_the_durable_record_and_the_puts_answer_the_next_start_announces_it(
        mounter, bucket, server, s3):
    if not server.endpoint.startswith("http://"):
        pytest.skip("the fault proxy judges plain HTTP only")
    proxy = FaultProxy.to(server.endpoint).start()  # stopped below: the held PUT then never lands
    try:
        m = mounter()
        path = m.start(bucket, "feed_flush=600", endpoint=proxy.endpoint)
        proxy.add("stall", "put", key="^crashed$")
        outcome: list[BaseException | None] = []
        t = write_in_thread(path / "crashed", b"never answered", outcome)
        wait_for(lambda: proxy.seen("put", "stall"), 30, "the data PUT held back")
        wait_for(lambda: any(b'"crashed"' in p.read_bytes() for p in (m.tmp / "cache" / "feed").glob("*/*.wal")),
                 30, "the record in the log")
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(timeout=30)
        t.join(timeout=30)
        assert len(outcome) == 1 and isinstance(outcome[0], OSError)  # close() never reported success
    finally:
        proxy.stop()
    assert "crashed" not in _keys(s3, bucket)
    m.proc = subprocess.Popen(m.command(bucket, path, ["feed_flush=600"]), stdout=open(m.log, "ab"),
                              stderr=subprocess.STDOUT)
    wait_for(lambda: ("put", "crashed") in {(e.op, e.key) for e in feed_events(s3, bucket)}, 60,
             "the replayed record, flushed at start")
    # The PUT never landed: the event is a hint, and syncd finds nothing to copy.
    assert "crashed" not in {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
