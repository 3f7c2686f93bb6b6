"""The spool of streamed parts (io/spool.py) behind `DirtyFile`, against the real S3 server: no mount.

And `SliceReader`, the request body that sends a spooled part from its file (pure: a local file).
"""

from __future__ import annotations

import hashlib
import os

import pytest
import trio

from fsgateway.formats.s3format import FILE_CONTENT_TYPE, SHA256_META
from fsgateway.mount.io.stream import StreamUpload
from fsgateway.mount.io.writer import DirtyFile
from fsgateway.store.client import FileSlice, SliceReader
from tests.support.uploads import PART, requests, run_uploads, staging_leftovers, store_for, until


def spool_files(staging) -> list[str]:
    return [n for n in os.listdir(staging) if n.startswith("spool-")]


def test_reading_spooled_bytes_and_writing_back_switch_to_a_staged_file_that_lands_exact(server, s3, bucket,
                                                                                         tmp_path):
    """The bytes of parts that left for the spool are read back through the staged copy (the parts are
    waited for, the staging object downloaded), and a write that is not an append goes there too."""
    data = bytearray(os.urandom(3 * PART + 10))
    store = store_for(server, bucket, role="spool-switch")
    staging = tmp_path / "staging"

    async def body(ctx):
        dirty = DirtyFile(ctx)
        stream = dirty.state
        assert isinstance(stream, StreamUpload)
        await dirty.write(0, bytes(data))
        assert stream.spool is not None and stream.spool.slots >= 1
        await until(lambda: requests("spool-switch", "upload_part") == 3, "three parts uploaded")
        assert await dirty.read(PART - 5, 10) == data[PART - 5:PART + 5]  # from the spooled parts
        assert not isinstance(dirty.state, StreamUpload)
        assert spool_files(staging) == []  # the switch removed the spool
        await dirty.write(7, b"patched")
        data[7:14] = b"patched"
        result = await dirty.commit("f.bin", {}, FILE_CONTENT_TYPE)
        dirty.discard_now()
        assert result.size == len(data) and result.sha256 == hashlib.sha256(data).hexdigest()

    run_uploads(store, staging, body)
    obj = s3.get_object(Bucket=bucket, Key="f.bin")
    assert obj["Body"].read() == data
    assert obj["Metadata"][SHA256_META] == hashlib.sha256(data).hexdigest()
    assert staging_leftovers(s3, bucket) == []
    assert os.listdir(staging) == []


def test_without_a_free_mount_wide_slot_parts_are_sent_from_memory(server, s3, bucket, tmp_path):
    """Other files hold every spooled request of the mount (`max_connections`): this file's parts
    wait in memory, as without a spool."""
    data = os.urandom(3 * PART + 1)
    store = store_for(server, bucket)

    async def body(ctx):
        taken = 0
        while True:
            try:
                ctx.spool_slots.acquire_nowait()
            except trio.WouldBlock:
                break
            taken += 1
        assert taken == store.settings.max_connections
        dirty = DirtyFile(ctx)
        stream = dirty.state
        assert isinstance(stream, StreamUpload)
        await dirty.write(0, data)
        result = await dirty.commit("f.bin", {}, FILE_CONTENT_TYPE)
        dirty.discard_now()
        assert stream.spool is not None and stream.spool.slots == 0
        assert result.sha256 == hashlib.sha256(data).hexdigest()
        for _ in range(taken):
            ctx.spool_slots.release()

    run_uploads(store, tmp_path / "staging", body)
    assert s3.get_object(Bucket=bucket, Key="f.bin")["Body"].read() == data
    assert spool_files(tmp_path / "staging") == []


def test_a_slice_reader_sends_exactly_its_slice_and_reads_it_again_from_the_start(tmp_path):
    blob = os.urandom(3 * SliceReader.BLOCK + 1000)
    path = tmp_path / "spool"
    path.write_bytes(blob)
    part = FileSlice(str(path), 777, 2 * SliceReader.BLOCK + 5)
    expected = blob[777:777 + part.length]
    with SliceReader(part) as reader:
        assert len(reader) == part.length
        sent = b""
        while block := reader.read(16384):  # as urllib3 asks; a whole block comes back
            assert len(block) <= SliceReader.BLOCK
            sent += bytes(block)  # each block is sent before the next read reuses the buffer
        assert sent == expected
        assert reader.tell() == part.length and reader.read(16384) == b""
        reader.seek(0)  # botocore rewinds after hashing a signed payload
        assert bytes(reader.read(-1)) == expected


def test_a_slice_past_the_end_of_its_file_is_an_error_not_a_short_body(tmp_path):
    path = tmp_path / "spool"
    path.write_bytes(b"x" * 100)
    with SliceReader(FileSlice(str(path), 0, 200)) as reader:
        assert bytes(reader.read(16384)) == b"x" * 100
        with pytest.raises(OSError):
            reader.read(16384)
