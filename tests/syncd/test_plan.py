"""Change detection, filters and the delete guard (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fsgateway.store.client import ListEntry, ObjectInfo
from syncd.plan import (
    CHECK,
    COPY,
    HASH,
    IN_SYNC,
    METADATA,
    MISSING,
    SAME,
    DeleteGuard,
    Filters,
    Record,
    Version,
    classify,
    compare,
)

T = datetime(2026, 11, 27, 5, 0, 0, 250000, tzinfo=UTC)


def info(size: int = 3, sha: str | None = "aa", t: datetime = T, etag: str = '"e"', **meta: str) -> ObjectInfo:
    metadata = {**meta, **({"fsg-sha256": sha} if sha else {})}
    return ObjectInfo("k", size, etag, t, metadata, "application/octet-stream")


def test_checksum_metadata_decides_never_the_etag():
    assert compare(info(etag='"x-2"'), info(etag='"y"')) == SAME  # different ETags, same checksum
    assert compare(info(sha="aa"), info(sha="bb", etag='"e"')) == COPY  # same ETag, different checksum
    assert compare(info(size=3), info(size=4)) == COPY
    assert compare(info(), None) == COPY


def test_metadata_only_differences_rewrite_metadata():
    assert compare(info(mode="33188"), info(mode="33152")) == METADATA
    other_type = ObjectInfo("k", 3, '"e"', T, {"fsg-sha256": "aa"}, "text/plain")
    assert compare(info(), other_type) == METADATA


def test_objects_without_our_checksum_use_size_and_time_then_hash():
    older_backup = info(sha=None, t=T - timedelta(seconds=5))
    assert compare(info(sha=None), older_backup) == HASH
    assert compare(info(sha=None), info(sha=None, t=T + timedelta(seconds=5))) == SAME
    assert compare(info(sha=None), info(sha=None, t=T + timedelta(milliseconds=300))) == HASH  # same second
    assert compare(info(sha=None), info(sha=None, size=9)) == COPY


def test_reconcile_classification_trusts_only_matching_records():
    src = Version(3, "e1", 100)
    rec = Record(src, 3, '"d1"')
    assert classify(src, None, rec) == MISSING
    assert classify(src, Version(3, "d1", 200), rec) == IN_SYNC  # quotes do not matter
    assert classify(Version(3, "e1", 101), Version(3, "d1", 200), rec) == CHECK  # primary touched
    assert classify(src, Version(3, "d2", 200), rec) == CHECK  # backup changed behind our back
    assert classify(src, Version(3, "d1", 200), None) == CHECK  # never seen: compare checksums


def test_listing_and_head_give_the_same_version():
    listed = Version.of_listing(ListEntry("k", 3, '"e"', T))
    headed = Version.of_info(info(t=T.replace(microsecond=0)))
    assert listed == headed == Version(3, "e", int(T.timestamp()))


@pytest.mark.parametrize(("include", "exclude", "key", "wanted"), [
    ((), (), "incoming/a/1.bin", True),
    ((), (), ".fsgateway/feed/x.json", False),
    ((), (), ".fsgateway/staging/h/r-1", False),
    ((), (), "fw/.fsgateway/checker/0123", False),  # a checker's staging below its prefix
    ((), (), "a/b/.fsgateway/feed/x", False),
    ((), (), "a/.fsgateway", True),  # a file of that name is no reserved folder
    (("incoming/",), (), "incoming/a/1.bin", True),
    (("incoming/",), (), "releases/a", False),
    (("*.bin",), (), "incoming/a/1.bin", True),  # * crosses /
    ((), ("*.tmp", "scratch/"), "a/b.tmp", False),
    ((), ("*.tmp", "scratch/"), "scratch/x", False),
    (("incoming/",), ("incoming/private/",), "incoming/private/k", False),
])
def test_filters(include, exclude, key, wanted):
    assert Filters(include, exclude).wanted(key) is wanted


def test_delete_guard_budget_and_errors():
    g = DeleteGuard(limit=3)
    assert g.allow(2) and not g.allow(2) and g.allow()
    assert not g.allow() and g.held == 3
    g = DeleteGuard(limit=100)
    g.errors = 1
    assert not g.allow() and g.held == 1 and g.done == 0
