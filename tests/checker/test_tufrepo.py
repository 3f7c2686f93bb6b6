"""TUF metadata built from releases: verified here with python-tuf's own Metadata API."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp

from checker import tufrepo
from checker.rules import Release

NOW = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)


def signer() -> CryptoSigner:
    private = Ed25519PrivateKey.generate()
    return CryptoSigner(private, SSlibKey.from_crypto(private.public_key()))


def rel(model="sensor-x", version="1.0.0", counter=1, channel="stable", hw=("A",), data=b"fw") -> Release:
    return Release(model, channel, version, counter, hashlib.sha256(data).hexdigest(), len(data), "fw.bin", hw)


def build(releases, online, versions=(3, 4, 5)):
    """What a publish writes: the immutable objects, then timestamp.json."""
    v = tufrepo.Versions(*versions)
    return [*tufrepo.build(releases, v, online, NOW, 86400 * 30),
            tufrepo.timestamp(v, online, NOW, 3600, "public, max-age=60")]


def test_keys_and_paths_of_a_release():
    r = rel(data=b"payload")
    assert tufrepo.target_path(r) == "sensor-x/1.0.0/fw.bin"
    assert tufrepo.release_key(r) == f"releases/sensor-x/1.0.0/{r.sha256}.fw.bin"


def test_root_is_signed_by_the_offline_key_and_names_the_online_key_for_other_roles():
    root_signer, online = signer(), signer()
    blob = tufrepo.new_root(root_signer, online.public_key, NOW, days=10)
    assert blob.key == "metadata/1.root.json" and blob.cache_control == tufrepo.IMMUTABLE
    md = Metadata[Root].from_bytes(blob.data)
    root = md.signed
    assert root.version == 1 and root.consistent_snapshot
    assert root.expires == (NOW + timedelta(days=10)).replace(microsecond=0)
    root.verify_delegate("root", md.signed_bytes, md.signatures)
    assert root.roles["root"].keyids == [root_signer.public_key.keyid]
    for role in tufrepo.ONLINE_ROLES:
        assert root.roles[role].keyids == [online.public_key.keyid]


def test_build_writes_index_targets_snapshot_timestamp_in_that_order():
    root_signer, online = signer(), signer()
    root = Metadata[Root].from_bytes(tufrepo.new_root(root_signer, online.public_key, NOW).data).signed
    releases = [rel(version="1.0.0", counter=1, hw=("A", "B"), data=b"one"),
                rel(version="1.1.0", counter=2, data=b"two"),
                rel(model="other-a", version="0.1.0", counter=7, channel="beta", data=b"o")]
    blobs = build(releases, online)
    keys = [b.key for b in blobs]
    assert keys[-3:] == ["metadata/3.targets.json", "metadata/4.snapshot.json", "metadata/timestamp.json"]
    index_keys = keys[:-3]
    assert len(index_keys) == 2 and all(k.startswith("releases/") and k.endswith(".index.json") for k in index_keys)
    by_key = {b.key: b for b in blobs}
    for b in blobs[:-1]:
        assert b.cache_control == tufrepo.IMMUTABLE
    assert by_key["metadata/timestamp.json"].cache_control == "public, max-age=60"

    targets_md = Metadata[Targets].from_bytes(by_key["metadata/3.targets.json"].data)
    root.verify_delegate("targets", targets_md.signed_bytes, targets_md.signatures)
    targets = targets_md.signed
    assert targets.version == 3
    assert targets.expires == (NOW + timedelta(days=30)).replace(microsecond=0)
    t = targets.targets["sensor-x/1.0.0/fw.bin"]
    assert t.length == 3 and t.hashes == {"sha256": hashlib.sha256(b"one").hexdigest()}
    assert t.custom == {"model": "sensor-x", "hw_revisions": ["A", "B"], "version": "1.0.0", "release_counter": 1,
                        "channel": "stable"}
    assert targets.targets["other-a/0.1.0/fw.bin"].custom["channel"] == "beta"
    assert set(targets.targets) == {"sensor-x/1.0.0/fw.bin", "sensor-x/1.1.0/fw.bin", "other-a/0.1.0/fw.bin",
                                    "sensor-x/index.json", "other-a/index.json"}

    index_target = targets.targets["sensor-x/index.json"]
    index_blob = by_key[f"releases/sensor-x/{index_target.hashes['sha256']}.index.json"]
    index_target.verify_length_and_hashes(index_blob.data)
    index = json.loads(index_blob.data)
    assert index["model"] == "sensor-x"
    assert [(e["version"], e["release_counter"], e["target"]) for e in index["releases"]] == [
        ("1.0.0", 1, "sensor-x/1.0.0/fw.bin"), ("1.1.0", 2, "sensor-x/1.1.0/fw.bin")]

    snap_md = Metadata[Snapshot].from_bytes(by_key["metadata/4.snapshot.json"].data)
    root.verify_delegate("snapshot", snap_md.signed_bytes, snap_md.signatures)
    assert snap_md.signed.version == 4 and snap_md.signed.meta["targets.json"].version == 3
    ts_md = Metadata[Timestamp].from_bytes(by_key["metadata/timestamp.json"].data)
    root.verify_delegate("timestamp", ts_md.signed_bytes, ts_md.signatures)
    assert ts_md.signed.version == 5 and ts_md.signed.snapshot_meta.version == 4
    assert ts_md.signed.expires == (NOW + timedelta(hours=1)).replace(microsecond=0)


def test_no_releases_is_an_empty_targets_role():
    online = signer()
    blobs = build([], online, (1, 1, 1))
    assert [b.key for b in blobs] == ["metadata/1.targets.json", "metadata/1.snapshot.json", "metadata/timestamp.json"]
    assert Metadata[Targets].from_bytes(blobs[0].data).signed.targets == {}


def test_index_is_sorted_by_counter_and_deterministic():
    a, b = rel(version="2.0.0", counter=2, data=b"b"), rel(version="1.0.0", counter=1, data=b"a")
    assert tufrepo.index_document("sensor-x", [a, b]) == tufrepo.index_document("sensor-x", [b, a])
    doc = json.loads(tufrepo.index_document("sensor-x", [a, b]))
    assert [e["release_counter"] for e in doc["releases"]] == [1, 2]


def test_metadata_signed_by_another_key_does_not_verify():
    root_signer, online, intruder = signer(), signer(), signer()
    root = Metadata[Root].from_bytes(tufrepo.new_root(root_signer, online.public_key, NOW).data).signed
    blob = tufrepo.timestamp(tufrepo.Versions(1, 1, 2), intruder, NOW, 600, "public, max-age=60")
    md = Metadata[Timestamp].from_bytes(blob.data)
    with pytest.raises(UnsignedMetadataError):
        root.verify_delegate("timestamp", md.signed_bytes, md.signatures)
