"""link(2): a bucket cannot hold two names for one object. Known limit: EPERM (SEMANTICS.md)."""

from __future__ import annotations

import os

from tests.fsgateway.conformance.posix import errno_of
from tests.support.s3 import user_keys


def test_hard_link_is_eperm_and_changes_nothing(d, conformance_mount, s3):
    (d / "f").write_bytes(b"1")
    before = os.stat(d / "f")
    assert errno_of(os.link, d / "f", d / "g") == "EPERM"
    assert not (d / "g").exists()
    after = os.stat(d / "f")
    assert after.st_nlink == 1 and after.st_ctime_ns == before.st_ctime_ns
    assert user_keys(s3, conformance_mount.bucket, f"{d.name}/") == [f"{d.name}/", f"{d.name}/f"]


def test_errors_decided_before_the_limit(d):
    (d / "f").write_bytes(b"1")
    (d / "g").write_bytes(b"2")
    os.mkdir(d / "dir")
    assert errno_of(os.link, d / "missing", d / "x") == "ENOENT"
    assert errno_of(os.link, d / "f", d / "g") == "EEXIST"
    assert errno_of(os.link, d / "dir", d / "dir2") == "EPERM"  # never for directories
    assert errno_of(os.link, d / "f", d / "missing" / "x") == "ENOENT"
    assert errno_of(os.link, d / "f", "/tmp/fsg-cross-device-link") == "EXDEV"
