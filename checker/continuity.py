"""At start: the version database must know everything the bucket has published.

The database is the checker's memory of what was released (no downgrade, no
duplicate) and of the TUF version numbers. Lost, or restored from an older
copy, it would judge uploads against an old history: a version lower than one
devices run would pass, a published version could be released again with other
bytes, and new metadata would reuse version numbers devices have seen (they
refuse it as a rollback). So before serving, the checker reads the newest
`N.targets.json` in the bucket: every release it lists must be in the database
with the same bytes, or the checker refuses to start. Version numbers behind
the bucket's (a copy that missed only re-signs, or an interrupted publish) are
raised to the bucket's. Each builder-key revocation is also recorded in the
bucket (`keys/revoked/<keyid>.json`, by `fsgateway-fw key revoke` and by every
start for the ones the database has and the bucket lacks): a database that
authorises a key the bucket says is revoked was restored from before the
revocation, and the checker refuses it too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import Metadata, Targets, Timestamp

from .db import Database
from .rules import Release
from .signing import AuthorisedKey
from .tufrepo import METADATA, ONLINE_ROLES, target_path

_VERSIONED = re.compile(r"(\d+)\.(targets|snapshot)\.json")
_REVOCATION = re.compile(r"([0-9a-f]{64})\.json")
REVOKED = "keys/revoked/"  # under the checker's prefix: one object per revoked builder key
MAX_VERSION = 1 << 40  # a re-sign a second for 30,000 years; SQL's BIGINT holds it


@dataclass(frozen=True)
class Published:
    """What the bucket shows: the highest version of each online role, the newest targets' releases."""

    versions: dict[str, int]
    releases: dict[str, tuple[int, str]]  # target path -> (length, sha256); indexes left out


def unknown_releases(published: Published, releases: list[Release]) -> list[str]:
    """Target paths published with bytes the database does not hold as a release (what it judges against)."""
    known = {target_path(r): (r.length, r.sha256) for r in releases}
    return sorted(path for path, target in published.releases.items() if known.get(path) != target)


def revived(revoked: set[str], keys: dict[str, AuthorisedKey]) -> list[str]:
    """Keys recorded as revoked in the bucket that the database authorises."""
    return sorted(keyid for keyid in revoked if keyid in keys and not keys[keyid].revoked)


def behind(published: Published, counters: dict[str, int]) -> dict[str, int]:
    """Roles whose next version number in the database would be one the bucket has used: the bucket's."""
    return {role: v for role, v in published.versions.items() if v > counters.get(role, 0)}


def read_published(client: Any, bucket: str, metadata: str) -> Published:
    """The bucket's metadata under `metadata` (the prefix + metadata/); nothing published: empty.

    Signatures are not checked: this is the checker's own output, compared with its own memory. A
    forged file can make it refuse to start, or take version numbers up to MAX_VERSION (what a
    file's name or timestamp.json says): more than that is refused as unreadable.
    """
    versions: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=metadata):
        for obj in page.get("Contents", []):
            m = _VERSIONED.fullmatch(obj["Key"][len(metadata):])
            if m:
                versions[m.group(2)] = max(versions.get(m.group(2), 0), _version(obj["Key"], int(m.group(1))))
    timestamp = _get(client, bucket, metadata + "timestamp.json")
    if timestamp is not None:
        signed = Metadata.from_bytes(timestamp).signed
        if not isinstance(signed, Timestamp):
            raise ValueError(f"{metadata}timestamp.json is a {signed.type} document")
        versions["timestamp"] = _version(f"{metadata}timestamp.json", signed.version)
    if "targets" not in versions:
        return Published(versions, {})
    key = f"{metadata}{versions['targets']}.targets.json"
    data = _get(client, bucket, key)
    if data is None:
        raise ValueError(f"{key} vanished while it was read")
    targets = Metadata.from_bytes(data).signed
    if not isinstance(targets, Targets):
        raise ValueError(f"{key} is a {targets.type} document")
    releases = {path: (t.length, t.hashes.get("sha256", "")) for path, t in targets.targets.items()
                if path.count("/") > 1}  # <model>/<version>/<name>; <model>/index.json is derived from them
    return Published(versions, releases)


def _version(key: str, version: int) -> int:
    if not 0 < version <= MAX_VERSION:
        raise ValueError(f"{key} has version {version}, out of range")
    return version


def read_revoked(client: Any, bucket: str, prefix: str) -> set[str]:
    """The keyids recorded as revoked under `prefix` + REVOKED."""
    found: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + REVOKED):
        for obj in page.get("Contents", []):
            m = _REVOCATION.fullmatch(obj["Key"][len(prefix + REVOKED):])
            if m:
                found.add(m.group(1))
    return found


def record_revoked(client: Any, bucket: str, prefix: str, keyids: Iterable[str]) -> None:
    """Record revocations in the bucket (the same bytes however often: written again harmlessly)."""
    for keyid in keyids:
        client.put_object(Bucket=bucket, Key=f"{prefix}{REVOKED}{keyid}.json", ContentType="application/json",
                          Body=json.dumps({"keyid": keyid, "revoked": True}).encode())


def _get(client: Any, bucket: str, key: str) -> bytes | None:
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None


def check(client: Any, bucket: str, prefix: str, db: Database) -> str | None:
    """Why the checker must not start with `db`, or None (version numbers raised to the bucket's, the
    database's revocations recorded in the bucket)."""
    metadata = prefix + METADATA
    try:
        published = read_published(client, bucket, metadata)
        revoked = read_revoked(client, bucket, prefix)
    except (BotoCoreError, ClientError, RepositoryError, ValueError, KeyError) as exc:
        return f"cannot read the published repository under {bucket}/{prefix}: {exc}"
    keys = db.keys()
    back = revived(revoked, keys)
    if back:
        return (f"the version database authorises builder key {back[0]}, revoked in {bucket}/{prefix}{REVOKED}"
                f"{back[0]}.json: it was restored from a copy older than the revocation; restore its newest "
                "copy, or revoke the key again (fsgateway-fw key revoke)")
    unknown = unknown_releases(published, [r for r, _, _ in db.releases()])
    if unknown:
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        return (f"the version database does not hold {unknown[0]}{more}, published in {bucket}/{metadata}"
                f"{published.versions['targets']}.targets.json: it was lost or restored from an older copy; "
                "restore its newest copy (judged against an older history, a downgrade or a second release of "
                "a published version would pass)")
    raised = behind(published, db.counters(ONLINE_ROLES))
    if raised:
        db.raise_counters(raised)
    try:
        record_revoked(client, bucket, prefix, sorted(k for k, v in keys.items() if v.revoked and k not in revoked))
    except (BotoCoreError, ClientError) as exc:
        return f"cannot record key revocations under {bucket}/{prefix}{REVOKED}: {exc}"
    return None
