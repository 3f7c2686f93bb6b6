"""The gateway's own keys, in one place: where each daemon keeps what no user may see or touch.

Every daemon works below a prefix (the mount's `BUCKET:/PREFIX`, the
checker's and syncd's `prefix`), and each keeps its private objects in a
`.fsgateway/` folder at the top of its prefix:

    <prefix>.fsgateway/staging/<host-id>/...   the mount's streamed uploads (prefix "" today)
    <prefix>.fsgateway/feed/...                the change feed journal (prefix "" today)
    <prefix>.fsgateway/checker/<package-id>    the checker's copy of a payload being hashed

Daemons with different prefixes share one bucket, so a mount cannot know at
which depth another daemon's reserved folder sits: a folder named
`.fsgateway` is therefore reserved at every depth. The mount hides it and
refuses to create, write, rename or remove anything in it; syncd never
copies it. Pure functions, no imports of the mount.
"""

from __future__ import annotations

RESERVED_NAME = ".fsgateway"


def root(prefix: str = "") -> str:
    """The reserved folder of a daemon working below `prefix` ("" or ending with `/`)."""
    return f"{prefix}{RESERVED_NAME}/"


def mount_staging(prefix: str = "") -> str:
    """Where a mount streams uploads before they are committed (one folder per host below it)."""
    return root(prefix) + "staging/"


def feed(prefix: str = "") -> str:
    """The change feed journal: written by the mounts and the checker, read by syncd."""
    return root(prefix) + "feed/"


def checker_staging(prefix: str) -> str:
    """The folder of the checker's private copies of payloads being hashed."""
    return root(prefix) + "checker/"


def checker_staging_key(prefix: str, package_id: str) -> str:
    return checker_staging(prefix) + package_id


def is_reserved_name(name: str) -> bool:
    """Whether a directory entry of that name is the gateway's (at any depth)."""
    return name == RESERVED_NAME


def is_reserved(key: str) -> bool:
    """Whether a key lies in any daemon's reserved folder, whatever its prefix."""
    return key.startswith(RESERVED_NAME + "/") or f"/{RESERVED_NAME}/" in key
