"""The change feed: journal key order and encoding (pure), and what a real mount announces."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import trio

from fsgateway.formats import feed
from fsgateway.mount import feedwal, metrics
from fsgateway.mount.options import Config
from fsgateway.store import feedwriter
from fsgateway.store.client import ObjectStore
from fsgateway.store.credentials import Keys
from fsgateway.store.feedwriter import FeedWriter
from tests.support.process import metric_value, wait_for
from tests.support.s3 import feed_events
from tests.support.uploads import small_tmpfs

T0 = datetime(2026, 11, 27, 5, 20, 0, 123456, tzinfo=UTC)


def test_journal_keys_sort_in_time_order_across_hosts_and_widths():
    times = [T0 + timedelta(microseconds=i * 999_999) for i in range(30)] + [T0 + timedelta(days=400)]
    keys = [feed.journal_key(t, f"host{i % 3}", "run", i * 1000) for i, t in enumerate(times)]
    assert sorted(keys) == keys
    assert all(feed.key_time(k) == t for k, t in zip(keys, times, strict=True))
    assert feed.key_time("incoming/x") is None and feed.key_time(feed.FEED_PREFIX + "junk") is None


def test_start_after_includes_everything_written_at_or_after_t():
    before = feed.journal_key(T0 - timedelta(microseconds=1), "zzzz", "zz", 9_999_999)
    at = feed.journal_key(T0, "0000", "00", 0)
    mark = feed.start_after(T0)
    assert before < mark < at


def test_encode_decode_round_trip_keeps_every_field():
    events = (feed.Event("put", "incoming/a b/ü.bin", feed.iso(T0), 12, "ab" * 32, '"etag"'),
              feed.Event("rename", "new", feed.iso(T0), src="old"),
              feed.Event("delete", "a//b", feed.iso(T0)))
    j = feed.Journal("h", "r", 7, T0, events)
    back = feed.decode(feed.encode(j))
    assert back == j
    assert back.events[1].touched() == ("old", "new")


def test_encoding_is_byte_for_byte_the_feed_format():
    """The bytes readers already parse (as encoded by `asdict` before): field order, unset fields left out,
    a size of 0 kept, times in UTC with microseconds and a Z whatever the zone they were taken in."""
    events = (feed.Event("put", "incoming/a b/ü.bin", feed.iso(T0), 12, "ab" * 32, '"etag"'),
              feed.Event("rename", "new", feed.iso(T0.astimezone(timezone(timedelta(hours=-5)))), src="old"),
              feed.Event("delete", "a//b", feed.iso(T0.replace(microsecond=0)), size=0))
    assert feed.encode(feed.Journal("h", "r", 7, T0, events)) == (
        b'{"format":"fsgateway-feed/1","host":"h","run":"r","seq":7,"written":"2026-11-27T05:20:00.123456Z",'
        b'"events":[{"op":"put","key":"incoming/a b/\\u00fc.bin","time":"2026-11-27T05:20:00.123456Z","size":12,'
        b'"sha256":"' + b"ab" * 32 + b'","etag":"\\"etag\\""},'
        b'{"op":"rename","key":"new","time":"2026-11-27T05:20:00.123456Z","src":"old"},'
        b'{"op":"delete","key":"a//b","time":"2026-11-27T05:20:00.000000Z","size":0}]}')


@pytest.mark.parametrize("data", [b"not json", b'{"format": "other/9", "events": []}',
                                  b'{"format": "fsgateway-feed/1", "host": "h"}',
                                  b'{"format": "fsgateway-feed/1", "host": "h", "run": "r", "seq": 1, '
                                  b'"written": "2026-11-27T05:20:00Z", "events": [{"op": "explode", "key": "k", '
                                  b'"time": "2026-11-27T05:20:00Z"}]}'])
def test_decode_rejects_what_it_cannot_understand(data):
    with pytest.raises(feed.FeedFormatError):
        feed.decode(data)


def test_mount_announces_uploads_deletes_renames_and_metadata_changes(mount, s3):
    p = mount.path
    data = os.urandom(1000)
    (p / "d").mkdir()
    (p / "d" / "f").write_bytes(data)  # close() returns after the announcement is in the local log
    wait_for(lambda: any(e.op == "put" and e.key == "d/f" for e in feed_events(s3, mount.bucket)), 30,
             "the flusher's journal object")
    events = feed_events(s3, mount.bucket)
    put = next(e for e in events if e.op == "put" and e.key == "d/f")
    head = s3.head_object(Bucket=mount.bucket, Key="d/f")
    assert put.size == 1000 and put.sha256 == head["Metadata"]["fsg-sha256"] and put.etag == head["ETag"]
    assert any(e.op == "put" and e.key == "d/" for e in events)
    (p / "d" / "f").chmod(0o600)
    (p / "d" / "f").rename(p / "d" / "g")
    (p / "d" / "g").unlink()
    wait_for(lambda: ("delete", "d/g", None) in [(e.op, e.key, e.src) for e in feed_events(s3, mount.bucket)],
             30, "the flusher's journal object")
    ops = [(e.op, e.key, e.src) for e in feed_events(s3, mount.bucket)]
    assert ("meta", "d/f", None) in ops and ("rename", "d/g", "d/f") in ops
    assert [k for k in (o["Key"] for o in s3.list_objects_v2(Bucket=mount.bucket)["Contents"])
            if k.startswith(feed.FEED_PREFIX)]  # and the feed stays out of listings:
    assert sorted(os.listdir(p)) == ["d"]
    assert metric_value(mount.metrics(), "fsgateway_feed_events_total") >= 5


def test_many_closes_share_journal_objects(mount, s3):
    def write(i: int) -> None:
        (mount.path / f"f{i}").write_bytes(b"x")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(lambda: {f"f{i}" for i in range(40)} <= {e.key for e in feed_events(s3, mount.bucket)}, 30,
             "every close announced")
    journals = metric_value(mount.metrics(), "fsgateway_feed_journal_objects_total")
    assert journals < 40  # group commit


def test_sequential_closes_cost_one_journal_object_per_flush(mounter, bucket, s3):
    """One process closing file after file waits for an fsync each, not a PUT: one journal per flush."""
    m = mounter()
    path = m.start(bucket, "feed_flush=600")  # no timed flush within the test: only the unmount's
    for i in range(50):
        (path / f"f{i}").write_bytes(b"x")
    assert feed_events(s3, bucket) == []  # announced in the local log, not yet in the bucket
    assert metric_value(m.metrics(), "fsgateway_feed_wal_bytes") > 0
    assert m.stop() == 0  # the unmount empties the log
    events = feed_events(s3, bucket)
    assert sorted(e.key for e in events) == sorted(f"f{i}" for i in range(50))
    assert len(s3.list_objects_v2(Bucket=bucket, Prefix=feed.FEED_PREFIX)["Contents"]) == 1
    assert all(p.stat().st_size == 0 for p in (m.tmp / "cache" / "feed").glob("*/*.wal"))  # the next run's


def test_a_killed_mount_replays_its_write_ahead_log_at_the_next_start(mounter, bucket, s3):
    m = mounter()
    path = m.start(bucket, "feed_flush=600")
    (path / "a").write_bytes(b"committed and announced locally")
    (path / "b").write_bytes(b"x")
    (path / "b").unlink()
    m.proc.send_signal(signal.SIGKILL)  # after close() returned, before any flush
    m.proc.wait(timeout=30)
    assert feed_events(s3, bucket) == []
    wal = list((m.tmp / "cache" / "feed").glob("*/*.wal"))
    assert wal and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in wal)
    assert stat.S_IMODE((m.tmp / "cache" / "feed").stat().st_mode) == 0o700
    # The same mount again: it takes the dead mountpoint over and replays before it reports ready.
    m.proc = subprocess.Popen(m.command(bucket, path, ["feed_flush=600"]), stdout=open(m.log, "ab"),
                              stderr=subprocess.STDOUT)
    wait_for(lambda: {("put", "a"), ("put", "b"), ("delete", "b")} <=
             {(e.op, e.key) for e in feed_events(s3, bucket)}, 60, "the replayed announcements")
    wait_for(lambda: not any(p.exists() for p in wal), 30, "the replayed segments to be removed")


def test_wal_records_survive_exactly_and_torn_or_corrupt_ones_are_skipped():
    events = (feed.Event("put", "a\nb ü", feed.iso(T0), 3, "ab" * 32, '"e"'),
              feed.Event("rename", "n", feed.iso(T0), src="o"))
    one, two = feedwal.encode_record(events[:1]), feedwal.encode_record(events[1:])
    assert one.count(b"\n") == 1 and one.endswith(b"\n")
    assert feedwal.decode_records(one + two) == (list(events), 0)
    assert feedwal.decode_records(one + two[:-5]) == (list(events[:1]), 1)  # torn tail: never acknowledged
    corrupt = two.replace(b'"n"', b'"m"')
    assert feedwal.decode_records(corrupt + one) == (list(events[:1]), 1)
    assert feedwal.decode_records(b"") == ([], 0)


def test_one_run_per_log_directory_owner_only_files_and_foreign_names_left_alone(tmp_path):
    (tmp_path / "wal").mkdir(mode=0o700)
    (tmp_path / "wal" / "notes.wal").write_text("not ours")
    old = os.umask(0)
    try:
        first = feedwal.FeedWal(str(tmp_path / "wal"), None, 1 << 20, 1.0)  # type: ignore[arg-type]
        first.open()
        with pytest.raises(BlockingIOError):
            feedwal.FeedWal(str(tmp_path / "wal"), None, 1 << 20, 1.0).open()  # type: ignore[arg-type]
    finally:
        os.umask(old)
    ours = [p for p in (tmp_path / "wal").iterdir() if p.name != "notes.wal"]
    assert ours and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in ours)
    assert (tmp_path / "wal" / "notes.wal").read_text() == "not ours"


def test_a_full_write_ahead_log_falls_back_to_a_journal_put(server, tmp_path):
    """With the bucket refusing journal objects the log fills to its bound; then announce waits for a PUT."""
    cfg = Config(bucket="no-such-bucket-for-the-feed", endpoint=server.endpoint, path_style=True,
                 ca_bundle=server.ca_bundle, retry_deadline=1)
    store = ObjectStore(cfg.store_settings(Keys(server.access_key, server.secret_key)))
    record = len(feedwal.encode_record((FeedWriter.event("put", "k"),)))

    async def main() -> tuple[bool, bool, float]:
        async with trio.open_nursery() as nursery:
            writer = FeedWriter(store, "h", "r")
            wal = feedwal.FeedWal(str(tmp_path / "wal"), writer, record + record // 2, 600)
            wal.open()
            writer.use_local(wal)
            nursery.start_soon(writer.run)
            before = feedwriter.REGISTRY.get_sample_value("fsgateway_feed_write_failures_total") or 0.0
            first = await wal.append((writer.event("put", "k"),))
            second = await wal.append((writer.event("put", "k"),))
            await writer.announce(writer.event("put", "k"))  # full: its own PUT, which fails and is counted
            after = feedwriter.REGISTRY.get_sample_value("fsgateway_feed_write_failures_total") or 0.0
            drained = await wal.drain()
            nursery.cancel_scope.cancel()
            return first and not second, drained, after - before

    appended, drained, failed = trio.run(main)
    assert appended and not drained and failed == 1
    assert len(list((tmp_path / "wal").glob("*.wal"))) >= 1  # kept for the next attempt


def test_while_the_bucket_refuses_journals_segments_stay_small_and_are_kept(server, tmp_path):
    """An outage: every flush fails, yet no segment grows past about MAX_EVENTS (each is read whole later)."""
    cfg = Config(bucket="no-such-bucket-for-the-feed", endpoint=server.endpoint, path_style=True,
                 ca_bundle=server.ca_bundle, retry_deadline=1)
    store = ObjectStore(cfg.store_settings(Keys(server.access_key, server.secret_key)))
    total = 2 * feedwriter.MAX_EVENTS + 500

    async def main() -> list[bool]:
        async with trio.open_nursery() as nursery:
            writer = FeedWriter(store, "h", "r")
            wal = feedwal.FeedWal(str(tmp_path / "wal"), writer, 64 << 20, 0.05)
            wal.open()
            nursery.start_soon(wal.run)
            acked = [await wal.append((writer.event("put", f"k{i}"),)) for i in range(total)]
            nursery.cancel_scope.cancel()
            return acked

    assert all(trio.run(main))
    counts = [len(feedwal.decode_records(p.read_bytes())[0]) for p in sorted((tmp_path / "wal").glob("*.wal"))]
    assert sum(counts) == total and len(counts) >= 3
    assert max(counts) <= feedwriter.MAX_EVENTS + 10


def test_after_a_segment_cannot_be_opened_the_log_opens_one_once_the_disk_has_room(server, bucket, s3, tmp_path):
    """No inode left for the next segment: announcements go by journal PUT meanwhile (counted), and the
    log takes records again once there is room, instead of staying off for the rest of the run."""
    cfg = Config(bucket=bucket, endpoint=server.endpoint, path_style=True, ca_bundle=server.ca_bundle,
                 retry_deadline=10)
    store = ObjectStore(cfg.store_settings(Keys(server.access_key, server.secret_key)))

    def refusals() -> float:
        return metrics.REGISTRY.get_sample_value("fsgateway_feed_wal_fallbacks_total", {"reason": "error"}) or 0.0

    with small_tmpfs(tmp_path / "disk", "1m", inodes=16) as disk:
        keys: list[str] = []

        async def main() -> bool:
            async with trio.open_nursery() as nursery:
                writer = FeedWriter(store, "h", "r")
                nursery.start_soon(writer.run)
                wal = feedwal.FeedWal(str(disk / "wal"), writer, 1 << 20, 0.05)
                wal.open()
                writer.use_local(wal)
                nursery.start_soon(wal.run)

                async def announce() -> bool:
                    """One more announcement; True if the log took it."""
                    keys.append(f"k{len(keys)}")
                    before = refusals()
                    await writer.announce(writer.event("put", keys[-1]))
                    return refusals() == before

                filler: list[Path] = []
                with contextlib.suppress(OSError):  # every inode taken: no next segment can be created
                    while True:
                        filler.append(disk / f"fill{len(filler)}")
                        filler[-1].touch()
                with trio.fail_after(30):  # the flusher closes the open segment and cannot open another
                    while await announce():
                        await trio.sleep(0.01)
                for path in filler:
                    path.unlink(missing_ok=True)
                with trio.fail_after(30):  # room again: the log takes records again, within its backoff
                    while not await announce():
                        await trio.sleep(0.1)
                drained = await wal.drain()
                nursery.cancel_scope.cancel()
                return drained

        assert trio.run(main)
    assert len(keys) >= 2
    assert sorted(e.key for e in feed_events(s3, bucket)) == sorted(keys)  # none lost, whichever way it went


def test_feed_off_writes_no_journal(mounter, bucket, s3):
    m = mounter()
    path = m.start(bucket, "feed=off")
    (path / "f").write_bytes(b"x")
    wait_for(lambda: "f" in os.listdir(path), 10, "the file")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["f"]


def test_a_journal_that_cannot_be_stored_is_counted_and_does_not_fail_the_caller(server, tmp_path):
    cfg = Config(bucket="no-such-bucket-for-the-feed", endpoint=server.endpoint, path_style=True,
                 ca_bundle=server.ca_bundle, retry_deadline=2)
    store = ObjectStore(cfg.store_settings(Keys(server.access_key, server.secret_key)))
    def failures() -> float:
        return feedwriter.REGISTRY.get_sample_value("fsgateway_feed_write_failures_total") or 0.0

    before = failures()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            writer = FeedWriter(store, "h", "r")
            nursery.start_soon(writer.run)
            await writer.announce(writer.event("put", "a"), writer.event("delete", "b"))  # returns, no raise
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert failures() == before + 2


def test_a_removed_log_directory_is_made_again_and_a_vanished_segment_is_counted(server, bucket, s3, tmp_path):
    """cache_dir emptied under a running mount: the open segment is written back under its name, the
    directory is made again (locked, owner-only) for the next one, and a closed segment that vanished
    before its flush is counted as lost (its changes wait for syncd's reconcile); the log goes on."""
    cfg = Config(bucket=bucket, endpoint=server.endpoint, path_style=True, ca_bundle=server.ca_bundle,
                 retry_deadline=10)
    store = ObjectStore(cfg.store_settings(Keys(server.access_key, server.secret_key)))
    directory = tmp_path / "wal"

    def lost() -> float:
        return metrics.REGISTRY.get_sample_value("fsgateway_feed_wal_lost_segments_total") or 0.0

    async def main() -> tuple[bool, bool, float]:
        async with trio.open_nursery() as nursery:
            writer = FeedWriter(store, "h", "r")
            nursery.start_soon(writer.run)
            wal = feedwal.FeedWal(str(directory), writer, 1 << 20, 600)
            wal.open()
            hold = feedwriter.Hold()
            assert await wal.append((writer.event("put", "held"),), hold)  # its PUT under way: kept back
            assert not await wal.drain()  # the held segment is closed and stays
            assert await wal.append((writer.event("put", "open"),))
            shutil.rmtree(directory)
            assert await wal.append((writer.event("put", "after"),))  # into the open segment, now unnamed
            hold.settle()
            before = lost()
            first = await wal.drain()
            assert await wal.append((writer.event("put", "later"),))
            second = await wal.drain()
            nursery.cancel_scope.cancel()
            return first, second, lost() - before

    first, second, vanished = trio.run(main)
    assert first and second and vanished == 1
    assert sorted(e.key for e in feed_events(s3, bucket)) == ["after", "later", "open"]
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700 and (directory / "lock").exists()
