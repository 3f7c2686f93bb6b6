"""The on-bucket format s3fs-fuse writes, read leniently and written exactly.

Objects carry POSIX attributes in user metadata (`x-amz-meta-mode` as the
decimal full st_mode, `uid`, `gid`, `mtime` as `sec` or `sec.nnnnnnnnn`),
directories are zero-byte `name/` objects with Content-Type
`application/x-directory`, and symlinks keep their target as the body. Buckets
written by s3fs, rclone, the AWS CLI or anything else must read correctly, so
decoding accepts octal modes, float mtimes and missing metadata.

Pure functions only: no I/O, so the rules are tested directly.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from datetime import datetime

DIR_CONTENT_TYPE = "application/x-directory"
FILE_CONTENT_TYPE = "application/octet-stream"
SYMLINK_CONTENT_TYPE = "application/octet-stream"
#: Our own end-to-end checksum of the whole object (hex SHA-256), stored as metadata.
SHA256_META = "fsg-sha256"

S_IFMT_KINDS = (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)


@dataclass(frozen=True)
class Attrs:
    """POSIX attributes of one entry, as stored in (or derived from) the bucket."""

    mode: int  # full st_mode: type bits and permission bits
    uid: int
    gid: int
    mtime_ns: int
    size: int = 0

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)


@dataclass(frozen=True)
class Defaults:
    """What an entry gets when the bucket says nothing (objects from other tools)."""

    uid: int
    gid: int
    umask: int = 0o022

    def mode(self, kind: int) -> int:
        perm = 0o777 if kind in (stat.S_IFDIR, stat.S_IFLNK) else 0o666
        return kind | (perm & ~self.umask if kind != stat.S_IFLNK else 0o777)


def format_mtime(mtime_ns: int) -> str:
    """`sec.nnnnnnnnn`, which s3fs (>= 1.87) and rclone both read."""
    sec, nsec = divmod(mtime_ns, 1_000_000_000)
    return f"{sec}.{nsec:09d}" if nsec else str(sec)


def parse_mtime(text: str | None) -> int | None:
    """Nanoseconds from `sec`, `sec.frac` or a float; None when unreadable."""
    if not text:
        return None
    text = text.strip()
    sec_text, _, frac = text.partition(".")
    try:
        if "e" in text.lower():
            value = float(text)
            return int(value * 1_000_000_000) if 0 <= value < 2**33 else None
        sec = int(sec_text or "0")
        nsec = int((frac + "000000000")[:9]) if frac else 0
    except ValueError:
        return None
    if not 0 <= sec < 2**33:  # beyond year 2242: not a real mtime
        return None
    return sec * 1_000_000_000 + nsec


def parse_mode(text: str | None) -> int | None:
    """st_mode from decimal (s3fs) or, leniently, octal (`0644`, `0o100644`)."""
    if not text:
        return None
    text = text.strip()
    try:
        if text.lower().startswith("0o"):
            value = int(text[2:], 8)
        elif len(text) > 1 and text.startswith("0"):
            value = int(text, 8)
        else:
            value = int(text, 10)
    except ValueError:
        return None
    if value < 0 or value > 0o177777:
        return None
    return value


def _parse_id(text: str | None) -> int | None:
    try:
        value = int(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value < 2**32 else None


def encode_metadata(attrs: Attrs, sha256: str | None = None) -> dict[str, str]:
    """boto3 `Metadata` for an object; keys get the `x-amz-meta-` prefix on the wire."""
    meta = {
        "mode": str(attrs.mode),
        "uid": str(attrs.uid),
        "gid": str(attrs.gid),
        "mtime": format_mtime(attrs.mtime_ns),
    }
    if sha256:
        meta[SHA256_META] = sha256
    return meta


def content_type_for(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return DIR_CONTENT_TYPE
    return SYMLINK_CONTENT_TYPE if stat.S_ISLNK(mode) else FILE_CONTENT_TYPE


def decode_attrs(
    metadata: dict[str, str] | None,
    *,
    is_dir_key: bool,
    content_type: str | None,
    size: int,
    last_modified: datetime | None,
    defaults: Defaults,
) -> Attrs:
    """Attributes of an object from its metadata, falling back to what the key says.

    The type comes from the key shape first (`name/` is a directory whatever the
    metadata claims), then from the stored mode, then the content type.
    """
    meta = {k.lower(): v for k, v in (metadata or {}).items()}
    mode = parse_mode(meta.get("mode"))
    if is_dir_key or (content_type or "").startswith(DIR_CONTENT_TYPE):
        kind = stat.S_IFDIR
    elif mode is not None and stat.S_IFMT(mode) in S_IFMT_KINDS:
        kind = stat.S_IFMT(mode)
    else:
        kind = stat.S_IFREG
    mode = defaults.mode(kind) if mode is None else kind | stat.S_IMODE(mode)
    mtime_ns = parse_mtime(meta.get("mtime"))
    if mtime_ns is None:
        mtime_ns = int(last_modified.timestamp() * 1_000_000_000) if last_modified else 0
    uid = _parse_id(meta.get("uid"))
    gid = _parse_id(meta.get("gid"))
    return Attrs(
        mode=mode,
        uid=defaults.uid if uid is None else uid,
        gid=defaults.gid if gid is None else gid,
        mtime_ns=mtime_ns,
        size=0 if kind == stat.S_IFDIR else size,
    )
