"""chmod(2): the mode is stored, ctime moves and mtime does not; directories per server; every errno."""

from __future__ import annotations

import os
import stat

from fsgateway.formats.s3format import parse_mtime
from tests.fsgateway.conformance.posix import KEEPS_DIR_METADATA, errno_of


def test_file_mode_stored_and_ctime_moves(d, conformance_mount, s3):
    (d / "f").write_bytes(b"x")
    before = os.stat(d / "f")
    os.chmod(d / "f", 0o4751)
    after = os.stat(d / "f")
    assert after.st_mode == stat.S_IFREG | 0o4751
    assert after.st_ctime_ns > before.st_ctime_ns and after.st_mtime_ns == before.st_mtime_ns
    meta = s3.head_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/f")["Metadata"]
    assert int(meta["mode"]) == stat.S_IFREG | 0o4751
    assert parse_mtime(meta["ctime"]) // 1000 == after.st_ctime_ns // 1000  # exact: no float


def test_chmod_through_a_symlink_changes_the_target(d):
    (d / "t").write_bytes(b"x")
    os.symlink("t", d / "l")
    os.chmod(d / "l", 0o600)
    assert stat.S_IMODE(os.stat(d / "t").st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(d / "l").st_mode) == 0o777


def test_directory_mode_is_stored_or_refused(d, conformance_mount, s3):
    os.mkdir(d / "sub")
    if KEEPS_DIR_METADATA:
        os.chmod(d / "sub", 0o700)
        assert stat.S_IMODE(os.stat(d / "sub").st_mode) == 0o700
        assert int(s3.head_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/sub/")["Metadata"]["mode"]) \
            == stat.S_IFDIR | 0o700
    else:
        assert errno_of(os.chmod, d / "sub", 0o700) == "EPERM"
        assert stat.S_IMODE(os.stat(d / "sub").st_mode) == 0o755
        os.chmod(d / "sub", 0o755)  # what the server shows anyway: nothing to refuse


def test_errors(d, nobody):
    (d / "file").write_bytes(b"")
    os.symlink("loop", d / "loop")
    assert errno_of(os.chmod, d / "missing", 0o600) == "ENOENT"
    assert errno_of(os.chmod, d / "file" / "x", 0o600) == "ENOTDIR"
    assert errno_of(os.chmod, d / "loop", 0o600) == "ELOOP"
    assert errno_of(os.chmod, d / ("n" * 256), 0o600) == "ENAMETOOLONG"
    assert nobody("os.chmod(V['p'], 0o777)", p=d / "file") == "EPERM"
    assert stat.S_IMODE(os.stat(d / "file").st_mode) != 0o777
    os.chown(d / "file", 65534, 65534)
    assert nobody("os.chmod(V['p'], 0o600)", p=d / "file") == "ok"  # the owner may
    assert stat.S_IMODE(os.stat(d / "file").st_mode) == 0o600


def test_mount_root_has_no_object_to_keep_attributes(conformance_mount):
    root = conformance_mount.path
    mode = stat.S_IMODE(os.stat(root).st_mode)
    os.chmod(root, mode)  # what it shows already: nothing to store
    assert errno_of(os.chmod, root, 0o700) == "EPERM"
    assert errno_of(os.utime, root, ns=(1, 1)) == "EPERM"
    assert stat.S_IMODE(os.stat(root).st_mode) == mode
