"""The staged file (io/staged.py) and the switch to it from a stream, against the real S3 server: no mount."""

from __future__ import annotations

import errno
import hashlib
import os

import pytest

from fsgateway.formats.s3format import FILE_CONTENT_TYPE, SHA256_META
from fsgateway.mount import metrics
from fsgateway.mount.io.staged import StagedFile
from fsgateway.mount.io.stream import StreamUpload
from fsgateway.mount.io.upload import WriteError
from fsgateway.mount.io.writer import DirtyFile
from fsgateway.store.client import multipart_etag
from tests.support.s3 import user_keys
from tests.support.uploads import PART, requests, run_uploads, small_tmpfs, staging_leftovers, store_for, until


def test_an_object_modified_in_place_is_uploaded_in_checked_parts(server, s3, bucket, tmp_path):
    data = bytearray(os.urandom(2 * PART + 777))
    s3.put_object(Bucket=bucket, Key="f.bin", Body=bytes(data))
    etag = s3.head_object(Bucket=bucket, Key="f.bin")["ETag"]
    stored_sha = hashlib.sha256(data).hexdigest()
    store = store_for(server, bucket)

    async def body(ctx):
        dirty = await DirtyFile.from_object(ctx, "f.bin", len(data), etag, stored_sha)
        assert isinstance(dirty.state, StagedFile)
        await dirty.write(PART - 3, b"across a part boundary")
        data[PART - 3:PART - 3 + 22] = b"across a part boundary"
        assert await dirty.read(PART - 10, 20) == bytes(data[PART - 10:PART + 10])
        result = await dirty.commit("f.bin", {}, FILE_CONTENT_TYPE)
        dirty.discard_now()
        assert result.sha256 == hashlib.sha256(data).hexdigest()
        assert ctx.staging.used == 0 and os.listdir(ctx.staging.directory) == []

    run_uploads(store, tmp_path / "staging", body)
    obj = s3.get_object(Bucket=bucket, Key="f.bin")
    assert obj["Body"].read() == data
    assert obj["Metadata"][SHA256_META] == hashlib.sha256(data).hexdigest()
    parts = [hashlib.md5(data[i:i + PART]).hexdigest() for i in range(0, len(data), PART)]
    assert obj["ETag"].strip('"') == multipart_etag(parts)  # what check_complete compared after HEAD
    assert staging_leftovers(s3, bucket) == []


def test_a_copy_that_does_not_match_the_stored_sha256_is_never_staged(server, s3, bucket, tmp_path):
    """Bytes damaged at rest: the copy is fetched twice, then EIO; nothing is staged, nothing changes."""
    data = os.urandom(PART + 99)
    wrong = hashlib.sha256(data[:-1] + b"?").hexdigest()
    s3.put_object(Bucket=bucket, Key="f.bin", Body=data, Metadata={SHA256_META: wrong})
    etag = s3.head_object(Bucket=bucket, Key="f.bin")["ETag"]
    store = store_for(server, bucket, role="staged-sha")
    before = metrics.REGISTRY.get_sample_value("fsgateway_checksum_mismatches_total") or 0.0

    async def body(ctx):
        with pytest.raises(WriteError) as e:
            await DirtyFile.from_object(ctx, "f.bin", len(data), etag, wrong)
        assert e.value.errno == errno.EIO
        assert ctx.staging.used == 0 and os.listdir(ctx.staging.directory) == []

    run_uploads(store, tmp_path / "staging", body)
    assert metrics.REGISTRY.get_sample_value("fsgateway_checksum_mismatches_total") == before + 2
    assert requests("staged-sha", "get") == 2 * 2  # two chunks, fetched twice
    assert s3.get_object(Bucket=bucket, Key="f.bin")["Body"].read() == data


