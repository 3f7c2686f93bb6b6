"""Helpers of the conformance suite."""

from __future__ import annotations

import ctypes
import errno
import os
import time
from collections.abc import Callable
from pathlib import Path

NOBODY = 65534
#: SeaweedFS drops user metadata on `dir/` objects: directory mode, owner and times stay the defaults.
KEEPS_DIR_METADATA = os.environ.get("S3_SERVER", "ceph") != "seaweedfs"

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def errno_of(fn: Callable[..., object], *args: object, **kwargs: object) -> str:
    """"ok", or the name of the errno `fn(*args)` fails with."""
    try:
        fn(*args, **kwargs)
    except OSError as e:
        return errno.errorcode[e.errno]
    return "ok"


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def utimensat(path: Path, atime: tuple[int, int], mtime: tuple[int, int], flags: int = 0) -> None:
    """utimensat(2) with (sec, nsec) pairs, so UTIME_NOW / UTIME_OMIT can be passed (os.utime cannot)."""
    times = (_Timespec * 2)(_Timespec(*atime), _Timespec(*mtime))
    if _libc.utimensat(AT_FDCWD, os.fsencode(path), times, flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(path))


def renameat2(src: Path, dst: Path, flags: int) -> None:
    if _libc.renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(src))


def ns(sec: int, nsec: int) -> int:
    return sec * 1_000_000_000 + nsec


def now_ns() -> int:
    return time.time_ns()
