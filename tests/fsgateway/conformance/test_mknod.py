"""mknod(2): regular files, FIFOs, sockets, character and block devices (with st_rdev); every errno."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from tests.fsgateway.conformance.posix import KEEPS_DIR_METADATA, errno_of


@pytest.mark.parametrize(("kind", "dev"), [(stat.S_IFCHR, os.makedev(1, 3)), (stat.S_IFBLK, os.makedev(8, 17))])
def test_devices_keep_type_and_rdev(d, conformance_mount, s3, mounter, kind, dev):
    os.mknod(d / "dev", kind | 0o600, dev)
    st = os.lstat(d / "dev")
    assert stat.S_IFMT(st.st_mode) == kind and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_rdev == dev and st.st_size == 0 and st.st_nlink == 1
    meta = s3.head_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/dev")["Metadata"]
    assert int(meta["mode"]) == kind | 0o600 and int(meta["rdev"]) == dev
    other = mounter().start(conformance_mount.bucket)
    assert os.lstat(other / d.name / "dev").st_rdev == dev


def test_regular_file_and_fifo(d):
    os.mknod(d / "r", stat.S_IFREG | 0o644)
    os.mknod(d / "p", stat.S_IFIFO | 0o644)
    assert stat.S_ISREG(os.lstat(d / "r").st_mode) and os.lstat(d / "r").st_size == 0
    assert stat.S_ISFIFO(os.lstat(d / "p").st_mode)


def test_unix_socket_bound_on_the_mount(d):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(d / "sock"))
        assert stat.S_ISSOCK(os.lstat(d / "sock").st_mode)
    finally:
        s.close()
    os.unlink(d / "sock")


def test_errors(d, nobody):
    (d / "file").write_bytes(b"")
    assert errno_of(os.mknod, d / "file", stat.S_IFIFO | 0o644) == "EEXIST"
    assert errno_of(os.mknod, d / "missing" / "x", stat.S_IFIFO | 0o644) == "ENOENT"
    assert errno_of(os.mknod, d / "file" / "x", stat.S_IFIFO | 0o644) == "ENOTDIR"
    assert errno_of(os.mknod, d / ("n" * 256), stat.S_IFIFO | 0o644) == "ENAMETOOLONG"
    assert errno_of(os.mknod, d / "x", stat.S_IFDIR | 0o755) == "EPERM"  # Linux: use mkdir
    assert errno_of(os.mknod, d / "x", 0o170644) == "EINVAL"  # no such file type
    assert nobody("os.mknod(V['p'], 0o10600)", p=d / "fifo") == "EACCES"  # root's directory, 0755
    if KEEPS_DIR_METADATA:  # a directory anyone may write to (SeaweedFS cannot keep its mode)
        os.mkdir(d / "open", 0o777)
        os.chmod(d / "open", 0o777)
        assert nobody("os.mknod(V['p'], 0o20600, os.makedev(1, 3))", p=d / "open" / "dev") == "EPERM"  # CAP_MKNOD
        assert nobody("os.mknod(V['p'], 0o10600)", p=d / "open" / "fifo") == "ok"
        assert os.lstat(d / "open" / "fifo").st_uid == 65534
