"""The streamed upload (io/stream.py) behind `DirtyFile`, against the real S3 server: no mount."""

from __future__ import annotations

import errno
import hashlib
import os

import pytest

from fsgateway.formats.s3format import FILE_CONTENT_TYPE, SHA256_META
from fsgateway.mount.io.stream import StreamUpload
from fsgateway.mount.io.upload import WriteError
from fsgateway.mount.io.writer import DirtyFile, Failed
from fsgateway.store.client import multipart_etag
from tests.support.s3 import user_keys
from tests.support.uploads import PART, requests, run_uploads, staging_leftovers, store_for, until


def test_appends_stream_in_parts_each_etag_the_md5_of_its_part(server, s3, bucket, tmp_path):
    data = os.urandom(2 * PART + 12345)
    store = store_for(server, bucket, role="stream-parts")

    async def body(ctx):
        dirty = DirtyFile(ctx)
        stream = dirty.state
        assert isinstance(stream, StreamUpload)
        for off in range(0, len(data), 1 << 20):
            assert await dirty.write(off, data[off:off + (1 << 20)]) == len(data[off:off + (1 << 20)])
        # the two full parts left in the background while the application wrote
        await until(lambda: requests("stream-parts", "upload_part") == 2, "two parts uploaded")
        assert stream.parts == {n: f'"{hashlib.md5(data[(n - 1) * PART:n * PART]).hexdigest()}"' for n in (1, 2)}
        assert await dirty.read(2 * PART, 100) == data[2 * PART:2 * PART + 100]  # the tail, from memory
        result = await dirty.commit("f.bin", {}, FILE_CONTENT_TYPE)
        dirty.discard_now()
        assert result.size == len(data) and result.sha256 == hashlib.sha256(data).hexdigest()
        assert requests("stream-parts", "upload_part") == 3

    run_uploads(store, tmp_path / "staging", body)
    obj = s3.get_object(Bucket=bucket, Key="f.bin")
    assert obj["Body"].read() == data
    assert obj["Metadata"][SHA256_META] == hashlib.sha256(data).hexdigest()
    assert staging_leftovers(s3, bucket) == []


def test_the_completed_staging_object_has_the_etag_of_its_parts(server, s3, bucket, tmp_path):
    """The check after CompleteMultipartUpload is the one the server's answer meets (MD5 of part MD5s, -N)."""
    data = os.urandom(PART + 1)
    store = store_for(server, bucket)
    seen = {}

    async def body(ctx):
        stream = StreamUpload(ctx)
        await stream.append(data)
        upload = stream.upload
        assert upload is not None
        info = await stream._finish(upload)
        seen["etag"], seen["parts"] = info.etag.strip('"'), [stream.parts[1], stream.parts[2]]
        await ctx.remove(upload.key)

    run_uploads(store, tmp_path / "staging", body)
    assert seen["etag"] == multipart_etag(seen["parts"])
    assert staging_leftovers(s3, bucket) == []


def test_a_small_file_is_one_put(server, s3, bucket, tmp_path):
    store = store_for(server, bucket, role="stream-small")

    async def body(ctx):
        dirty = DirtyFile(ctx)
        await dirty.write(0, b"hello")
        await dirty.write(5, b" world")
        result = await dirty.commit("small", {}, FILE_CONTENT_TYPE)
        assert result.etag.strip('"') == hashlib.md5(b"hello world").hexdigest()
        assert requests("stream-small", "create_multipart") == 0

    run_uploads(store, tmp_path / "staging", body)
    assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == b"hello world"


def test_a_failed_part_fails_the_file_aborts_the_upload_and_stores_nothing(server, s3, bucket, tmp_path, proxy):
    proxy.add("status", "upload_part")  # every part is refused until its retry deadline
    store = store_for(server, bucket, endpoint=proxy.endpoint, retry_deadline=2)
    data = os.urandom(3 * PART)

    async def body(ctx):
        dirty = DirtyFile(ctx)
        await dirty.write(0, data[:PART])
        await until(lambda: dirty.error is not None, "the part's failure reported")
        with pytest.raises(WriteError) as e:  # every later operation fails, the first one included
            await dirty.write(PART, data[PART:])
        assert e.value.errno == errno.EIO
        assert isinstance(dirty.state, Failed)
        with pytest.raises(WriteError):
            await dirty.commit("f.bin", {}, FILE_CONTENT_TYPE)
        await dirty.discard()

    run_uploads(store, tmp_path / "staging", body)
    assert user_keys(s3, bucket) == []
    assert staging_leftovers(s3, bucket) == []


def test_a_failed_completion_fails_the_commit_and_stores_nothing(server, s3, bucket, tmp_path, proxy):
    proxy.add("status", "complete_multipart")
    store = store_for(server, bucket, endpoint=proxy.endpoint, retry_deadline=2)
    data = os.urandom(PART + 100)

    async def body(ctx):
        dirty = DirtyFile(ctx)
        await dirty.write(0, data)
        with pytest.raises(WriteError) as e:
            await dirty.commit("f.bin", {}, FILE_CONTENT_TYPE)
        assert e.value.errno == errno.EIO
        assert isinstance(dirty.state, Failed) and dirty.error is not None
        with pytest.raises(WriteError):
            await dirty.read(0, 10)
        await dirty.discard()

    run_uploads(store, tmp_path / "staging", body)
    assert user_keys(s3, bucket) == []
    assert staging_leftovers(s3, bucket) == []
