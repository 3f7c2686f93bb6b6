"""A success return is a promise: with faults between the mount and the server, every
close()/fsync() that returned 0 has its exact bytes in the bucket, nothing partial sits
under a name, and nothing leaks (staging objects, multipart uploads).

The faults come from tests/support/faultproxy.py between the mount and the real server.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.process import drop_caches, metric_value, wait_for
from tests.support.s3 import user_keys

MiB = 1 << 20
DEADLINE = "retry_deadline=2"


@pytest.fixture
def faulty(mounter, bucket, proxy):
    """A mount through the fault proxy, small parts, a short retry deadline."""
    m = mounter()
    m.start(bucket, DEADLINE, "multipart_size=5M", "write_buffer_size=10M", endpoint=proxy.endpoint)
    m.bucket = bucket
    return m


def body(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def leftovers(s3, bucket: str) -> list[str]:
    """Staging objects and multipart uploads: after every close, there must be none."""
    objs = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=".fsgateway/staging/").get("Contents", [])]
    ups = [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return objs + ups


# ---------------------------------------------------------------------------- item 2: a failed part poisons the file
def test_failed_create_multipart_poisons_the_file(faulty, proxy, s3):
    proxy.add("status", "create_multipart")
    fd = os.open(faulty.path / "f", os.O_CREAT | os.O_WRONLY, 0o644)
    written = 0
    with pytest.raises(OSError) as e:
        for _ in range(4):
            written += os.write(fd, os.urandom(2 * MiB))
    assert e.value.errno == errno.EIO
    with pytest.raises(OSError) as e:
        os.fsync(fd)
    assert e.value.errno == errno.EIO
    with pytest.raises(OSError) as e:
        os.close(fd)
    assert e.value.errno == errno.EIO
    proxy.clear()
    assert user_keys(s3, faulty.bucket) == []
    assert leftovers(s3, faulty.bucket) == []


def test_failed_part_poisons_the_file_until_close(faulty, proxy, s3):
    proxy.add("status", "upload_part")
    f = open(faulty.path / "g", "wb", buffering=0)
    with pytest.raises(OSError) as e:  # a later write sees the failed part (past `parallel` parts, 8 x 5 MiB,
        for _ in range(40):             # in flight, the writer waits for the first to end)
            f.write(os.urandom(2 * MiB))
    assert e.value.errno == errno.EIO
    with pytest.raises(OSError) as e:
        f.close()
    assert e.value.errno == errno.EIO
    proxy.clear()
    assert user_keys(s3, faulty.bucket) == []
    wait_for(lambda: leftovers(s3, faulty.bucket) == [], 10, "the failed upload to be aborted")


# ---------------------------------------------------------------------------- item 3: FLUSH of a dup'd descriptor
def test_close_of_a_dup_commits_no_intermediate_state(faulty, proxy, s3):
    s3.put_object(Bucket=faulty.bucket, Key="fw.bin", Body=b"old content")
    fd = os.open(faulty.path / "fw.bin", os.O_WRONLY | os.O_TRUNC)  # a shell's `> fw.bin`
    out = os.dup(fd)
    os.close(fd)  # FLUSH: the file is truncated, nothing written yet
    assert body(s3, faulty.bucket, "fw.bin") == b"old content"
    proxy.add("status", "put")
    os.write(out, b"new content")
    with pytest.raises(OSError) as e:
        os.close(out)
    assert e.value.errno == errno.EIO
    proxy.clear()
    assert body(s3, faulty.bucket, "fw.bin") == b"old content"  # the failed overwrite kept the old bytes
    wait_for(lambda: (faulty.path / "fw.bin").read_bytes() == b"old content", 10, "the mount to show the old bytes")


def test_dd_into_a_new_file_shows_no_empty_object_meanwhile(faulty, s3):
    fd = os.open(faulty.path / "new.bin", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)  # dd of=new.bin
    out = os.dup(fd)
    os.close(fd)
    assert user_keys(s3, faulty.bucket) == []
    os.write(out, b"payload")
    os.close(out)
    assert body(s3, faulty.bucket, "new.bin") == b"payload"


def test_shell_redirect_through_a_real_shell(faulty, s3):
    s3.put_object(Bucket=faulty.bucket, Key="out.txt", Body=b"before")
    subprocess.run(["sh", "-c", f"echo after > {faulty.path / 'out.txt'}"], check=True)
    assert body(s3, faulty.bucket, "out.txt") == b"after\n"


# ---------------------------------------------------------------------------- item 8: unlinked before upload
def test_fsync_of_an_unlinked_file_keeps_its_data_for_the_descriptor(faulty, s3):
    data = os.urandom(64 << 10)
    fd = os.open(faulty.path / "tmp", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        assert os.write(fd, data) == len(data)
        os.unlink(faulty.path / "tmp")
        os.fsync(fd)
        assert os.pread(fd, len(data) + 10, 0) == data
        assert os.write(fd, b"x" * 100) == 100
        assert os.pread(fd, len(data) + 200, 0) == data + b"x" * 100
    finally:
        os.close(fd)
    assert user_keys(s3, faulty.bucket) == []


# ---------------------------------------------------------------------------- item 9: rename over an existing object
def test_rename_of_an_unuploaded_file_keeps_the_target_until_stored(faulty, proxy, s3):
    s3.put_object(Bucket=faulty.bucket, Key="current", Body=b"version 1")
    f = open(faulty.path / ".tmp", "wb")
    f.write(b"version 2")
    os.rename(faulty.path / ".tmp", faulty.path / "current")
    assert body(s3, faulty.bucket, "current") == b"version 1"  # still the old one, never neither
    proxy.add("status", "put")
    with pytest.raises(OSError) as e:
        f.close()
    assert e.value.errno == errno.EIO
    proxy.clear()
    assert user_keys(s3, faulty.bucket) == ["current"]
    assert body(s3, faulty.bucket, "current") == b"version 1"
    wait_for(lambda: (faulty.path / "current").exists() and (faulty.path / "current").read_bytes() == b"version 1",
             10, "the old object to show again")
    with open(faulty.path / ".tmp2", "wb") as g:
        g.write(b"version 3")
        os.rename(faulty.path / ".tmp2", faulty.path / "current")
    assert body(s3, faulty.bucket, "current") == b"version 3"


# ---------------------------------------------------------------------------- item 7 and lost answers
def test_failure_after_complete_removes_the_staging_object(faulty, proxy, s3):
    proxy.add("status", "head", key=r"^\.fsgateway/staging/")
    data = os.urandom(12 * MiB)
    with pytest.raises(OSError) as e, open(faulty.path / "big", "wb") as f:
        f.write(data)
    assert e.value.errno == errno.EIO
    proxy.clear()
    assert user_keys(s3, faulty.bucket) == []
    assert leftovers(s3, faulty.bucket) == []


@pytest.mark.parametrize("kind", ["create_multipart", "upload_part", "complete_multipart", "copy", "put", "delete"])
def test_answer_lost_after_the_server_acted(faulty, proxy, s3, kind):
    """Each request of a commit is done by the server but its answer is lost once: still exact, no leak."""
    proxy.add("drop", kind, times=1)
    data = os.urandom(12 * MiB + 5)
    (faulty.path / "big").write_bytes(data)
    (faulty.path / "small").write_bytes(b"small")
    assert proxy.seen(kind, "drop")
    assert body(s3, faulty.bucket, "big") == data
    assert body(s3, faulty.bucket, "small") == b"small"
    assert leftovers(s3, faulty.bucket) == []


@pytest.mark.parametrize("kind", ["upload_part", "put"])
def test_a_body_damaged_on_the_way_is_refused_by_the_server_and_sent_again(faulty, proxy, s3, kind):
    """Every body carries its Content-MD5 (payloads are not signed): the server refuses a flipped byte."""
    proxy.add("flip", kind, times=1, after=1000)
    data = os.urandom(12 * MiB + 5 if kind == "upload_part" else 5000)
    (faulty.path / "f").write_bytes(data)
    assert [s.status for s in proxy.seen(kind, "flip")] == [400]  # BadDigest, then retried
    assert body(s3, faulty.bucket, "f") == data
    assert leftovers(s3, faulty.bucket) == []


def test_a_read_answer_damaged_on_the_way_fails_the_whole_file_read_and_is_never_served_again(faulty, proxy, s3):
    """Nothing on the way checks a GET's body: the whole-file SHA-256 does. The reader gets EIO, and
    neither a new open nor the same one is ever served the damaged bytes the kernel cached meanwhile."""
    data = os.urandom(40 * MiB + 7)  # ten read chunks
    (faulty.path / "fw").write_bytes(data)
    drop_caches()
    proxy.add("flip_answer", "get", times=1, after=300_000)  # in the body of the first chunk
    with open(faulty.path / "fw", "rb") as f:
        with pytest.raises(OSError) as e:
            f.read()
        assert e.value.errno == errno.EIO
        assert proxy.seen("get", "flip_answer")
        f.seek(0)
        try:
            again = f.read(1 << 20)  # the same handle, from the start: the bytes it was refused
        except OSError as exc:
            assert exc.errno == errno.EIO
        else:
            assert again == data[:1 << 20]
    assert metric_value(faulty.metrics(), "fsgateway_checksum_mismatches_total") >= 1
    assert (faulty.path / "fw").read_bytes() == data  # a new open reads it again, intact


@pytest.mark.parametrize("how", ["patch", "stream then seek back"])
def test_a_copy_damaged_on_the_way_is_fetched_again_never_committed(faulty, proxy, s3, how):
    """A file changed in place is first copied to a staging file, which the commit hashes anew: a GET
    body damaged on the way must not become the file under a fresh, matching SHA-256. The same for a
    streamed file fetched back when a write goes backwards."""
    data = bytearray(os.urandom(12 * MiB + 11))
    if how == "patch":
        (faulty.path / "fw").write_bytes(data)
        proxy.add("flip_answer", "get", times=1, after=300_000)
        with open(faulty.path / "fw", "r+b") as f:
            f.seek(7 * MiB)
            f.write(b"patched")
    else:
        proxy.add("flip_answer", "get", times=1, after=300_000)
        with open(faulty.path / "fw", "wb") as f:
            f.write(data[:11 * MiB])  # two 5 MiB parts are in the bucket by now
            f.seek(7 * MiB)  # backwards: the parts come back into a staging file
            f.write(b"patched")
            f.seek(11 * MiB)
            f.write(data[11 * MiB:])
    data[7 * MiB:7 * MiB + 7] = b"patched"
    assert proxy.seen("get", "flip_answer")
    assert body(s3, faulty.bucket, "fw") == data
    assert s3.head_object(Bucket=faulty.bucket, Key="fw")["Metadata"]["fsg-sha256"] == hashlib.sha256(data).hexdigest()
    assert metric_value(faulty.metrics(), "fsgateway_checksum_mismatches_total") >= 1


@pytest.mark.parametrize("fault", ["refuse", "reset", "status"])
def test_transient_faults_are_retried_within_the_deadline(faulty, proxy, s3, fault):
    proxy.add(fault, times=3)
    data = os.urandom(11 * MiB)
    (faulty.path / "f").write_bytes(data)
    assert body(s3, faulty.bucket, "f") == data
    assert (faulty.path / "f").read_bytes() == data
    assert leftovers(s3, faulty.bucket) == []


@pytest.mark.parametrize("fault", ["reset", "status", "refuse"])
def test_reads_survive_resets_mid_body_and_errors(faulty, proxy, s3, fault):
    data = os.urandom(20 * MiB + 3)
    s3.put_object(Bucket=faulty.bucket, Key="r", Body=data)
    proxy.add(fault, "get", after=300_000, times=3)  # `reset`: the connection dies mid-body
    assert (faulty.path / "r").read_bytes() == data
    assert proxy.seen("get", fault)


def test_server_gone_for_good_nothing_partial_nothing_leaked(faulty, proxy, s3):
    f = open(faulty.path / "fw.bin", "wb")
    f.write(os.urandom(6 * MiB))
    proxy.refuse_all()
    with pytest.raises(OSError) as e:
        f.write(os.urandom(6 * MiB))
        f.close()
    assert e.value.errno == errno.EIO
    proxy.accept_all()
    assert user_keys(s3, faulty.bucket) == []
    wait_for(lambda: leftovers(s3, faulty.bucket) == [], 30, "the staging upload to be aborted in the background")


# ---------------------------------------------------------------------------- item 1: a full cache disk
@pytest.fixture
def small_tmpfs(tmp_path):
    """A 24 MiB tmpfs: the staging area of a mount, to fill up."""
    path = tmp_path / "tmpfs"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_cache_disk_patch_is_enospc_and_object_unchanged(mounter, bucket, s3, small_tmpfs):
    original = os.urandom(32 * MiB)
    s3.put_object(Bucket=bucket, Key="fw.bin", Body=original)
    m = mounter()
    path = m.start(bucket, f"cache_dir={small_tmpfs}")
    r = subprocess.run(f"printf PATCH | dd of={path / 'fw.bin'} bs=1 seek=1000 conv=notrunc",
                       shell=True, capture_output=True, text=True)
    assert r.returncode != 0
    assert "No space left on device" in r.stderr
    assert body(s3, bucket, "fw.bin") == original
    assert "internal error" not in m.log.read_text()


def test_full_cache_disk_parallel_patches_exact_or_enospc(mounter, bucket, s3, small_tmpfs):
    originals = {f"o{i}": os.urandom(8 * MiB) for i in range(5)}
    for key, data in originals.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    m = mounter()
    path = m.start(bucket, f"cache_dir={small_tmpfs}")
    outcome: dict[str, object] = {}

    def patch(key: str) -> None:
        try:
            with open(path / key, "r+b") as f:
                f.seek(4 * MiB)
                f.write(b"PATCHED" * 1000)
            outcome[key] = "ok"
        except OSError as exc:
            outcome[key] = exc.errno

    threads = [threading.Thread(target=patch, args=(k,)) for k in originals]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(outcome.values()) <= {"ok", errno.ENOSPC}, outcome
    assert errno.ENOSPC in outcome.values() and "ok" in outcome.values(), outcome
    for key, data in originals.items():
        expected = data[: 4 * MiB] + b"PATCHED" * 1000 + data[4 * MiB + 7000:] if outcome[key] == "ok" else data
        assert body(s3, bucket, key) == expected, key
    assert not any(Path(small_tmpfs).rglob("staging-*"))


# ---------------------------------------------------------------------------- item 5: the caller's deadline
def test_a_stalled_server_fails_each_call_at_its_deadline(mounter, bucket, proxy, s3):
    """Stalled requests and a full connection pool: every call fails with EIO at retry_deadline.

    The server never answers while the calls run (the stalls are released only after they
    returned) and the socket timeout is far longer than the wait below: a call can only come
    back through the deadline. One call per directory: the kernel serialises lookups within a
    directory itself.
    """
    dirs = [f"d{i}" for i in range(6)]
    for d in dirs:
        s3.put_object(Bucket=bucket, Key=f"{d}/existing", Body=b"x")
    m = mounter()
    path = m.start(bucket, "retry_deadline=2", "max_connections=2", "parallel=1", "stat_ttl=60",
                   "read_timeout=600", endpoint=proxy.endpoint)
    assert all((path / d).is_dir() for d in dirs)  # cached: the calls below start in their directories
    proxy.add("stall")
    results: dict[str, int | None] = {}

    def call(name: str, fn) -> None:
        try:
            fn()
            results[name] = None
        except OSError as exc:
            results[name] = exc.errno

    calls = {"stat": lambda: os.stat(path / "d0" / "existing"),
             "create": lambda: (path / "d1" / "new").write_bytes(b"data"),
             **{f"lookup{i}": (lambda i=i: os.stat(path / f"d{i}" / "missing")) for i in range(2, 6)}}
    threads = [threading.Thread(target=call, args=item) for item in calls.items()]
    for t in threads:
        t.start()
    try:
        give_up = time.monotonic() + proxy.max_stall / 2  # far below the socket timeout and the stalls' end
        for t in threads:
            t.join(timeout=max(0.0, give_up - time.monotonic()))
        assert set(results) == set(calls), f"still blocked: {sorted(set(calls) - set(results))}"
        assert results == dict.fromkeys(calls, errno.EIO)
    finally:
        proxy.release()


# ---------------------------------------------------------------------------- item 6: restart after a crash
def test_mount_after_sigkill_takes_over_the_dead_mountpoint(mounter, bucket, s3):
    m = mounter()
    path = m.start(bucket)
    (path / "kept").write_bytes(b"committed before the crash")
    m.proc.send_signal(signal.SIGKILL)
    m.proc.wait(timeout=30)
    with pytest.raises(OSError) as e:
        os.statvfs(path)
    assert e.value.errno == errno.ENOTCONN  # the dead mount an fstab/manual restart meets
    m.proc = subprocess.Popen(m.command(bucket, path, []), stdout=open(m.log, "ab"), stderr=subprocess.STDOUT)

    def usable() -> bool:
        try:
            return (path / "kept").read_bytes() == b"committed before the crash"
        except OSError:
            return m.proc.poll() is not None

    wait_for(usable, 60, "the new mount")
    assert m.proc.poll() is None, m.log.read_text()[-2000:]
    assert "took over" in m.log.read_text()
    (path / "after").write_bytes(b"new")
    assert body(s3, bucket, "after") == b"new"
    with open("/proc/self/mountinfo") as f:
        assert sum(line.split()[4] == str(path) for line in f) == 1  # the dead one is gone, not stacked


def test_mountinfo_gives_the_type_of_the_topmost_mount(tmp_path):
    from fsgateway.mount.deadmount import fstype_at

    assert fstype_at(str(tmp_path)) is None
    info = tmp_path / "mountinfo"
    info.write_text("36 35 98:0 / /mnt/with\\040space rw - fuse.sshfs host:/ rw\n"
                    "37 36 0:52 / /mnt/with\\040space rw - fuse.fsgateway b rw\n")
    assert fstype_at("/mnt/with space", str(info)) == "fuse.fsgateway"
    assert fstype_at("/mnt/with", str(info)) is None


# ---------------------------------------------------------------------------- kills at chosen points
def test_kill_mid_upload_leaves_the_old_object_and_the_restart_cleans_up(mounter, bucket, proxy, s3):
    s3.put_object(Bucket=bucket, Key="fw.bin", Body=b"old firmware")
    m = mounter()
    opts = ["multipart_size=5M", "write_buffer_size=10M"]
    path = m.start(bucket, *opts, endpoint=proxy.endpoint)
    proxy.add("stall", "upload_part")
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            with open(path / "fw.bin", "wb") as f:
                f.write(os.urandom(16 * MiB))
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    t = threading.Thread(target=write)
    t.start()
    wait_for(lambda: len(proxy.seen("upload_part", "stall")) >= 2, 30, "parts to be under way")
    m.proc.send_signal(signal.SIGKILL)  # killed mid-upload
    m.proc.wait(timeout=30)
    t.join(timeout=30)
    assert outcome and isinstance(outcome[0], OSError)  # the writer was told: no success return
    proxy.clear()
    assert body(s3, bucket, "fw.bin") == b"old firmware"  # nothing partial under the name
    assert leftovers(s3, bucket)  # the dead run's staging upload...
    m.proc = subprocess.Popen(m.command(bucket, path, opts, proxy.endpoint), stdout=open(m.log, "ab"),
                              stderr=subprocess.STDOUT)
    wait_for(lambda: leftovers(s3, bucket) == [], 60, "the restarted mount to remove the dead run's upload")
    assert (path / "fw.bin").read_bytes() == b"old firmware"


# ---------------------------------------------------------------------------- issue 13 item 4 (stretch)
def test_open_files_keep_their_whole_content_after_unlink_and_rename_over(mount, s3):
    old = os.urandom(20 * MiB + 7)  # several read chunks: most are not fetched before the unlink
    s3.put_object(Bucket=mount.bucket, Key="unlinked", Body=old)
    s3.put_object(Bucket=mount.bucket, Key="replaced", Body=old)
    with open(mount.path / "unlinked", "r+b") as f, open(mount.path / "replaced", "rb") as g:
        assert f.read(10) == old[:10] and g.read(10) == old[:10]
        os.unlink(mount.path / "unlinked")
        (mount.path / "new").write_bytes(b"new version")
        os.rename(mount.path / "new", mount.path / "replaced")
        assert f.read() == old[10:]
        assert g.read() == old[10:]
        f.seek(5)
        f.write(b"still writable")
        f.seek(0)
        assert f.read(19) == old[:5] + b"still writable"
    assert sorted(user_keys(s3, mount.bucket)) == ["replaced"]
    assert body(s3, mount.bucket, "replaced") == b"new version"
    # the local copies go at the last close: FUSE sends RELEASE after close() has returned
    wait_for(lambda: not any((mount.tmp / "cache").rglob("staging-*")), 30, "the local copies to go")


def test_past_cache_size_an_unlinked_open_file_keeps_what_was_read(mounter, bucket, s3):
    old = os.urandom(3 * MiB)
    s3.put_object(Bucket=bucket, Key="big", Body=old)
    m = mounter()
    path = m.start(bucket, "cache_size=1M")
    with open(path / "big", "rb") as f:
        assert f.read(10) == old[:10]
        os.unlink(path / "big")  # no room for a local copy: the unlink still happens
    assert user_keys(s3, bucket) == []
    assert "keep only what they read" in m.log.read_text()
