"""The change feed: journal key order and encoding (pure), and what a real mount announces."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
import trio

from fsgateway.formats import feed
from fsgateway.mount.options import Config
from fsgateway.store import feedwriter
from fsgateway.store.client import ObjectStore
from fsgateway.store.credentials import Keys
from fsgateway.store.feedwriter import FeedWriter
from tests.support.process import metric_value, wait_for

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


@pytest.mark.parametrize("data", [b"not json", b'{"format": "other/9", "events": []}',
                                  b'{"format": "fsgateway-feed/1", "host": "h"}',
                                  b'{"format": "fsgateway-feed/1", "host": "h", "run": "r", "seq": 1, '
                                  b'"written": "2026-11-27T05:20:00Z", "events": [{"op": "explode", "key": "k", '
                                  b'"time": "2026-11-27T05:20:00Z"}]}'])
def test_decode_rejects_what_it_cannot_understand(data):
    with pytest.raises(feed.FeedFormatError):
        feed.decode(data)


def journal_events(s3, bucket: str) -> list[feed.Event]:
    out: list[feed.Event] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=feed.FEED_PREFIX):
        for obj in page.get("Contents", []):
            out.extend(feed.decode(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()).events)
    return out


def test_mount_announces_uploads_deletes_renames_and_metadata_changes(mount, s3):
    p = mount.path
    data = os.urandom(1000)
    (p / "d").mkdir()
    (p / "d" / "f").write_bytes(data)  # close() returns after the journal object is stored
    events = journal_events(s3, mount.bucket)
    put = next(e for e in events if e.op == "put" and e.key == "d/f")
    head = s3.head_object(Bucket=mount.bucket, Key="d/f")
    assert put.size == 1000 and put.sha256 == head["Metadata"]["fsg-sha256"] and put.etag == head["ETag"]
    assert any(e.op == "put" and e.key == "d/" for e in events)
    (p / "d" / "f").chmod(0o600)
    (p / "d" / "f").rename(p / "d" / "g")
    (p / "d" / "g").unlink()
    ops = [(e.op, e.key, e.src) for e in journal_events(s3, mount.bucket)]
    assert ("meta", "d/f", None) in ops and ("rename", "d/g", "d/f") in ops and ("delete", "d/g", None) in ops
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
    events = journal_events(s3, mount.bucket)
    assert {f"f{i}" for i in range(40)} <= {e.key for e in events if e.op == "put"}
    journals = metric_value(mount.metrics(), "fsgateway_feed_journal_objects_total")
    assert journals < 40  # group commit


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
