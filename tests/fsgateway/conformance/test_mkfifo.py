"""mkfifo(3): a FIFO stored as s3fs stores it (an empty object, the type in x-amz-meta-mode); it works as a pipe."""

from __future__ import annotations

import os
import stat
import threading

from tests.fsgateway.conformance.posix import errno_of


def test_new_fifo_stored_and_seen_by_another_mount(d, conformance_mount, s3, mounter):
    before = os.stat(d)
    os.mkfifo(d / "p", 0o640)
    st = os.lstat(d / "p")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640 & ~_umask()
    assert (st.st_uid, st.st_gid, st.st_size, st.st_nlink) == (os.getuid(), os.getgid(), 0, 1)
    assert os.stat(d).st_mtime_ns > before.st_mtime_ns
    obj = s3.get_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/p")
    assert obj["Body"].read() == b"" and int(obj["Metadata"]["mode"]) == st.st_mode
    other = mounter().start(conformance_mount.bucket)
    assert stat.S_ISFIFO(os.lstat(other / d.name / "p").st_mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_fifo_carries_data_between_processes(d):
    os.mkfifo(d / "p")
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append((d / "p").read_bytes()))
    reader.start()
    with open(d / "p", "wb") as w:
        w.write(b"through the pipe")
    reader.join(timeout=30)
    assert got == [b"through the pipe"]


def test_fifo_can_be_renamed_chmodded_and_removed(d):
    os.mkfifo(d / "p")
    os.chmod(d / "p", 0o600)
    os.rename(d / "p", d / "q")
    assert stat.S_ISFIFO(os.lstat(d / "q").st_mode) and stat.S_IMODE(os.lstat(d / "q").st_mode) == 0o600
    os.unlink(d / "q")
    assert os.listdir(d) == []


def test_errors(d, nobody):
    (d / "file").write_bytes(b"")
    assert errno_of(os.mkfifo, d / "file") == "EEXIST"
    assert errno_of(os.mkfifo, d / "missing" / "p") == "ENOENT"
    assert errno_of(os.mkfifo, d / "file" / "p") == "ENOTDIR"
    assert errno_of(os.mkfifo, d / ("n" * 256)) == "ENAMETOOLONG"
    assert nobody("os.mkfifo(V['p'])", p=d / "byother") == "EACCES"
