"""ObjectStore.put on the real server: a small PUT does not wait for `100 Continue`, and still gets its answer."""

from __future__ import annotations

import errno
import hashlib
from typing import Any

import pytest
import trio

from fsgateway.store.client import NO_CONTINUE_MAX, StoreError


def sent_expect(store: Any) -> list[str | None]:
    """The `Expect` header of every request the store's client sends from now on, as sent."""
    seen: list[str | None] = []

    def record(request: Any, **_: Any) -> None:
        value = request.headers.get("Expect")
        seen.append(value.decode() if isinstance(value, bytes) else value)

    store.client.meta.events.register("before-send.s3", record)
    return seen


def test_small_puts_skip_100_continue_large_and_conditional_ones_keep_it(server, bucket, s3):
    store = server.store(bucket)
    seen = sent_expect(store)
    small, large = b"s" * 4096, b"L" * (NO_CONTINUE_MAX + 1)

    async def main() -> list[str]:
        return [await store.put("small", small, {"k": "v"}, "text/plain"),
                await store.put("empty", b"", {}, "text/plain"),
                await store.put("large", large, {}, "text/plain"),
                await store.put("conditional", small, {}, "text/plain", if_none_match=True)]

    etags = trio.run(main)
    assert seen == [None, None, "100-continue", "100-continue"]
    for key, data, etag in zip(("small", "empty", "large", "conditional"), (small, b"", large, small), etags,
                               strict=True):
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == data and etag.strip('"') == hashlib.md5(data).hexdigest()
    assert s3.head_object(Bucket=bucket, Key="small")["Metadata"] == {"k": "v"}


def test_a_small_put_the_server_refuses_reports_its_answer_not_a_broken_connection(server, bucket):
    """Without `100 Continue` the body is already on its way when the server refuses: the refusal still arrives."""
    server.secret_key, good = "wrong" + server.secret_key, server.secret_key
    try:
        store = server.store(bucket, deadline=2)
    finally:
        server.secret_key = good
    seen = sent_expect(store)
    with pytest.raises(StoreError) as e:
        trio.run(store.put, "refused", b"x" * 4096, {}, "text/plain")
    assert seen and seen[0] is None
    assert e.value.errno == errno.EACCES, e.value
