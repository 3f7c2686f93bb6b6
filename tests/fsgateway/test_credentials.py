"""Unit tests of the passwd file rules."""

from __future__ import annotations

import os

import pytest

from fsgateway.store import credentials


def test_passwd_parsing_prefers_bucket_line():
    text = "# c\nAK:SK\nother:A2:S2\nbkt:A3:S3\n"
    assert credentials.parse_passwd(text, "bkt") == credentials.Keys("A3", "S3")
    assert credentials.parse_passwd(text, "x") == credentials.Keys("AK", "SK")
    with pytest.raises(credentials.CredentialsError):
        credentials.parse_passwd("only-one-field\n", "bkt")


def test_passwd_file_must_be_private_and_secret_never_printed(tmp_path):
    p = tmp_path / "pw"
    p.write_text("AKIAEXAMPLE:supersecret\n")
    p.chmod(0o640)
    with pytest.raises(credentials.CredentialsError, match="group/other"):
        credentials.read_passwd_file(str(p), "b")
    os.chmod(p, 0o600)
    keys = credentials.read_passwd_file(str(p), "b")
    assert "supersecret" not in repr(keys)
