"""The package manifest: its schema, its canonical signed bytes, and building one. Pure.

    {"signed": {"_type": "fsgateway-firmware", "spec_version": 1, "model": "...",
                "hw_revisions": ["..."], "version": "1.2.3", "release_counter": 7,
                "channel": "stable", "payload": {"name": "...", "length": N, "sha256": "..."}},
     "signatures": [{"keyid": "...", "sig": "..."}]}

Signatures are Ed25519 over the canonical JSON (OLPC, as TUF uses) of
`signed`; a keyid is the SHA-256 of the canonical public key, so keyids here
and in TUF metadata are the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from securesystemslib.formats import encode_canonical

from . import strictjson
from .semver import Version

TYPE = "fsgateway-firmware"
SPEC_VERSION = 1
MAX_MANIFEST_BYTES = 64 << 10
_SIGNED_FIELDS = {"_type": str, "spec_version": int, "model": str, "hw_revisions": list, "version": str,
                  "release_counter": int, "channel": str, "payload": dict}
_PAYLOAD_FIELDS = {"name": str, "length": int, "sha256": str}
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # model, channel, hardware revision
_HEX64 = re.compile(r"[0-9a-f]{64}")  # used with fullmatch: "$" would let a "\n" through
_SIG_FIELDS = {"keyid": str, "sig": str}


class ManifestError(ValueError):
    """A manifest that cannot be accepted; `reason` is the machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: str


@dataclass(frozen=True)
class Manifest:
    model: str
    hw_revisions: tuple[str, ...]
    version: str
    release_counter: int
    channel: str
    payload_name: str
    payload_length: int
    payload_sha256: str
    signatures: tuple[Signature, ...]
    signed_bytes: bytes  # canonical JSON of `signed`: what the signatures cover


def signed_document(model: str, hw_revisions: list[str], version: str, release_counter: int, channel: str,
                    payload_name: str, payload_length: int, payload_sha256: str) -> dict[str, Any]:
    return {"_type": TYPE, "spec_version": SPEC_VERSION, "model": model, "hw_revisions": sorted(hw_revisions),
            "version": version, "release_counter": release_counter, "channel": channel,
            "payload": {"name": payload_name, "length": payload_length, "sha256": payload_sha256}}


def canonical(doc: dict[str, Any]) -> bytes:
    text = encode_canonical(doc)
    assert text is not None  # None only when an output_function is given
    return text.encode("utf-8")


def _fields(obj: object, spec: Mapping[str, type], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ManifestError("schema", f"{where} must be an object")
    missing = sorted(set(spec) - set(obj))
    unknown = sorted(set(obj) - set(spec))
    if missing:
        raise ManifestError("schema", f"{where}: missing field(s) {', '.join(missing)}")
    if unknown:
        raise ManifestError("schema", f"{where}: unknown field(s) {', '.join(unknown)}")
    for name, kind in spec.items():
        value = obj[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ManifestError("schema", f"{where}.{name} must be {kind.__name__}")
    return obj


def _token(value: str, what: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ManifestError("schema", f"{what} {value!r} must be 1-64 of [A-Za-z0-9._-], not starting with . - _")
    return value


def parse(data: bytes) -> Manifest:
    """Validate a manifest file's bytes (strict JSON, exact schema); signatures are checked elsewhere."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError("manifest_too_large", f"{len(data)} bytes > {MAX_MANIFEST_BYTES}")
    try:
        doc = strictjson.loads(data)
    except strictjson.StrictJSONError as exc:
        raise ManifestError(f"json_{exc.code}", exc.detail) from exc
    top = _fields(doc, {"signed": dict, "signatures": list}, "manifest")
    signed = _fields(top["signed"], _SIGNED_FIELDS, "signed")
    payload = _fields(signed["payload"], _PAYLOAD_FIELDS, "signed.payload")
    if signed["_type"] != TYPE or signed["spec_version"] != SPEC_VERSION:
        raise ManifestError("schema", f"not a {TYPE} manifest of spec_version {SPEC_VERSION}")
    hw = signed["hw_revisions"]
    if not hw or len(hw) > 64 or not all(isinstance(h, str) for h in hw) or len(set(hw)) != len(hw):
        raise ManifestError("schema", "hw_revisions must be 1-64 distinct strings")
    for h in hw:
        _token(h, "hardware revision")
    _token(signed["model"], "model")
    _token(signed["channel"], "channel")
    try:
        Version.parse(signed["version"])
    except ValueError as exc:
        raise ManifestError("schema", str(exc)) from exc
    if not 0 <= signed["release_counter"] < 2**63:
        raise ManifestError("schema", "release_counter must be in [0, 2^63)")
    if not 0 <= payload["length"] < 2**63:
        raise ManifestError("schema", "payload.length must be in [0, 2^63)")
    if not _HEX64.fullmatch(payload["sha256"]):
        raise ManifestError("schema", "payload.sha256 must be 64 lowercase hex digits")
    name = payload["name"]
    if name in ("manifest.json", ".", "..") or "/" in name or name.startswith(".") or not name.isprintable():
        raise ManifestError("schema", f"payload.name {name!r} is not a plain file name")
    if not top["signatures"] or len(top["signatures"]) > 16:
        raise ManifestError("signature_missing", "1-16 signatures required")
    sigs = tuple(Signature(**_fields(s, _SIG_FIELDS, "signature")) for s in top["signatures"])
    return Manifest(model=signed["model"], hw_revisions=tuple(hw), version=signed["version"],
                    release_counter=signed["release_counter"], channel=signed["channel"], payload_name=name,
                    payload_length=payload["length"], payload_sha256=payload["sha256"], signatures=sigs,
                    signed_bytes=canonical(signed))
