"""Mapping between object keys and file names, and the keys that cannot be names.

A bucket may hold keys no POSIX name can represent (`a//b`, `..`, over-long
components, invalid UTF-8, a file `x` beside a directory `x/`). They are
reported with a reason — counted and logged by the caller — and never break a
listing. Pure functions only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from fsgateway.formats import reserved

NAME_MAX = 255
#: S3's limit on a whole key, in UTF-8 bytes.
KEY_MAX = 1024
#: Where the mount streams uploads before they are committed (see reserved.py).
STAGING_PREFIX = reserved.mount_staging()


class Unmappable(Exception):
    """A key that cannot be shown as a file name; `reason` is a metric label."""

    def __init__(self, reason: str, key: str) -> None:
        super().__init__(f"{reason}: {key!r}")
        self.reason = reason
        self.key = key


def name_problem(name: bytes) -> str | None:
    """Why `name` cannot be a directory entry, or None if it can."""
    if not name:
        return "empty_component"
    if name in (b".", b".."):
        return "dot_component"
    if b"\0" in name:
        return "nul_byte"
    if len(name) > NAME_MAX:
        return "name_too_long"
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    return None


class Keyed(Protocol):
    """A listing entry (the store's `ListEntry`): all this module needs of it is its key."""

    @property
    def key(self) -> str: ...


E = TypeVar("E", bound=Keyed)


@dataclass
class Listing(Generic[E]):
    """One page of a delimited listing, split into names and rejected keys."""

    files: dict[str, E] = field(default_factory=dict)  # name -> listing entry
    dirs: set[str] = field(default_factory=set)
    dir_markers: set[str] = field(default_factory=set)  # dirs that have a `name/` object
    rejected: list[Unmappable] = field(default_factory=list)


def split_listing(
    prefix: str, objects: Iterable[E], common_prefixes: list[str], *, hide_reserved: bool
) -> Listing[E]:
    """Names of one directory from a delimited listing under `prefix` (ends with `/` or is "").

    `objects` are listing entries with already-decoded keys.
    With `hide_reserved`, the gateway's reserved folder is left out at any depth.
    A directory shadows a file of the same name (as in mountpoint-s3); the file
    is reported as `shadowed_by_directory`.
    """
    out: Listing[E] = Listing()
    for cp in common_prefixes:
        rest = cp[len(prefix) :]
        name = rest[:-1]
        if hide_reserved and reserved.is_reserved_name(name):
            continue
        problem = name_problem(name.encode("utf-8", "surrogateescape"))
        if problem:
            out.rejected.append(Unmappable(problem, cp))
        else:
            out.dirs.add(name)
    for obj in objects:
        key = obj.key
        name = key[len(prefix) :]
        if name == "":
            continue  # the directory's own marker object
        if name.endswith("/"):
            # A `name/` marker is listed as an object only without a delimiter hit; treat as dir.
            base = name[:-1]
            if hide_reserved and reserved.is_reserved_name(base):
                continue
            if "/" not in base and not name_problem(base.encode()):
                out.dirs.add(base)
                out.dir_markers.add(base)
            continue
        problem = name_problem(name.encode("utf-8", "surrogateescape"))
        if problem:
            out.rejected.append(Unmappable(problem, key))
            continue
        out.files[name] = obj
    for name in list(out.files):
        if name in out.dirs:
            out.rejected.append(Unmappable("shadowed_by_directory", prefix + name))
            del out.files[name]
    return out
