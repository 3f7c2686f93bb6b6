"""Extended attributes: `user.*` stored with the object in s3fs's use_xattr format; the gateway's own read-only."""

from __future__ import annotations

import errno
import os
import struct
from urllib.parse import unquote

import pytest

from tests.fsgateway.conformance.posix import KEEPS_DIR_METADATA


def _errno(fn, *args) -> int:
    with pytest.raises(OSError) as e:
        fn(*args)
    return e.value.errno


def test_set_list_get_remove_stored_like_s3fs(mount, s3, mounter):
    p = mount.path / "f"
    p.write_bytes(b"content")
    os.setxattr(p, "user.origin", b"build-42")
    os.setxattr(p, "user.bin", bytes(range(256)))
    assert os.getxattr(p, "user.origin") == b"build-42"
    assert os.getxattr(p, "user.bin") == bytes(range(256))
    assert {"user.origin", "user.bin", "user.fsgateway.key", "user.fsgateway.sha256"} <= set(os.listxattr(p))
    raw = s3.head_object(Bucket=mount.bucket, Key="f")["Metadata"]["xattr"]
    assert unquote(raw).startswith('{"user.bin":"AAECAwQF') and '"user.origin":"YnVpbGQtNDI="' in unquote(raw)
    with open(p, "ab") as f:  # a rewrite of the content keeps them
        f.write(b" more")
    os.rename(p, mount.path / "g")  # and so does a rename
    other = mounter().start(mount.bucket)
    assert os.getxattr(other / "g", "user.origin") == b"build-42"
    os.removexattr(mount.path / "g", "user.origin")
    assert "user.origin" not in os.listxattr(mount.path / "g")
    assert "user.origin" not in unquote(s3.head_object(Bucket=mount.bucket, Key="g")["Metadata"]["xattr"])
    assert _errno(os.getxattr, mount.path / "g", "user.origin") == errno.ENODATA
    assert (mount.path / "g").read_bytes() == b"content more"


def test_flags_limits_and_namespaces(mount):
    p = mount.path / "f"
    p.write_bytes(b"")
    os.setxattr(p, "user.a", b"1")
    assert _errno(os.setxattr, p, "user.a", b"2", os.XATTR_CREATE) == errno.EEXIST
    assert _errno(os.setxattr, p, "user.b", b"2", os.XATTR_REPLACE) == errno.ENODATA
    assert _errno(os.removexattr, p, "user.b") == errno.ENODATA
    assert _errno(os.setxattr, p, "user.big", b"x" * 3000) == errno.ENOSPC  # S3 keeps 2 KiB of metadata
    assert _errno(os.setxattr, p, "user.fsgateway.sha256", b"forged") == errno.EPERM
    assert _errno(os.removexattr, p, "user.fsgateway.key") == errno.EPERM
    assert _errno(os.setxattr, p, "trusted.x", b"1") == errno.ENOTSUP
    assert _errno(os.setxattr, p, "security.x", b"1") == errno.ENOTSUP
    assert os.getxattr(p, "user.a") == b"1"


def test_posix_acls_are_not_supported(mount):
    """What `setfacl -m u:nobody:r` writes (acl(5) xattr format, version 2): refused, the mode bits rule."""
    p = mount.path / "f"
    p.write_bytes(b"")
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, 65534), (0x04, 4, 0xFFFFFFFF), (0x10, 4, 0xFFFFFFFF),
               (0x20, 4, 0xFFFFFFFF)]  # user::rw- user:nobody:r-- group::r-- mask::r-- other::r--
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    assert _errno(os.setxattr, p, "system.posix_acl_access", acl) == errno.EOPNOTSUPP
    assert _errno(os.getxattr, p, "system.posix_acl_access") == errno.ENODATA  # no ACL: plain mode bits


def test_directory_xattrs_stored_or_refused(mount, s3):
    (mount.path / "d").mkdir()
    if KEEPS_DIR_METADATA:
        os.setxattr(mount.path / "d", "user.k", b"v")
        assert os.getxattr(mount.path / "d", "user.k") == b"v"
        assert "xattr" in s3.head_object(Bucket=mount.bucket, Key="d/")["Metadata"]
    else:
        assert _errno(os.setxattr, mount.path / "d", "user.k", b"v") == errno.ENOTSUP
        assert "user.k" not in os.listxattr(mount.path / "d")
