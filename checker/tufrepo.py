"""TUF metadata for devices, built with python-tuf's Metadata API. Pure: releases in, signed bytes out.

Layout under the bucket (consistent snapshots, so a CDN may cache every
object but `timestamp.json` for a year):

    metadata/1.root.json, metadata/root.json     root, signed by the offline root key
    metadata/N.targets.json, metadata/N.snapshot.json, metadata/timestamp.json   online key
    releases/<model>/<version>/<sha256>.<name>   payloads (target path <model>/<version>/<name>)
    releases/<model>/<sha256>.index.json         per-model release index (target <model>/index.json)

Targets carry custom fields (model, hw_revisions, version, release_counter,
channel). The index is itself a TUF target, so a device can find the newest
release for its model without trusting anything unsigned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from securesystemslib.signer import Key, Signer
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from .manifest import canonical
from .rules import Release

METADATA = "metadata/"
RELEASES = "releases/"
IMMUTABLE = "public, max-age=31536000, immutable"
ONLINE_ROLES = ("targets", "snapshot", "timestamp")
_SERIALIZER = JSONSerializer(compact=True)


@dataclass(frozen=True)
class Blob:
    """An object to write: key, bytes, Cache-Control."""

    key: str
    data: bytes
    cache_control: str


def target_path(r: Release) -> str:
    return f"{r.model}/{r.version}/{r.name}"


def release_key(r: Release) -> str:
    """The content-addressed key of a payload: TUF's consistent-snapshot name of its target."""
    return f"{RELEASES}{r.model}/{r.version}/{r.sha256}.{r.name}"


def _expiry(now: datetime, seconds: float) -> datetime:
    return (now + timedelta(seconds=seconds)).replace(microsecond=0)


def new_root(root_signer: Signer, online_key: Key, now: datetime, days: int = 365, version: int = 1) -> Blob:
    """Root metadata: the offline key for root, one online key for the other roles."""
    return _root(version, root_signer.public_key, [online_key], [root_signer], now, days)


def next_root(current: Root, root_signers: Sequence[Signer], online_keys: Sequence[Key], now: datetime, days: int
              ) -> Blob:
    """The next root version: the last signer's key holds the root role (the first may be the key it
    replaces), `online_keys` the others; signed by every signer, so a device that trusts `current`
    accepts it (TUF: signed by a threshold of the old root keys and of the new)."""
    return _root(current.version + 1, root_signers[-1].public_key, online_keys, root_signers, now, days)


def _root(version: int, root_key: Key, online_keys: Sequence[Key], signers: Sequence[Signer], now: datetime,
          days: int) -> Blob:
    root = Root(version=version, expires=_expiry(now, days * 86400), consistent_snapshot=True)
    root.add_key(root_key, "root")
    for role in ONLINE_ROLES:
        for key in online_keys:
            root.add_key(key, role)
    md = Metadata(root)
    for signer in signers:
        md.sign(signer, append=True)
    return Blob(f"{METADATA}{version}.root.json", md.to_bytes(_SERIALIZER), IMMUTABLE)


def index_document(model: str, releases: list[Release]) -> bytes:
    entries = [{"version": r.version, "release_counter": r.release_counter, "channel": r.channel,
                "hw_revisions": list(r.hw_revisions), "target": target_path(r)}
               for r in sorted(releases, key=lambda r: r.release_counter)]
    return canonical({"model": model, "releases": entries})


@dataclass(frozen=True)
class Versions:
    targets: int
    snapshot: int
    timestamp: int


def build(releases: list[Release], versions: Versions, signer: Signer, now: datetime,
          targets_expiry: float) -> list[Blob]:
    """The immutable objects of a publish (indexes, N.targets.json, N.snapshot.json), in the order written.

    timestamp.json, the one mutable object, is signed apart (`timestamp`) when they are all in place.
    """
    targets = Targets(version=versions.targets, expires=_expiry(now, targets_expiry))
    blobs: list[Blob] = []
    by_model: dict[str, list[Release]] = {}
    for r in releases:
        by_model.setdefault(r.model, []).append(r)
        targets.targets[target_path(r)] = TargetFile(
            r.length, {"sha256": r.sha256}, target_path(r),
            unrecognized_fields={"custom": {"model": r.model, "hw_revisions": list(r.hw_revisions),
                                            "version": r.version, "release_counter": r.release_counter,
                                            "channel": r.channel}})
    for model, rs in sorted(by_model.items()):
        data = index_document(model, rs)
        digest = hashlib.sha256(data).hexdigest()
        path = f"{model}/index.json"
        targets.targets[path] = TargetFile(len(data), {"sha256": digest}, path)
        blobs.append(Blob(f"{RELEASES}{model}/{digest}.index.json", data, IMMUTABLE))
    blobs.append(_signed(Metadata(targets), signer, f"{METADATA}{versions.targets}.targets.json", IMMUTABLE))
    snapshot = Snapshot(version=versions.snapshot, expires=_expiry(now, targets_expiry),
                        meta={"targets.json": MetaFile(version=versions.targets)})
    blobs.append(_signed(Metadata(snapshot), signer, f"{METADATA}{versions.snapshot}.snapshot.json", IMMUTABLE))
    return blobs


def timestamp(versions: Versions, signer: Signer, now: datetime, expiry: float, cache_control: str) -> Blob:
    """The only mutable, short-lived object: re-signed before it expires even when nothing changes."""
    ts = Timestamp(version=versions.timestamp, expires=_expiry(now, expiry),
                   snapshot_meta=MetaFile(version=versions.snapshot))
    return _signed(Metadata(ts), signer, f"{METADATA}timestamp.json", cache_control)


def _signed(md: Metadata, signer: Signer, key: str, cache_control: str) -> Blob:
    md.sign(signer)
    return Blob(key, md.to_bytes(_SERIALIZER), cache_control)


def utcnow() -> datetime:
    return datetime.now(UTC)
