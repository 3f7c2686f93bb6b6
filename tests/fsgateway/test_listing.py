"""The store's typed listings and its one paginator (`list_all`), against the real server."""

from __future__ import annotations

from contextlib import aclosing
from datetime import datetime

import pytest
import trio

from fsgateway.store.client import ListEntry, ListPage, ObjectStore, StoreSettings
from fsgateway.store.credentials import Keys

#: Keys that survive the XML only URL-encoded and that form decoding must get right: a space (SeaweedFS
#: sends `+`, RGW `%20`), a literal `+` and `%`, XML specials, a control character, non-ASCII.
AWKWARD = ["a b", "a+b", "a%20b", "a%2Bb", "x&y<z>", "ctl\x01char", "é 日本 +", "q?x=1#f"]


def store_for(server, bucket: str) -> ObjectStore:
    return ObjectStore(StoreSettings(bucket=bucket, endpoint=server.endpoint, region="us-east-1", path_style=True,
                                     keys=Keys(server.access_key, server.secret_key), profile=None,
                                     verify=server.ca_bundle or True, max_connections=4, connect_timeout=10,
                                     read_timeout=30, retry_deadline=10))


async def pages(store: ObjectStore, prefix: str, **kw) -> list[ListPage]:
    return [page async for page in store.list_all(prefix, **kw)]


def put(s3, bucket: str, keys: list[str]) -> dict[str, str]:
    """Each key with a body of its own length; returns the ETags."""
    return {k: s3.put_object(Bucket=bucket, Key=k, Body=b"x" * len(k))["ETag"] for k in keys}


def test_more_keys_than_a_page_come_in_order_typed_and_once(server, s3, bucket):
    keys = [f"many/{i:03d}" for i in range(23)]
    etags = put(s3, bucket, [*keys, "other/not-listed"])
    got = trio.run(lambda: pages(store_for(server, bucket), "many/", max_keys=5))
    assert [len(p.entries) for p in got] == [5, 5, 5, 5, 3]
    assert [p.token is None for p in got] == [False] * 4 + [True]
    entries = [e for p in got for e in p.entries]
    assert [e.key for e in entries] == keys
    for e in entries:
        assert isinstance(e, ListEntry) and e.size == len(e.key) and e.etag == etags[e.key]
        assert isinstance(e.last_modified, datetime)
    everything = trio.run(lambda: pages(store_for(server, bucket), "", max_keys=7))
    assert [e.key for p in everything for e in p.entries] == sorted(etags)


def test_start_after_skips_what_came_before_across_pages(server, s3, bucket):
    keys = [f"j/{i:02d}" for i in range(12)]
    put(s3, bucket, keys)
    got = trio.run(lambda: pages(store_for(server, bucket), "j/", start_after="j/04", max_keys=3))
    assert [e.key for p in got for e in p.entries] == keys[5:]
    assert len(got) == 3


def test_a_delimiter_gives_the_prefixes_and_only_the_level_below(server, s3, bucket):
    put(s3, bucket, ["d/f1", "d/f2", "d/sub1/x", "d/sub1/y", "d/sub2/z", "d/sub3/", "d/z"])
    got = trio.run(lambda: pages(store_for(server, bucket), "d/", delimiter="/", max_keys=2))
    assert [e.key for p in got for e in p.entries] == ["d/f1", "d/f2", "d/z"]
    assert [c for p in got for c in p.prefixes] == ["d/sub1/", "d/sub2/", "d/sub3/"]


def test_awkward_keys_are_decoded_exactly(server, s3, bucket):
    keys = [f"w/{k}" for k in AWKWARD]
    put(s3, bucket, keys)
    got = trio.run(lambda: pages(store_for(server, bucket), "w/", max_keys=3))
    assert sorted(e.key for p in got for e in p.entries) == sorted(keys)
    dirs = [f"v/{k}/f" for k in AWKWARD]
    put(s3, bucket, dirs)
    got = trio.run(lambda: pages(store_for(server, bucket), "v/", delimiter="/"))
    assert sorted(c for p in got for c in p.prefixes) == sorted(f"v/{k}/" for k in AWKWARD)


@pytest.mark.parametrize("prefix", ["", "nothing-here/"])
def test_an_empty_listing_is_one_empty_page(server, bucket, prefix):
    """A fresh bucket: nothing under any prefix, the empty one included."""
    got = trio.run(lambda: pages(store_for(server, bucket), prefix))
    assert got == [ListPage([], [], None)]


def test_stopping_early_closes_the_iterator(server, s3, bucket):
    put(s3, bucket, [f"s/{i}" for i in range(6)])
    store = store_for(server, bucket)

    async def first_two_pages() -> list[str]:
        seen: list[str] = []
        async with aclosing(store.list_all("s/", max_keys=2)) as it:
            async for page in it:
                seen += [e.key for e in page.entries]
                if len(seen) >= 4:
                    break
        return seen

    assert trio.run(first_two_pages) == ["s/0", "s/1", "s/2", "s/3"]


def test_unfinished_uploads_are_typed(server, s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="up/a b")["UploadId"]
    try:
        ups = trio.run(store_for(server, bucket).list_multipart_uploads, "up/")
        assert [(u.key, u.upload_id) for u in ups] == [("up/a b", upload_id)]
        assert isinstance(ups[0].initiated, datetime)
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key="up/a b", UploadId=upload_id)
