"""The on-bucket format s3fs-fuse writes, read leniently and written exactly.

Objects carry POSIX attributes in user metadata (`x-amz-meta-mode` as the
decimal full st_mode, `uid`, `gid`, `mtime`, `atime`, `ctime` as `sec` or
`sec.nnnnnnnnn`), directories are zero-byte `name/` objects with Content-Type
`application/x-directory`, symlinks keep their target as the body, FIFOs,
sockets and devices are empty objects whose mode carries the type (s3fs's
mknod), and extended attributes are s3fs's `use_xattr` header `xattr`. Buckets
written by s3fs, rclone, the AWS CLI or anything else must read correctly, so
decoding accepts octal modes, float mtimes and missing metadata.

Pure functions only: no I/O, so the rules are tested directly.
"""

from __future__ import annotations

import base64
import binascii
import json
import stat
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, unquote

DIR_CONTENT_TYPE = "application/x-directory"
FILE_CONTENT_TYPE = "application/octet-stream"
SYMLINK_CONTENT_TYPE = "application/octet-stream"
#: Our own end-to-end checksum of the whole object (hex SHA-256), stored as metadata.
SHA256_META = "fsg-sha256"
#: s3fs's `use_xattr` header: URL-encoded JSON object of name -> base64 value.
XATTR_META = "xattr"
#: Device number of a character or block device (s3fs itself keeps none; it ignores this).
RDEV_META = "rdev"
#: AWS's limit on user metadata (keys and values, UTF-8 bytes); RGW and SeaweedFS allow more.
METADATA_LIMIT = 2048

S_IFMT_KINDS = (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK)
SPECIAL_KINDS = (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK)

Xattrs = tuple[tuple[str, bytes], ...]  # sorted by name, so equal sets compare equal


@dataclass(frozen=True)
class Attrs:
    """POSIX attributes of one entry, as stored in (or derived from) the bucket."""

    mode: int  # full st_mode: type bits and permission bits
    uid: int
    gid: int
    mtime_ns: int
    size: int = 0
    atime_ns: int = -1  # -1: the same as mtime_ns
    ctime_ns: int = -1  # -1: the same as mtime_ns
    rdev: int = 0
    xattrs: Xattrs = ()

    def __post_init__(self) -> None:
        if self.atime_ns < 0:
            object.__setattr__(self, "atime_ns", self.mtime_ns)
        if self.ctime_ns < 0:
            object.__setattr__(self, "ctime_ns", self.mtime_ns)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


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


def _parse_rdev(text: str | None) -> int:
    try:
        value = int(text) if text is not None else 0
    except ValueError:
        return 0
    return value if 0 <= value < 2**64 else 0


def encode_xattrs(xattrs: Xattrs) -> str:
    """s3fs's format: `{"user.a":"<base64>",...}`, URL-encoded as its urlEncodePath does."""
    body = ",".join(f'{json.dumps(name, ensure_ascii=False)}:"{base64.b64encode(value).decode()}"'
                    for name, value in xattrs)
    return quote("{" + body + "}", safe="/")


def decode_xattrs(text: str | None) -> Xattrs:
    """Attributes from an `xattr` header; an unreadable header or entry is skipped, never fatal."""
    if not text:
        return ()
    try:
        obj = json.loads(unquote(text))
    except ValueError:
        return ()
    if not isinstance(obj, dict):
        return ()
    out: dict[str, bytes] = {}
    for name, value in obj.items():
        if isinstance(value, str):
            try:
                out[name] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
    return tuple(sorted(out.items()))


def encode_metadata(attrs: Attrs, sha256: str | None = None) -> dict[str, str]:
    """boto3 `Metadata` for an object; keys get the `x-amz-meta-` prefix on the wire."""
    meta = {
        "mode": str(attrs.mode),
        "uid": str(attrs.uid),
        "gid": str(attrs.gid),
        "mtime": format_mtime(attrs.mtime_ns),
        "atime": format_mtime(attrs.atime_ns),
        "ctime": format_mtime(attrs.ctime_ns),
    }
    if attrs.rdev:
        meta[RDEV_META] = str(attrs.rdev)
    if attrs.xattrs:
        meta[XATTR_META] = encode_xattrs(attrs.xattrs)
    if sha256:
        meta[SHA256_META] = sha256
    return meta


def metadata_size(meta: dict[str, str]) -> int:
    """Bytes of user metadata as AWS counts them against METADATA_LIMIT."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())


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
    modified_ns = int(last_modified.timestamp() * 1_000_000_000) if last_modified else None
    mtime_ns = parse_mtime(meta.get("mtime"))
    if mtime_ns is None:
        mtime_ns = modified_ns or 0
    # s3fs before 1.91 wrote no atime/ctime; like s3fs, fall back to Last-Modified
    atime_ns = parse_mtime(meta.get("atime"))
    ctime_ns = parse_mtime(meta.get("ctime"))
    fallback = mtime_ns if modified_ns is None else modified_ns
    uid = _parse_id(meta.get("uid"))
    gid = _parse_id(meta.get("gid"))
    return Attrs(
        mode=mode,
        uid=defaults.uid if uid is None else uid,
        gid=defaults.gid if gid is None else gid,
        mtime_ns=mtime_ns,
        size=0 if kind == stat.S_IFDIR else size,
        atime_ns=fallback if atime_ns is None else atime_ns,
        ctime_ns=fallback if ctime_ns is None else ctime_ns,
        rdev=_parse_rdev(meta.get(RDEV_META)) if kind in (stat.S_IFCHR, stat.S_IFBLK) else 0,
        xattrs=decode_xattrs(meta.get(XATTR_META)),
    )