def test_staging_space_is_bounded_by_cache_size(server, s3, bucket, tmp_path):
    """A write past cache_size is ENOSPC; what was written stays, and commits."""
    store = store_for(server, bucket)
    s3.put_object(Bucket=bucket, Key="big", Body=b"x" * (3 << 20))

    async def body(ctx):
        with pytest.raises(WriteError) as e:  # a copy of a 3 MiB object does not fit in 2 MiB
            await DirtyFile.from_object(ctx, "big", 3 << 20, "", None)
        assert e.value.errno == errno.ENOSPC
        assert ctx.staging.used == 0 and os.listdir(ctx.staging.directory) == []

        dirty = DirtyFile(ctx)
        await dirty.write(0, b"a" * 1000)
        await dirty.write(10, b"b" * 10)  # not an append: staged
        assert isinstance(dirty.state, StagedFile)
        with pytest.raises(WriteError) as e:
            await dirty.write(1000, b"c" * (2 << 20))
        assert e.value.errno == errno.ENOSPC
        assert dirty.size == 1000 and dirty.error is None
        assert ctx.staging.used <= ctx.staging.limit
        result = await dirty.commit("small", {}, FILE_CONTENT_TYPE)
        assert result.size == 1000
        dirty.discard_now()
        assert ctx.staging.used == 0

    run_uploads(store, tmp_path / "staging", body, cache_size=2 << 20)
    assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == b"a" * 10 + b"b" * 10 + b"a" * 980


def test_a_full_staging_disk_is_enospc_and_the_file_goes_on(server, s3, bucket, tmp_path):
    """Below cache_size, the disk itself fills: a staged write and a switch to staged both fail with ENOSPC
    before anything is written, and the file stays as it was."""
    store = store_for(server, bucket)
    head = os.urandom(1 << 20)
    streamed = os.urandom(PART + (1 << 20))

    async def body(ctx):
        staged = DirtyFile(ctx)
        await staged.write(10, head)  # not an append: staged
        with pytest.raises(WriteError) as e:
            await staged.write(len(head) + 10, os.urandom(8 << 20))  # 8 MiB on a 4 MiB disk
        assert e.value.errno == errno.ENOSPC
        assert staged.size == len(head) + 10 and staged.error is None
        assert await staged.read(10, len(head)) == head
        await staged.commit("staged", {}, FILE_CONTENT_TYPE)
        staged.discard_now()

        stream = DirtyFile(ctx)
        await stream.write(0, streamed)
        with pytest.raises(WriteError) as e:
            await stream.write(0, b"x")  # the switch needs 6 MiB of disk
        assert e.value.errno == errno.ENOSPC
        assert isinstance(stream.state, StreamUpload) and stream.error is None
        await stream.commit("streamed", {}, FILE_CONTENT_TYPE)
        stream.discard_now()
        assert ctx.staging.used == 0 and os.listdir(ctx.staging.directory) == []

    with small_tmpfs(tmp_path / "disk", "4m") as disk:
        run_uploads(store, disk / "staging", body)
    assert s3.get_object(Bucket=bucket, Key="staged")["Body"].read() == bytes(10) + head
    assert s3.get_object(Bucket=bucket, Key="streamed")["Body"].read() == streamed
    assert staging_leftovers(s3, bucket) == []


def test_a_sparse_truncate_costs_no_staging_space(server, s3, bucket, tmp_path):
    store = store_for(server, bucket)

    async def body(ctx):
        dirty = DirtyFile(ctx)
        await dirty.write(0, b"head")
        await dirty.truncate(1 << 30)  # far beyond cache_size: a hole
        assert dirty.size == 1 << 30 and ctx.staging.used < 1 << 20
        await dirty.truncate(4)
        await dirty.commit("t", {}, FILE_CONTENT_TYPE)
        dirty.discard_now()

    run_uploads(store, tmp_path / "staging", body, cache_size=1 << 20)
    assert s3.get_object(Bucket=bucket, Key="t")["Body"].read() == b"head"


def test_a_staging_file_removed_before_its_commit_is_copied_back_holes_and_all(server, s3, bucket, tmp_path):
    """cache_dir emptied under the mount: the staged file's bytes are still behind its descriptor; the
    commit copies its data (not its holes: a sparse file stays within cache_size) to a new staging file."""
    store = store_for(server, bucket)
    size = 3 * PART + 5

    async def body(ctx):
        dirty = DirtyFile(ctx)
        await dirty.write(0, b"head")
        await dirty.write(size - 4, b"tail")
        for name in os.listdir(ctx.staging.directory):
            os.unlink(os.path.join(ctx.staging.directory, name))
        os.rmdir(ctx.staging.directory)
        await dirty.commit("sparse", {}, FILE_CONTENT_TYPE)
        (copy,) = os.listdir(ctx.staging.directory)
        assert os.stat(os.path.join(ctx.staging.directory, copy)).st_blocks * 512 < 1 << 20
        assert ctx.staging.used < 1 << 20
        dirty.discard_now()
        assert ctx.staging.used == 0 and os.listdir(ctx.staging.directory) == []

    run_uploads(store, tmp_path / "staging", body, cache_size=1 << 20)
    assert s3.get_object(Bucket=bucket, Key="sparse")["Body"].read() == b"head" + bytes(size - 8) + b"tail"


