"""mkdir(2): type, mode, owner, times and link counts of the new directory and its parent; every errno."""

from __future__ import annotations

import os
import stat

from tests.fsgateway.conformance.posix import KEEPS_DIR_METADATA, errno_of, now_ns


def test_new_directory_attributes_and_parent(d, conformance_mount, s3):
    before = os.stat(d)
    t0 = now_ns()
    os.mkdir(d / "sub", 0o755)
    st = os.stat(d / "sub")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert st.st_nlink == 2  # new and empty: ".", and its name in the parent
    # where markers keep no metadata, times come from Last-Modified (whole seconds) once stat_ttl passed
    assert st.st_atime_ns == st.st_mtime_ns == st.st_ctime_ns >= t0 - (0 if KEEPS_DIR_METADATA else 10**9)
    parent = os.stat(d)
    assert parent.st_nlink == before.st_nlink + 1  # the new ".." entry
    assert parent.st_mtime_ns > before.st_mtime_ns and parent.st_ctime_ns > before.st_ctime_ns
    key = f"{d.name}/sub/"
    assert s3.head_object(Bucket=conformance_mount.bucket, Key=key)["ContentType"] == "application/x-directory"


def test_private_mode_is_kept_or_refused(d, conformance_mount, s3):
    """A 0700 directory must never turn 0755 later: stored on RGW, refused (EPERM) where markers lose metadata."""
    if KEEPS_DIR_METADATA:
        os.mkdir(d / "private", 0o700)
        assert stat.S_IMODE(os.stat(d / "private").st_mode) == 0o700
        meta = s3.head_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/private/")["Metadata"]
        assert int(meta["mode"]) == stat.S_IFDIR | 0o700
    else:
        assert errno_of(os.mkdir, d / "private", 0o700) == "EPERM"
        assert not (d / "private").exists()


def test_subdirectory_count_in_link_count_after_listing(d):
    for name in ("a", "b", "c"):
        os.mkdir(d / name)
    (d / "f").write_bytes(b"")
    assert sorted(os.listdir(d)) == ["a", "b", "c", "f"]
    assert os.stat(d).st_nlink == 2 + 3
    os.rmdir(d / "b")
    assert os.stat(d).st_nlink == 2 + 2


def test_errors(d, nobody):
    (d / "file").write_bytes(b"")
    os.mkdir(d / "dir")
    os.symlink("dir", d / "link")
    os.symlink("loop", d / "loop")
    assert errno_of(os.mkdir, d / "file") == "EEXIST"
    assert errno_of(os.mkdir, d / "dir") == "EEXIST"
    assert errno_of(os.mkdir, d / "link") == "EEXIST"
    assert errno_of(os.mkdir, d / "missing" / "x") == "ENOENT"
    assert errno_of(os.mkdir, d / "file" / "x") == "ENOTDIR"
    assert errno_of(os.mkdir, d / ("n" * 256)) == "ENAMETOOLONG"
    assert errno_of(os.mkdir, d / "loop" / "x") == "ELOOP"
    assert nobody("os.mkdir(V['p'])", p=d / "byother") == "EACCES"  # d is root's, mode 0755
    assert not (d / "byother").exists()
