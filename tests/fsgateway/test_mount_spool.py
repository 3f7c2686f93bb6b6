"""A streamed file's full parts go to a spool file on disk and upload from there (io/spool.py).

Real mounts on the run's server (Ceph RGW and SeaweedFS both: `source /work/wt/testenv.sh ...`),
faults from tests/support/faultproxy.py. Each file lands exact (size, SHA-256) or close() fails;
the spool file is gone after close, after a failure and after a crash and restart; without room
for the spool the parts are sent from memory, and the write does not fail.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from fsgateway.formats.s3format import SHA256_META
from tests.support.mount import Mount, write_in_thread
from tests.support.process import metric_value, wait_for
from tests.support.uploads import small_tmpfs

MiB = 1 << 20
PART = 5 * MiB
OPTS = (f"multipart_size={PART}", f"write_buffer_size={2 * PART}")  # two part tokens


def spool_files(m: Mount) -> list[Path]:
    return list((m.tmp / "cache").rglob("spool-*"))


def parts(m: Mount, source: str) -> float:
    return metric_value(m.metrics(), "fsgateway_stream_parts_total", source=source)


def assert_exact(s3, bucket: str, key: str, data: bytes) -> None:
    """The object has exactly `data`, and its stored SHA-256 says so."""
    obj = s3.get_object(Bucket=bucket, Key=key)
    assert obj["ContentLength"] == len(data)
    assert hashlib.sha256(obj["Body"].read()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert obj["Metadata"][SHA256_META] == hashlib.sha256(data).hexdigest()


def leftovers(s3, bucket: str) -> list[str]:
    objs = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=".fsgateway/staging/").get("Contents", [])]
    return objs + [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def test_more_parts_are_in_flight_than_memory_holds_and_the_file_lands_exact(mounter, bucket, proxy, s3):
    """Two part tokens of memory, yet all eight parts of one file under way at once (`parallel`):
    every write returns while no upload has answered, the parts wait on disk.

    Before the spool, the writer blocked with two parts in flight (the tokens) and this timed out."""
    m = mounter()
    path = m.start(bucket, *OPTS, endpoint=proxy.endpoint)
    data = os.urandom(8 * PART + 12345)
    proxy.add("stall", "upload_part")
    outcome: list[BaseException | None] = []
    written = [0]
    t = write_in_thread(path / "big.bin", data, outcome, written)
    wait_for(lambda: written[0] == len(data), 15, "every write to return while the uploads stall")
    assert not outcome  # close() waits for the parts
    assert len(spool_files(m)) == 1
    proxy.clear()
    proxy.release()
    t.join(timeout=120)
    assert outcome == [None]
    assert_exact(s3, bucket, "big.bin", data)
    assert parts(m, "spool") == 9 and parts(m, "memory") == 0
    assert spool_files(m) == []
    assert leftovers(s3, bucket) == []


def test_a_big_streamed_file_lands_exact_through_the_spool(mounter, bucket, s3):
    m = mounter()
    path = m.start(bucket, *OPTS)
    data = os.urandom(12 * PART + 7)
    with open(path / "big.bin", "wb") as f:
        for off in range(0, len(data), MiB):
            assert f.write(data[off:off + MiB]) == len(data[off:off + MiB])
    assert_exact(s3, bucket, "big.bin", data)
    assert (path / "big.bin").read_bytes() == data
    assert parts(m, "spool") == 13
    assert spool_files(m) == []
    assert leftovers(s3, bucket) == []


@pytest.mark.parametrize("fault", ["flip", "cut"])
def test_a_spooled_part_damaged_or_cut_on_the_way_is_sent_again_from_its_start(mounter, bucket, proxy, s3, fault):
    """`flip`: a byte of the body late in the part (past the first block read from the spool) is
    inverted, the server refuses it (Content-MD5); `cut`: the server stored the part, its answer is
    cut. Either way the part is sent again, read from the spool from its first byte."""
    m = mounter()
    path = m.start(bucket, *OPTS, "retry_deadline=20", endpoint=proxy.endpoint)
    proxy.add(fault, "upload_part", times=1, after=PART - 1000 if fault == "flip" else 0)
    data = os.urandom(3 * PART + 99)
    (path / "f").write_bytes(data)
    assert len(proxy.seen("upload_part", fault)) == 1
    if fault == "flip":
        assert [s.status for s in proxy.seen("upload_part", "flip")] == [400]  # BadDigest
    assert_exact(s3, bucket, "f", data)
    assert parts(m, "spool") == 4
    assert spool_files(m) == []
    assert leftovers(s3, bucket) == []


def test_the_spool_file_is_removed_after_a_failed_upload(mounter, bucket, proxy, s3):
    m = mounter()
    path = m.start(bucket, *OPTS, "retry_deadline=2", endpoint=proxy.endpoint)
    proxy.add("status", "upload_part")  # refused until the deadline
    with pytest.raises(OSError), open(path / "f", "wb") as f:
        f.write(os.urandom(3 * PART))
    assert parts(m, "spool") >= 1
    assert spool_files(m) == []
    proxy.clear()
    assert not [k for k in (o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
                if not k.startswith(".fsgateway/")]
    wait_for(lambda: leftovers(s3, bucket) == [], 30, "the staging upload to be aborted")


def test_without_room_in_cache_size_parts_are_sent_from_memory(mounter, bucket, s3):
    m = mounter()
    path = m.start(bucket, *OPTS, "cache_size=1M")  # not one part fits
    data = os.urandom(6 * PART + 1)
    (path / "f").write_bytes(data)
    assert_exact(s3, bucket, "f", data)
    assert parts(m, "memory") == 7 and parts(m, "spool") == 0
    assert spool_files(m) == []


def test_a_full_disk_under_the_spool_sends_parts_from_memory(mounter, bucket, s3, tmp_path):
    """cache_size has room, the disk has not: the spool write fails (ENOSPC), the write does not."""
    with small_tmpfs(tmp_path / "tmpfs", "8m") as disk:
        m = mounter()
        path = m.start(bucket, *OPTS, f"cache_dir={disk}")
        filler = disk / "filler"
        with open(filler, "wb") as f:  # leave about 1 MiB: less than a part
            f.write(b"\0" * 7 * MiB)
        data = os.urandom(4 * PART + 3)
        (path / "f").write_bytes(data)
        assert_exact(s3, bucket, "f", data)
        assert parts(m, "memory") == 5 and parts(m, "spool") == 0
        assert not list(disk.rglob("spool-*"))
        assert "spool:" in m.log.read_text()  # the failed spool write was logged
        m.stop()


def test_a_crash_mid_write_leaves_no_spool_file_after_the_restart(mounter, bucket, proxy, s3):
    m = mounter()
    opts = list(OPTS)
    path = m.start(bucket, *opts, endpoint=proxy.endpoint)
    proxy.add("stall", "upload_part")
    outcome: list[BaseException | None] = []
    t = write_in_thread(path / "f", os.urandom(6 * PART), outcome)
    wait_for(lambda: len(proxy.seen("upload_part", "stall")) >= 3, 60, "parts under way")
    assert len(spool_files(m)) == 1  # the parts wait in the spool
    assert m.proc is not None
    m.proc.send_signal(signal.SIGKILL)
    m.proc.wait(timeout=30)
    t.join(timeout=30)
    assert outcome and isinstance(outcome[0], OSError)
    proxy.clear()
    proxy.release()
    assert len(spool_files(m)) == 1  # what the dead run left
    m.proc = subprocess.Popen(m.command(bucket, path, opts, proxy.endpoint), stdout=open(m.log, "ab"),
                              stderr=subprocess.STDOUT)
    wait_for(lambda: spool_files(m) == [] and leftovers(s3, bucket) == [], 60,
             "the restarted mount to remove the dead run's spool file and upload")
