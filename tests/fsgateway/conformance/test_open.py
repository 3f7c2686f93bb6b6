"""open(2) and creat: the new file's type, mode, owner, size and times; O_TRUNC; every errno."""

from __future__ import annotations

import os
import stat

from tests.fsgateway.conformance.posix import errno_of, now_ns
from tests.support.process import wait_for


def test_create_new_file(d, conformance_mount, s3):
    before = os.stat(d)
    t0 = now_ns()
    fd = os.open(d / "f", os.O_CREAT | os.O_WRONLY, 0o640)
    os.close(fd)
    st = os.stat(d / "f")
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640 & ~_umask()
    assert (st.st_uid, st.st_gid, st.st_size, st.st_nlink) == (os.getuid(), os.getgid(), 0, 1)
    assert st.st_atime_ns == st.st_mtime_ns == st.st_ctime_ns >= t0
    parent = os.stat(d)
    assert parent.st_mtime_ns > before.st_mtime_ns and parent.st_ctime_ns > before.st_ctime_ns
    # Nothing was written: the new file is stored at its last close (FUSE's release), just after close().
    head = wait_for(lambda: _head(s3, conformance_mount.bucket, f"{d.name}/f"), 10, "the new file in the bucket")
    meta = head["Metadata"]
    assert int(meta["mode"]) == st.st_mode and meta["atime"] and meta["ctime"]


def _head(s3, bucket: str, key: str) -> dict | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError:
        return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_o_trunc_empties_and_moves_mtime_and_ctime(d):
    (d / "f").write_bytes(b"0123456789")
    before = os.stat(d / "f")
    os.close(os.open(d / "f", os.O_WRONLY | os.O_TRUNC))
    after = os.stat(d / "f")
    assert after.st_size == 0
    assert after.st_mtime_ns > before.st_mtime_ns and after.st_ctime_ns > before.st_ctime_ns


def test_open_and_read_change_no_time(d):
    (d / "f").write_bytes(b"data")
    before = os.stat(d / "f")
    assert (d / "f").read_bytes() == b"data"
    after = os.stat(d / "f")
    assert (after.st_mtime_ns, after.st_ctime_ns) == (before.st_mtime_ns, before.st_ctime_ns)


def test_errors(d, nobody):
    (d / "file").write_bytes(b"")
    (d / "secret").write_bytes(b"s")
    os.chmod(d / "secret", 0o600)
    os.mkdir(d / "dir")
    os.symlink("file", d / "link")
    os.symlink("loop", d / "loop")
    excl = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    assert errno_of(os.open, d / "file", excl) == "EEXIST"
    assert errno_of(os.open, d / "link", excl) == "EEXIST"
    assert errno_of(os.open, d / "missing", os.O_RDONLY) == "ENOENT"
    assert errno_of(os.open, d / "missing" / "f", os.O_CREAT | os.O_WRONLY) == "ENOENT"
    assert errno_of(os.open, d / "file" / "f", os.O_RDONLY) == "ENOTDIR"
    assert errno_of(os.open, d / "file", os.O_RDONLY | os.O_DIRECTORY) == "ENOTDIR"
    assert errno_of(os.open, d / "dir", os.O_WRONLY) == "EISDIR"
    assert errno_of(os.open, d / "dir", os.O_RDWR) == "EISDIR"
    assert errno_of(os.open, d / "link", os.O_RDONLY | os.O_NOFOLLOW) == "ELOOP"
    assert errno_of(os.open, d / "loop", os.O_RDONLY) == "ELOOP"
    assert errno_of(os.open, d / ("n" * 256), os.O_CREAT | os.O_WRONLY) == "ENAMETOOLONG"
    assert nobody("os.open(V['p'], os.O_RDONLY)", p=d / "secret") == "EACCES"
    assert nobody("os.open(V['p'], os.O_WRONLY)", p=d / "file") == "EACCES"  # 0644, root's
    assert nobody("os.open(V['p'], os.O_CREAT | os.O_WRONLY)", p=d / "new") == "EACCES"
    assert nobody("os.close(os.open(V['p'], os.O_RDONLY))", p=d / "file") == "ok"
    assert not (d / "new").exists()
