"""Validation rules that need no I/O: names, sizes, model and hardware, version policy.

Each rule returns None or a `Problem` whose `reason` is a stable
machine-readable code (it becomes a metric label and the `reason` field of
quarantine/…/reason.json); `detail` is for people.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .manifest import Manifest
from .semver import Version

INCOMING = "incoming/"
MANIFEST_NAME = "manifest.json"
MAX_NAME_BYTES = 255
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class Problem:
    reason: str
    detail: str


@dataclass(frozen=True)
class ModelPolicy:
    """A row of the model registry: the hardware a model's firmware may target and its size cap."""

    name: str
    hw_revisions: tuple[str, ...]
    max_payload: int


@dataclass(frozen=True)
class Release:
    """What the version database knows of a released version."""

    model: str
    channel: str
    version: str
    release_counter: int
    sha256: str
    length: int
    name: str
    hw_revisions: tuple[str, ...]


def name_problem(component: str) -> str | None:
    """Why one path component cannot be part of a package path, or None."""
    if component in ("", ".", ".."):
        return "empty component (absolute path or a//b)" if not component else f"{component!r} component"
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in component):
        return "not valid UTF-8"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in component):
        return "control or format character"
    if unicodedata.normalize("NFC", component) != component:
        return "not in Unicode NFC form"
    if len(component.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    return None


def check_key(relative: str) -> Problem | None:
    """Rules for a key below incoming/: `<model>/<version>/<file>`, each part a sane file name."""
    if len(relative.encode("utf-8", "surrogateescape")) > MAX_KEY_BYTES:
        return Problem("bad_name", f"path longer than {MAX_KEY_BYTES} bytes")
    parts = relative.split("/")
    for part in parts:
        why = name_problem(part)
        if why:
            return Problem("bad_name", f"{ascii(part)[:80]}: {why}")
    if len(parts) != 3:
        return Problem("bad_layout", f"expected incoming/<model>/<version>/<file>, got {len(parts)} level(s)")
    return None


def release_of(m: Manifest) -> Release:
    return Release(m.model, m.channel, m.version, m.release_counter, m.payload_sha256, m.payload_length,
                   m.payload_name, m.hw_revisions)


def key_problem(key: str) -> Problem | None:
    """Why an object key derived from a package (its release key) cannot be stored and served, or None.

    S3 keys are at most 1,024 bytes, and a component over 255 bytes cannot be
    a file name in a mount or a backup of the bucket.
    """
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        return Problem("name_unpublishable", f"release key would be {size} bytes > {MAX_KEY_BYTES}")
    longest = max(len(c.encode("utf-8", "surrogatepass")) for c in key.split("/"))
    if longest > MAX_NAME_BYTES:
        return Problem("name_unpublishable", f"release key would have a {longest}-byte component > {MAX_NAME_BYTES}")
    return None


def check_package(m: Manifest, model: str, version: str, policy: ModelPolicy | None) -> Problem | None:
    """The manifest against its path and the model registry (before any payload byte is read)."""
    if (m.model, m.version) != (model, version):
        return Problem("path_mismatch", f"path says {model}/{version}, manifest says {m.model}/{m.version}")
    if policy is None:
        return Problem("unknown_model", f"model {m.model!r} is not registered")
    foreign = sorted(set(m.hw_revisions) - set(policy.hw_revisions))
    if foreign:
        return Problem("hw_incompatible", f"hardware revision(s) {', '.join(foreign)} not known for {m.model}")
    if m.payload_length == 0:
        return Problem("payload_empty", "declared payload length is 0")
    if m.payload_length > policy.max_payload:
        return Problem("payload_too_large", f"declared {m.payload_length} bytes > cap {policy.max_payload}")
    return None


def version_decision(m: Manifest, same_version: Release | None, latest: Release | None) -> Problem | None:
    """Version policy for model+channel; Problem("duplicate") means an identical re-upload (a no-op).

    `same_version` is the release already recorded under this model with a
    version equal in SemVer precedence (any channel); `latest` the one with the highest release counter
    in this model and channel.
    """
    if same_version is not None:
        if same_version.version != m.version:
            return Problem("version_exists", f"{m.model} {m.version} equals {same_version.version} in SemVer "
                           "precedence, which is already released")
        same = (same_version.sha256, same_version.length, same_version.release_counter, same_version.channel,
                same_version.name) == (m.payload_sha256, m.payload_length, m.release_counter, m.channel,
                                       m.payload_name)
        if same:
            return Problem("duplicate", f"{m.model} {m.version} is already released with these bytes")
        return Problem("version_exists", f"{m.model} {m.version} is already released with different content")
    if latest is not None:
        if m.release_counter <= latest.release_counter:
            return Problem("counter_not_increasing", f"release_counter {m.release_counter} <= "
                           f"{latest.release_counter} of {latest.version} on channel {m.channel}")
        if Version.parse(m.version) <= Version.parse(latest.version):
            return Problem("version_not_increasing",
                           f"{m.version} does not come after {latest.version} on channel {m.channel}")
    return None
