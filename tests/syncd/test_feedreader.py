"""The feed as syncd reads it: journal objects from skewed clocks, malformed ones, and retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fsgateway.formats import feed
from tests.support.process import metric_value, wait_for
from tests.support.syncd import backup_body


def put_journal(s3, bucket: str, written: datetime, events: list[feed.Event], host: str = "skewedhost") -> str:
    key = feed.journal_key(written, host, "run1", 1)
    body = feed.encode(feed.Journal(host, "run1", 1, written, tuple(events)))
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key


def test_journal_from_a_host_with_a_slow_clock_is_still_applied(mount, s3, same_backup, syncd_factory):
    syncd = syncd_factory(mount.bucket, same_backup).start()  # reconcile_interval is an hour: the feed only
    (mount.path / "first").write_bytes(b"1")
    wait_for(lambda: backup_body(same_backup, "first") == b"1", 30, "the cursor to move past now")
    now = datetime.now(UTC)
    s3.put_object(Bucket=mount.bucket, Key="late", Body=b"from a host 60 s behind")
    put_journal(s3, mount.bucket, now - timedelta(seconds=60),
                [feed.Event("put", "late", feed.iso(now - timedelta(seconds=60)), 23)])
    s3.put_object(Bucket=mount.bucket, Key=feed.FEED_PREFIX + "zzzz-not-a-journal.json", Body=b"{oops")
    wait_for(lambda: backup_body(same_backup, "late") == b"from a host 60 s behind", 30, "the late journal")
    wait_for(lambda: metric_value(syncd.metrics(), "fsgateway_syncd_feed_journal_objects_total",
                                  outcome="malformed") == 1, 30, "the malformed journal to be skipped")
    (mount.path / "after").write_bytes(b"2")  # and the feed goes on
    wait_for(lambda: backup_body(same_backup, "after") == b"2", 30, "a later change")


def test_old_journal_objects_are_expired_after_the_retention(bucket, s3, same_backup, syncd_factory):
    now = datetime.now(UTC)
    old = put_journal(s3, bucket, now - timedelta(days=3), [])
    fresh = put_journal(s3, bucket, now - timedelta(seconds=5), [], host="otherhost")
    syncd = syncd_factory(bucket, same_backup).start(feed_retention=86400)

    def journals() -> set[str]:
        return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=feed.FEED_PREFIX).get("Contents", [])}

    wait_for(lambda: old not in journals(), 30, "the old journal object to expire")
    assert fresh in journals()
    assert metric_value(syncd.metrics(), "fsgateway_syncd_feed_journal_objects_expired_total") == 1
