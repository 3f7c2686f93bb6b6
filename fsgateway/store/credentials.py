"""Where the S3 keys come from: an s3fs-style passwd file, a profile, or boto3's chain.

The passwd file holds `ACCESS:SECRET` or `bucket:ACCESS:SECRET` lines; like
s3fs, a file that group or others can read is refused. Secrets never reach a
log line or a metric: only the access key id's last four characters are shown.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

S3FS_DEFAULT_FILES = ("~/.passwd-s3fs", "/etc/passwd-s3fs")


class CredentialsError(ValueError):
    """The one-line reason the credentials cannot be used."""


@dataclass(frozen=True)
class Keys:
    access_key: str
    secret_key: str

    def __repr__(self) -> str:  # never print the secret, even by accident
        return f"Keys(access_key='…{self.access_key[-4:]}')"


def parse_passwd(text: str, bucket: str) -> Keys:
    """The keys for `bucket` from passwd-file text; a bucket-specific line wins."""
    generic: Keys | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) == 2:
            generic = generic or Keys(parts[0], parts[1])
        elif len(parts) == 3:
            if parts[0] == bucket:
                return Keys(parts[1], parts[2])
        else:
            raise CredentialsError(f"passwd file line {lineno}: expected ACCESS:SECRET or BUCKET:ACCESS:SECRET")
    if generic is None:
        raise CredentialsError(f"passwd file has no keys for bucket {bucket!r}")
    return generic


def read_passwd_file(path: str, bucket: str) -> Keys:
    """Keys from a passwd file that only its owner can read."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError as exc:
        raise CredentialsError(f"passwd file {p}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise CredentialsError(f"passwd file {p} is not a regular file")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"passwd file {p} is accessible by group/other (mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it"
        )
    try:
        text = p.read_text()
    except OSError as exc:
        raise CredentialsError(f"passwd file {p}: {exc.strerror}") from exc
    return parse_passwd(text, bucket)


def resolve(passwd_file: str | None, profile: str | None, bucket: str, environ: dict[str, str]) -> Keys | None:
    """Explicit passwd file first, then boto3's chain (None), then the s3fs default files.

    None means "let boto3 find them" (env, profile, shared files, instance role).
    """
    if passwd_file:
        return read_passwd_file(passwd_file, bucket)
    if profile or environ.get("AWS_ACCESS_KEY_ID") or environ.get("AWS_PROFILE"):
        return None
    for candidate in S3FS_DEFAULT_FILES:
        if os.path.isfile(os.path.expanduser(candidate)):
            return read_passwd_file(candidate, bucket)
    return None