def test_a_write_that_is_not_an_append_switches_the_stream_to_a_new_staged_file(server, s3, bucket, tmp_path):
    data = bytearray(os.urandom(2 * PART + 5000))
    store = store_for(server, bucket, role="switch")

    async def body(ctx):
        dirty = DirtyFile(ctx)
        stream = dirty.state
        await dirty.write(0, bytes(data))
        await until(lambda: requests("switch", "upload_part") == 2, "two parts uploaded")
        await dirty.write(100, b"rewritten")
        data[100:109] = b"rewritten"
        staged = dirty.state
        assert isinstance(stream, StreamUpload) and isinstance(staged, StagedFile) and staged is not stream
        assert staging_leftovers(s3, bucket) == []  # the staging upload went into the file, and is gone
        assert await dirty.read(0, len(data)) == data
        await dirty.commit("f.bin", {}, FILE_CONTENT_TYPE)
        dirty.discard_now()

    run_uploads(store, tmp_path / "staging", body)
    assert s3.get_object(Bucket=bucket, Key="f.bin")["Body"].read() == data
    assert staging_leftovers(s3, bucket) == []


def test_a_read_behind_the_memory_tail_switches_too(server, s3, bucket, tmp_path):
    data = os.urandom(PART + 10)
    store = store_for(server, bucket)

    async def body(ctx):
        dirty = DirtyFile(ctx)
        await dirty.write(0, data)
        assert isinstance(dirty.state, StreamUpload)
        assert await dirty.read(0, 10) == data[:10]  # the first part left memory: back from the bucket
        assert isinstance(dirty.state, StagedFile)
        await dirty.commit("f.bin", {}, FILE_CONTENT_TYPE)
        dirty.discard_now()

    run_uploads(store, tmp_path / "staging", body)
    assert s3.get_object(Bucket=bucket, Key="f.bin")["Body"].read() == data


def test_no_room_to_switch_is_enospc_and_the_stream_goes_on(server, s3, bucket, tmp_path):
    data = os.urandom(PART + 10)
    store = store_for(server, bucket)

    async def body(ctx):
        dirty = DirtyFile(ctx)
        await dirty.write(0, data)
        stream = dirty.state
        with pytest.raises(WriteError) as e:
            await dirty.write(0, b"x")  # needs a staged copy of 5 MiB: 1 MiB of cache_size
        assert e.value.errno == errno.ENOSPC
        assert dirty.state is stream and dirty.error is None
        await dirty.write(len(data), b"more")
        await dirty.commit("f.bin", {}, FILE_CONTENT_TYPE)
        dirty.discard_now()

    run_uploads(store, tmp_path / "staging", body, cache_size=1 << 20)
    assert s3.get_object(Bucket=bucket, Key="f.bin")["Body"].read() == data + b"more"
    assert user_keys(s3, bucket) == ["f.bin"] and staging_leftovers(s3, bucket) == []


def test_a_failed_staged_part_aborts_and_stores_nothing(server, s3, bucket, tmp_path, proxy):
    proxy.add("status", "upload_part", key="^f.bin$")
    store = store_for(server, bucket, endpoint=proxy.endpoint, retry_deadline=2)

    async def body(ctx):
        dirty = DirtyFile(ctx)
        await dirty.write(10, os.urandom(2 * PART))  # not an append: staged from the start
        assert isinstance(dirty.state, StagedFile)
        with pytest.raises(WriteError) as e:
            await dirty.commit("f.bin", {}, FILE_CONTENT_TYPE)
        assert e.value.errno == errno.EIO
        await dirty.discard()
        assert ctx.staging.used == 0

    run_uploads(store, tmp_path / "staging", body)
    assert user_keys(s3, bucket) == []
    assert staging_leftovers(s3, bucket) == []
