"""symlink(2) and readlink(2): type, mode, size, owner, target stored as s3fs does; every errno."""

from __future__ import annotations

import os
import stat

from tests.fsgateway.conformance.posix import errno_of


def test_new_symlink(d, conformance_mount, s3):
    before = os.stat(d)
    os.symlink("../some/target", d / "l")
    st = os.lstat(d / "l")
    assert stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o777
    assert st.st_size == len("../some/target") and st.st_nlink == 1
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert os.readlink(d / "l") == "../some/target"
    assert os.stat(d).st_mtime_ns > before.st_mtime_ns
    obj = s3.get_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/l")
    assert obj["Body"].read() == b"../some/target" and stat.S_ISLNK(int(obj["Metadata"]["mode"]))


def test_following_a_symlink(d):
    os.mkdir(d / "real")
    (d / "real" / "f").write_bytes(b"via link")
    os.symlink("real", d / "l")
    assert (d / "l" / "f").read_bytes() == b"via link"
    assert stat.S_ISDIR(os.stat(d / "l").st_mode)


def test_errors(d, nobody):
    (d / "file").write_bytes(b"")
    os.symlink("a", d / "loop1")
    os.symlink("loop1", d / "a")
    assert errno_of(os.symlink, "x", d / "file") == "EEXIST"
    assert errno_of(os.symlink, "x", d / "missing" / "l") == "ENOENT"
    assert errno_of(os.symlink, "x", d / "file" / "l") == "ENOTDIR"
    assert errno_of(os.symlink, "x", d / ("n" * 256)) == "ENAMETOOLONG"
    assert errno_of(os.stat, d / "loop1") == "ELOOP"
    assert errno_of(os.readlink, d / "file") == "EINVAL"
    assert nobody("os.symlink('x', V['p'])", p=d / "byother") == "EACCES"
