"""utimensat(2): atime and mtime stored apart (s3fs's x-amz-meta-atime), UTIME_NOW/UTIME_OMIT, ctime; errnos."""

from __future__ import annotations

import os

from tests.fsgateway.conformance.posix import (
    AT_SYMLINK_NOFOLLOW,
    KEEPS_DIR_METADATA,
    UTIME_NOW,
    UTIME_OMIT,
    errno_of,
    now_ns,
    ns,
    utimensat,
)

A = (1_500_000_000, 111_111_111)
M = (1_600_000_000, 222_222_222)
COARSE = 20_000_000  # the kernel's "now" comes from a coarse clock (a few ms behind time.time_ns)


def test_atime_and_mtime_stored_apart_to_the_nanosecond(d, conformance_mount, s3, mounter):
    (d / "f").write_bytes(b"x")
    before = os.stat(d / "f")
    utimensat(d / "f", A, M)
    st = os.stat(d / "f")
    assert (st.st_atime_ns, st.st_mtime_ns) == (ns(*A), ns(*M))
    assert st.st_ctime_ns > before.st_ctime_ns
    meta = s3.head_object(Bucket=conformance_mount.bucket, Key=f"{d.name}/f")["Metadata"]
    assert (meta["atime"], meta["mtime"]) == ("1500000000.111111111", "1600000000.222222222")
    other = mounter()  # a fresh mount reads them back from the bucket
    st2 = os.stat(other.start(conformance_mount.bucket) / d.name / "f")
    assert (st2.st_atime_ns, st2.st_mtime_ns, st2.st_ctime_ns) == (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)


def test_utime_now_and_omit(d):
    (d / "f").write_bytes(b"x")
    utimensat(d / "f", A, M)
    t0 = now_ns() - COARSE
    utimensat(d / "f", (0, UTIME_OMIT), (0, UTIME_NOW))
    st = os.stat(d / "f")
    assert st.st_atime_ns == ns(*A) and st.st_mtime_ns >= t0
    utimensat(d / "f", (0, UTIME_NOW), (0, UTIME_OMIT))
    st2 = os.stat(d / "f")
    assert st2.st_atime_ns >= t0 and st2.st_mtime_ns == st.st_mtime_ns
    before = os.stat(d / "f")
    utimensat(d / "f", (0, UTIME_OMIT), (0, UTIME_OMIT))  # nothing to change
    after = os.stat(d / "f")
    assert (after.st_atime_ns, after.st_mtime_ns) == (before.st_atime_ns, before.st_mtime_ns)


def test_symlink_times_with_nofollow(d):
    (d / "t").write_bytes(b"x")
    os.symlink("t", d / "l")
    utimensat(d / "l", A, M, AT_SYMLINK_NOFOLLOW)
    assert os.lstat(d / "l").st_mtime_ns == ns(*M)
    assert os.stat(d / "t").st_mtime_ns != ns(*M)


def test_directory_times_stored_or_refused(d):
    os.mkdir(d / "sub")
    if KEEPS_DIR_METADATA:
        utimensat(d / "sub", A, M)
        st = os.stat(d / "sub")
        assert (st.st_atime_ns, st.st_mtime_ns) == (ns(*A), ns(*M))
        (d / "sub" / "new").write_bytes(b"")  # an entry created afterwards moves it again
        assert os.stat(d / "sub").st_mtime_ns > ns(*M)
    else:
        assert errno_of(utimensat, d / "sub", A, M) == "EPERM"


def test_permissions(d, nobody):
    (d / "root644").write_bytes(b"")
    (d / "root666").write_bytes(b"")
    os.chmod(d / "root666", 0o666)
    (d / "mine").write_bytes(b"")
    os.chown(d / "mine", 65534, 65534)
    explicit = "os.utime(V['p'], ns=(1, 2))"
    now = "os.utime(V['p'])"
    assert nobody(explicit, p=d / "root666") == "EPERM"  # explicit times: the owner only
    assert nobody(now, p=d / "root644") == "EACCES"  # "now": the owner or a writer
    assert nobody(now, p=d / "root666") == "ok"
    assert nobody(explicit, p=d / "mine") == "ok"
    assert os.stat(d / "mine").st_mtime_ns == 2


def test_errors(d):
    os.symlink("loop", d / "loop")
    (d / "file").write_bytes(b"")
    assert errno_of(utimensat, d / "missing", A, M) == "ENOENT"
    assert errno_of(utimensat, d / "file" / "x", A, M) == "ENOTDIR"
    assert errno_of(utimensat, d / "loop", A, M) == "ELOOP"
    assert errno_of(utimensat, d / ("n" * 256), A, M) == "ENAMETOOLONG"
    assert errno_of(utimensat, d / "file", (0, 1_000_000_000), M) == "EINVAL"
