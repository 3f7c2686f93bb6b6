"""The contract's memory bounds hold for the mount process's peak resident size (VmHWM).

Parallel writers and sequential readers at once; the ceiling is computed from
the options exactly as "Memory and disk bounds" in fsgateway/mount/CONTRACT.md states it, on top of
the process's resident size before the load. Sizes are modest (a 2-core CI
machine), the accounting is the same as with the defaults.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from fsgateway.mount.fs.files import READ_CHUNK
from fsgateway.mount.options import Config
from fsgateway.store.client import SliceReader
from tests.support.process import drop_caches, wait_for

MiB = 1 << 20
PART = 5 * MiB
WRITE_BUFFER = 10 * MiB
READ_AHEAD = 16 * MiB
WRITERS = READERS = 4
FILE_SIZE = 40 * MiB
FLOOR = 70 * MiB  # the idle daemon (bench/PROFILE.md): interpreter, trio, pyfuse3, boto3, one S3 client
GOAL = 100 * MiB  # peak resident size at default options while writing, then cold-reading, a large file
SLACK = 36 * MiB  # thread stacks, connection buffers, allocator rounding (more on a loaded machine: 226 MiB seen)


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def test_peak_memory_of_writers_and_readers_is_within_the_documented_bound(mounter, bucket, s3):
    m = mounter()
    path = m.start(bucket, f"multipart_size={PART}", f"write_buffer_size={WRITE_BUFFER}",
                   f"read_ahead={READ_AHEAD}")
    blobs = {f"r{i}": os.urandom(FILE_SIZE) for i in range(READERS)}
    for key, data in blobs.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    (path / "warm").write_bytes(os.urandom(2 * PART))  # every code path loaded once
    assert (path / "warm").read_bytes()
    drop_caches()
    baseline = status_kib(m.proc.pid, "VmRSS")
    written = {f"w{i}": os.urandom(FILE_SIZE) for i in range(WRITERS)}
    errors: list[BaseException] = []
    digests: dict[str, str] = {}

    def write(key: str) -> None:
        try:
            with open(path / key, "wb") as f:
                for off in range(0, FILE_SIZE, MiB):
                    f.write(written[key][off:off + MiB])
        except BaseException as exc:
            errors.append(exc)

    def read(key: str) -> None:
        try:
            h = hashlib.sha256()
            with open(path / key, "rb") as f:
                while block := f.read(MiB):
                    h.update(block)
            digests[key] = h.hexdigest()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in written]
    threads += [threading.Thread(target=read, args=(k,)) for k in blobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert digests == {k: hashlib.sha256(v).hexdigest() for k, v in blobs.items()}
    for key, data in written.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    peak = status_kib(m.proc.pid, "VmHWM")
    # CONTRACT.md: parts in memory ≤ write_buffer_size; each file being written ≤ one part not yet full;
    # each request sending a spooled part one block, `parallel` per file; each sequential reader ≤
    # read_ahead plus one chunk.
    spooled = WRITERS * Config().parallel * SliceReader.BLOCK
    ceiling = baseline + WRITE_BUFFER + WRITERS * PART + spooled + READERS * (READ_AHEAD + READ_CHUNK) + SLACK
    print(f"baseline {baseline / MiB:.0f} MiB, peak {peak / MiB:.0f} MiB, ceiling {ceiling / MiB:.0f} MiB")
    assert peak <= ceiling, f"peak {peak / MiB:.0f} MiB > ceiling {ceiling / MiB:.0f} MiB"


def test_default_options_leave_room_for_data_within_the_goal():
    d = Config()
    data = max(d.write_buffer_size + d.multipart_size, d.read_ahead + READ_CHUNK)
    assert FLOOR + data <= GOAL, f"defaults hold {data / MiB:.0f} MiB of data: over {GOAL / MiB:.0f} MiB in all"


def test_at_default_options_a_large_write_then_a_cold_read_stay_within_their_bound(mounter, bucket):
    d = Config()
    m = mounter()
    path = m.start(bucket)
    (path / "warm").write_bytes(os.urandom(MiB))  # every code path loaded once
    assert (path / "warm").read_bytes()
    baseline = status_kib(m.proc.pid, "VmRSS")
    data = os.urandom(8 * d.multipart_size)  # many parts and read chunks go through the budget
    with open(path / "big", "wb") as f:
        for off in range(0, len(data), MiB):
            assert f.write(data[off:off + MiB]) == MiB
    drop_caches()
    h = hashlib.sha256()
    with open(path / "big", "rb") as f:
        while block := f.read(MiB):
            h.update(block)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    peak = status_kib(m.proc.pid, "VmHWM")
    # CONTRACT.md: a writer holds write_buffer_size plus one unfilled part; a reader read_ahead plus one chunk
    ceiling = baseline + max(d.write_buffer_size + d.multipart_size, d.read_ahead + READ_CHUNK) + SLACK
    print(f"baseline {baseline / MiB:.0f} MiB, peak {peak / MiB:.0f} MiB, ceiling {ceiling / MiB:.0f} MiB")
    assert peak <= ceiling, f"peak {peak / MiB:.0f} MiB > ceiling {ceiling / MiB:.0f} MiB"


def test_part_buffers_kept_for_reuse_are_unmapped_when_writes_stop(mounter, bucket):
    m = mounter()
    path = m.start(bucket, f"multipart_size={PART}", f"write_buffer_size={WRITE_BUFFER}")
    (path / "warm").write_bytes(b"x")
    baseline = status_kib(m.proc.pid, "VmRSS")
    data = os.urandom(6 * PART)
    with open(path / "big", "wb") as f:
        for off in range(0, len(data), MiB):
            assert f.write(data[off:off + MiB]) == MiB
    held = status_kib(m.proc.pid, "VmRSS")
    assert held >= baseline + WRITE_BUFFER, "the parts' buffers wait for the next write"
    # io/buffers.py: unmapped once no part was taken or given for 5 s (checked every 5 s)
    wait_for(lambda: status_kib(m.proc.pid, "VmRSS") <= held - WRITE_BUFFER, timeout=30,
             what="the idle part buffers to be unmapped")
