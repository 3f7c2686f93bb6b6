"""ObjectStore.put (and the quick path's fallback) on the real server, seen on the wire through the fault proxy.

A small PUT does not wait for `100 Continue` and still gets its answer; the request is
built by `quickput`, so what it sends (metadata, Content-MD5, conditions, odd keys) is
checked here against what the server stored."""

from __future__ import annotations

import errno
import hashlib
import logging

import pytest
import trio

from fsgateway.store.client import NO_CONTINUE_MAX, StoreError
from fsgateway.store.metrics import REGISTRY
from fsgateway.store.quickcalls import QuickCalls
from tests.support.faultproxy import FaultProxy


def sent_expect(proxy: FaultProxy) -> list[str | None]:
    """The `Expect` header of every PUT the proxy forwarded, as sent."""
    return [s.expect for s in proxy.seen("put")]


def test_small_puts_skip_100_continue_large_and_conditional_ones_keep_it(server, bucket, s3, proxy):
    store = server.store(bucket, endpoint=proxy.endpoint)
    small, large = b"s" * 4096, b"L" * (NO_CONTINUE_MAX + 1)

    async def main() -> list[str]:
        return [await store.put("small", small, {"k": "v"}, "text/plain"),
                await store.put("empty", b"", {}, "text/plain"),
                await store.put("large", large, {}, "text/plain"),
                await store.put("conditional", small, {}, "text/plain", if_none_match=True)]

    etags = trio.run(main)
    assert sent_expect(proxy) == [None, None, "100-continue", "100-continue"]
    for key, data, etag in zip(("small", "empty", "large", "conditional"), (small, b"", large, small), etags,
                               strict=True):
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == data and etag.strip('"') == hashlib.md5(data).hexdigest()
    assert s3.head_object(Bucket=bucket, Key="small")["Metadata"] == {"k": "v"}


def test_a_small_put_the_server_refuses_reports_its_answer_not_a_broken_connection(server, bucket, proxy):
    """Without `100 Continue` the body is already on its way when the server refuses: the refusal still arrives."""
    server.secret_key, good = "wrong" + server.secret_key, server.secret_key
    try:
        store = server.store(bucket, endpoint=proxy.endpoint, deadline=2)
    finally:
        server.secret_key = good
    with pytest.raises(StoreError) as e:
        trio.run(store.put, "refused", b"x" * 4096, {}, "text/plain")
    assert sent_expect(proxy)[:1] == [None]
    assert e.value.errno == errno.EACCES, e.value
    assert e.value.cause.response["Error"]["Code"] in ("SignatureDoesNotMatch", "InvalidAccessKeyId")


ODD_KEYS = ("dir/with space+plus%percent~tilde", "ünïcødé/日本語.bin", "q?x=1&y=#frag", "double//slash/end",
            "=equals;semi:colon,comma'quote\\back")


def test_puts_store_exactly_what_they_say_for_any_key(server, bucket, s3):
    """Body, metadata, Content-Type, Cache-Control and ETag, for keys a URL must quote or could misread."""
    store = server.store(bucket)
    assert store.quick is not None  # the path under test, not botocore's put_object
    meta = {"fsg-sha256": "0" * 64, "mode": "33188", "mtime": "1700000000"}

    async def main() -> list[str]:
        return [await store.put(key, key.encode() * 3, meta, "application/x-test", cache_control="no-cache")
                for key in ODD_KEYS]

    etags = trio.run(main)
    for key, etag in zip(ODD_KEYS, etags, strict=True):
        got = s3.get_object(Bucket=bucket, Key=key)
        body = key.encode() * 3
        assert got["Body"].read() == body
        assert etag.strip('"') == hashlib.md5(body).hexdigest() == got["ETag"].strip('"')
        assert got["Metadata"] == meta
        assert got["ContentType"] == "application/x-test" and got["CacheControl"] == "no-cache"


def test_a_conditional_put_on_an_existing_key_is_refused_with_the_servers_answer(server, bucket, s3, caplog):
    """The refusal is the caller's answer (a publisher lost a race), not a failure of the store: no ERROR
    line, and its own outcome in the request counter."""
    store = server.store(bucket)
    s3.put_object(Bucket=bucket, Key="taken", Body=b"first")

    def refused() -> float:
        return REGISTRY.get_sample_value("fsgateway_s3_requests_total",
                                         {"role": store.role, "kind": "put", "outcome": "precondition_failed"}) or 0.0

    before = refused()
    with caplog.at_level(logging.INFO, logger="fsgateway.store"), pytest.raises(StoreError) as e:
        trio.run(lambda: store.put("taken", b"second", {}, "text/plain", if_none_match=True))
    assert e.value.cause.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert e.value.cause.response["Error"]["Code"] == "PreconditionFailed"
    assert e.value.errno == errno.ESTALE
    assert s3.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"first"
    assert refused() == before + 1
    assert [r.levelname for r in caplog.records if "taken" in r.getMessage()] == ["INFO"]


def test_a_put_refused_for_a_while_is_sent_again_and_lands(server, bucket, s3, proxy):
    store = server.store(bucket, endpoint=proxy.endpoint)
    proxy.add("status", "put", times=2)
    etag = trio.run(lambda: store.put("retried", b"r" * 100, {"k": "v"}, "text/plain"))
    assert [s.action for s in proxy.seen("put")] == ["status", "status", "pass"]
    assert etag.strip('"') == hashlib.md5(b"r" * 100).hexdigest()
    assert s3.head_object(Bucket=bucket, Key="retried")["Metadata"] == {"k": "v"}


def test_a_client_the_quick_path_cannot_mirror_falls_back_to_botocore(server, bucket, s3):
    """A client signing with SigV2, or without the botocore internals the quick path uses, keeps put_object."""
    import boto3
    from botocore.config import Config

    from fsgateway.store.client import ObjectStore

    v2 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1", verify=server.ca_bundle or True,
                      aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
                      config=Config(signature_version="s3", s3={"addressing_style": "path"}))
    store = ObjectStore(server.store(bucket).settings, client=v2)
    assert store.quick is None and QuickCalls.for_client(object(), bucket) is None
    etag = trio.run(lambda: store.put("v2", b"sigv2", {"k": "v"}, "text/plain"))
    assert etag.strip('"') == hashlib.md5(b"sigv2").hexdigest()
    assert s3.head_object(Bucket=bucket, Key="v2")["Metadata"] == {"k": "v"}
    assert trio.run(lambda: store.get_buffer("v2", 1, 4, etag)) == b"igv"
