"""Unit tests of the on-bucket format (pure logic)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime

import pytest

from fsgateway.formats.s3format import (
    Attrs,
    Defaults,
    decode_attrs,
    decode_xattrs,
    encode_metadata,
    encode_xattrs,
    format_mtime,
    parse_mode,
    parse_mtime,
)

D = Defaults(uid=1000, gid=1000, umask=0o022)
T = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("33188", 0o100644), ("0644", 0o644), ("0o100600", 0o100600), ("16877", 0o40755),
    ("", None), ("abc", None), ("-1", None), ("99999999", None),
])
def test_parse_mode(text, expected):
    assert parse_mode(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("1500000000", 1_500_000_000_000_000_000),
    ("1500000000.5", 1_500_000_000_500_000_000),
    ("1500000000.123456789", 1_500_000_000_123_456_789),
    ("1500000000.1234567891", 1_500_000_000_123_456_789),
    ("1.5e9", 1_500_000_000_000_000_000),
    ("nope", None), ("-5", None), (None, None), ("1e999", None), ("-1e5", None), ("99999999999999", None),
])
def test_parse_mtime(text, expected):
    assert parse_mtime(text) == expected


def test_mtime_round_trip_is_exact():
    for ns in (0, 1, 1_600_000_000_000_000_000, 1_600_000_000_000_000_001):
        assert parse_mtime(format_mtime(ns)) == ns
    assert format_mtime(1_600_000_000_000_000_000) == "1600000000"


def test_encode_is_s3fs_decimal_mode():
    meta = encode_metadata(Attrs(0o100640, 7, 8, 1_600_000_000_250_000_000, ctime_ns=1_700_000_000_000_000_000),
                           sha256="ab")
    assert meta == {"mode": "33184", "uid": "7", "gid": "8", "mtime": "1600000000.250000000",
                    "atime": "1600000000.250000000", "ctime": "1700000000", "fsg-sha256": "ab"}


def test_decode_without_metadata_uses_defaults_and_last_modified():
    a = decode_attrs(None, is_dir_key=False, content_type=None, size=5, last_modified=T, defaults=D)
    assert a == Attrs(0o100644, 1000, 1000, int(T.timestamp()) * 10**9, 5)


def test_decode_directory_by_key_shape_or_content_type():
    for kw in ({"is_dir_key": True, "content_type": None}, {"is_dir_key": False,
                                                            "content_type": "application/x-directory"}):
        a = decode_attrs({}, size=0, last_modified=T, defaults=D, **kw)
        assert stat.S_ISDIR(a.mode) and a.size == 0


def test_decode_mode_without_type_bits_gets_type_from_key():
    a = decode_attrs({"mode": "0700"}, is_dir_key=True, content_type=None, size=0, last_modified=T, defaults=D)
    assert a.mode == stat.S_IFDIR | 0o700


def test_decode_symlink_and_bad_ids():
    a = decode_attrs({"Mode": str(stat.S_IFLNK | 0o777), "uid": "x", "gid": "-3"}, is_dir_key=False,
                     content_type=None, size=4, last_modified=T, defaults=D)
    assert stat.S_ISLNK(a.mode) and (a.uid, a.gid) == (1000, 1000)


def test_xattrs_in_s3fs_use_xattr_format():
    """Byte for byte what s3fs 1.90 stored for `setfattr -n user.foo -v 'hello w/+'` (seen on RGW)."""
    s3fs_value = "%7B%22user.foo%22%3A%22aGVsbG8gdy8r%22%7D"
    assert encode_xattrs((("user.foo", b"hello w/+"),)) == s3fs_value
    assert decode_xattrs(s3fs_value) == (("user.foo", b"hello w/+"),)
    both = (("user.a", b"\x00\xff?/"), ("user.é \"q\"", b""))
    assert decode_xattrs(encode_xattrs(both)) == both


@pytest.mark.parametrize("text", ["", "%7B", "not json", "%5B1%5D", "%7B%22user.x%22%3A%22%25%25%22%7D",
                                  "%7B%22user.x%22%3A5%7D"])
def test_unreadable_xattr_headers_are_skipped(text):
    assert decode_xattrs(text) == ()


def test_atime_ctime_rdev_xattrs_round_trip():
    a = Attrs(stat.S_IFCHR | 0o600, 1, 2, 1_600_000_000_000_000_001, atime_ns=1_500_000_000_000_000_002,
              ctime_ns=1_700_000_000_000_000_003, rdev=0x103, xattrs=(("user.k", b"v"),))
    meta = encode_metadata(a)
    assert meta["rdev"] == str(0x103) and meta["xattr"]
    assert decode_attrs(meta, is_dir_key=False, content_type=None, size=0, last_modified=T, defaults=D) == a


@pytest.mark.parametrize("kind", [stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK])
def test_special_files_keep_their_type(kind):
    """As s3fs's mknod stores them: decimal mode with the type bits, no body (seen from s3fs 1.90)."""
    a = decode_attrs({"mode": str(kind | 0o644)}, is_dir_key=False, content_type="application/octet-stream",
                     size=0, last_modified=T, defaults=D)
    assert stat.S_IFMT(a.mode) == kind and a.rdev == 0


def test_old_objects_without_atime_ctime_use_last_modified_like_s3fs():
    a = decode_attrs({"mtime": "1500000000"}, is_dir_key=False, content_type=None, size=0, last_modified=T,
                     defaults=D)
    assert a.mtime_ns == 1_500_000_000 * 10**9
    assert a.atime_ns == a.ctime_ns == int(T.timestamp()) * 10**9
    assert Attrs(0o100644, 0, 0, 5).atime_ns == Attrs(0o100644, 0, 0, 5).ctime_ns == 5
