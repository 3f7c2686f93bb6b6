"""chown(2) and lchown: owner and group stored, ctime moves; only root may give files away."""

from __future__ import annotations

import os
import stat

from tests.fsgateway.conformance.posix import KEEPS_DIR_METADATA, errno_of


def test_owner_and_group_stored_and_ctime_moves(d, conformance_mount, s3):
    (d / "f").write_bytes(b"x")
    before = os.stat(d / "f")
    os.chown(d / "f", 1234, 5678)
    after = os.stat(d / "f")
    assert (after.st_uid, after.st_gid) == (1234, 5678)
    assert after.st_ctime_ns > before.st_ctime_ns and after.st_mtime_ns == before.st_mtime_ns
    meta = s3.head_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/f")["Metadata"]
    assert (meta["uid"], meta["gid"]) == ("1234", "5678")
    os.chown(d / "f", -1, 42)  # -1 keeps that one
    assert (os.stat(d / "f").st_uid, os.stat(d / "f").st_gid) == (1234, 42)


def test_lchown_changes_the_link_not_its_target(d):
    (d / "t").write_bytes(b"x")
    os.symlink("t", d / "l")
    os.lchown(d / "l", 77, 88)
    assert (os.lstat(d / "l").st_uid, os.lstat(d / "l").st_gid) == (77, 88)
    assert os.stat(d / "t").st_uid == os.getuid()
    assert stat.S_ISLNK(os.lstat(d / "l").st_mode) and os.readlink(d / "l") == "t"


def test_directory_owner_is_stored_or_refused(d):
    os.mkdir(d / "sub")
    if KEEPS_DIR_METADATA:
        os.chown(d / "sub", 1234, 1234)
        assert os.stat(d / "sub").st_uid == 1234
    else:
        assert errno_of(os.chown, d / "sub", 1234, 1234) == "EPERM"
        assert os.stat(d / "sub").st_uid == os.getuid()


def test_errors(d, nobody):
    (d / "file").write_bytes(b"")
    os.symlink("loop", d / "loop")
    assert errno_of(os.chown, d / "missing", 1, 1) == "ENOENT"
    assert errno_of(os.chown, d / "file" / "x", 1, 1) == "ENOTDIR"
    assert errno_of(os.chown, d / "loop", 1, 1) == "ELOOP"
    assert errno_of(os.chown, d / ("n" * 256), 1, 1) == "ENAMETOOLONG"
    assert nobody("os.chown(V['p'], 65534, 65534)", p=d / "file") == "EPERM"  # root's file
    os.chown(d / "file", 65534, 65534)
    assert nobody("os.chown(V['p'], 0, -1)", p=d / "file") == "EPERM"  # cannot give it away
    assert nobody("os.chown(V['p'], 0, 0)", p=d / "file") == "EPERM"  # nor to a group it is not in
    assert nobody("os.chown(V['p'], -1, -1)", p=d / "file") == "ok"
    assert os.stat(d / "file").st_uid == 65534
