"""Judging one landed package: the checks, cheapest first, with the reads they need. No verdict is written here.

Before any payload byte is hashed, the payload is copied (server side, only
if its ETag is still the one listed) to a private staging key. The hash is
taken of that copy and the release is made from it, so what was checked is
exactly what devices get, even if the upload is overwritten meanwhile.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

import trio

from fsgateway.formats import reserved
from fsgateway.store.client import ObjectStore, StoreError
from fsgateway.store.hashing import sha256_of

from . import manifest as manifest_mod
from . import metrics, rules, signing
from .db import Database
from .landing import Package, Part
from .manifest import Manifest, ManifestError
from .tufrepo import release_key

log = logging.getLogger("checker.judge")


@dataclass(frozen=True)
class Decision:
    outcome: str  # pending | accepted | duplicate | rejected
    reason: str
    detail: str
    manifest: Manifest | None = None
    manifest_text: str = ""
    keyid: str = ""
    staged: str = ""  # staging key holding the hashed payload


def pending(reason: str, detail: str) -> Decision:
    return Decision("pending", reason, detail)


def rejected(reason: str, detail: str, m: Manifest | None = None) -> Decision:
    return Decision("rejected", reason, detail, m)


def staging_key(prefix: str, package_id: str) -> str:
    return reserved.checker_staging_key(prefix, package_id)


def _changed(exc: StoreError) -> bool:
    """The object was overwritten or removed since it was listed."""
    return exc.errno in (errno.ESTALE, errno.ENOENT)


class Judge:
    def __init__(self, store: ObjectStore, db: Database, prefix: str, pending_deadline: float) -> None:
        self.store = store
        self.db = db
        self.prefix = prefix
        self.pending_deadline = pending_deadline

    def _waiting(self, pkg: Package, now: float, reason: str, detail: str) -> Decision:
        """Pending until the deadline (counted from the first part's arrival), then rejected."""
        if now - pkg.first_seen() >= self.pending_deadline:
            return rejected(reason, f"{detail} after {self.pending_deadline:.0f} s")
        return pending(reason, detail)

    async def examine(self, pkg: Package, now: float) -> Decision:
        if pkg.problem:
            return rejected(pkg.problem.reason, pkg.problem.detail)
        part = pkg.manifest
        if part is None:
            return self._waiting(pkg, now, "incomplete", "manifest.json has not arrived")
        if part.size > manifest_mod.MAX_MANIFEST_BYTES:
            return rejected("manifest_too_large", f"{part.size} bytes > {manifest_mod.MAX_MANIFEST_BYTES}")
        data = await self._read(part)
        if data is None:
            return pending("changed", "manifest.json changed while being read")
        decision = await self._judge(pkg, now, data)
        if decision.outcome == "rejected":
            # Nothing checks a GET's body on its way: a refusal stands only if the manifest reads the same again
            again = await self._read(part)
            if again is None:
                return pending("changed", "manifest.json changed while being read")
            if again != data:
                log.warning("manifest of %s read differently twice (damaged on the way?); judging it again",
                            pkg.prefix)
                decision = await self._judge(pkg, now, again)
        return decision

    async def _read(self, part: Part) -> bytes | None:
        """The manifest's bytes, pinned to the listed ETag; None if it changed since."""
        try:
            return await self.store.get(part.key, if_match=part.etag)
        except StoreError as exc:
            if _changed(exc):
                return None
            raise

    async def _judge(self, pkg: Package, now: float, data: bytes) -> Decision:
        """The verdict on `pkg` with this manifest text."""
        try:
            m = manifest_mod.parse(data)
        except ManifestError as exc:
            return rejected(exc.reason, exc.detail)
        models, keys = await trio.to_thread.run_sync(lambda: (self.db.models(), self.db.keys()))
        problem = rules.check_package(m, pkg.model, pkg.version, models.get(m.model)) or \
            rules.key_problem(self.prefix + release_key(rules.release_of(m)))  # never accept what cannot be served
        if problem:
            return rejected(problem.reason, problem.detail, m)
        try:
            keyid = signing.verify(m, keys)
        except ManifestError as exc:
            return rejected(exc.reason, exc.detail, m)
        extra = sorted(set(pkg.parts) - {rules.MANIFEST_NAME, m.payload_name})
        payload = pkg.parts.get(m.payload_name)
        if payload is None:
            detail = f"payload {m.payload_name!r} has not arrived" + (f" (found {', '.join(extra)})" if extra else "")
            return self._waiting(pkg, now, "incomplete", detail)
        if extra:
            return rejected("unexpected_file", f"unexpected file(s) beside the package: {', '.join(extra)}", m)
        if payload.size != m.payload_length:
            return self._waiting(pkg, now, "length_mismatch",
                                 f"payload is {payload.size} bytes, manifest says {m.payload_length}")
        same, latest = await trio.to_thread.run_sync(
            lambda: (self.db.tx_equal_release(None, m.model, m.version), self.db.latest(m.model, m.channel)))
        problem = rules.version_decision(m, same, latest)
        if problem and problem.reason != "duplicate":  # a downgrade is refused before hashing anything
            return rejected(problem.reason, problem.detail, m)
        staged = staging_key(self.prefix, pkg.package_id())
        try:
            copied = await self.store.copy(payload.key, staged, payload.size, None, None, if_match=payload.etag)
        except StoreError as exc:
            if _changed(exc):
                return pending("changed", "payload changed while being checked")
            raise
        try:
            digest, _ = await sha256_of(self.store, staged, payload.size, copied or None, hashed=metrics.HASHED.inc)
            if digest != m.payload_sha256:
                # Nothing checks a GET's body on its way: hashed again before a good package is refused for
                # bytes damaged in transit (the published bytes are the staged copy's, never these)
                log.warning("payload of %s hashed to %s, manifest says %s; hashing it once more",
                            pkg.prefix, digest, m.payload_sha256)
                digest, _ = await sha256_of(self.store, staged, payload.size, copied or None,
                                            hashed=metrics.HASHED.inc)
        except StoreError as exc:
            if not _changed(exc):
                raise
            metrics.TAMPERED.labels("staged").inc()
            log.warning("the staged copy %s changed while being hashed (%s); copying the payload again",
                        staged, exc)
            return pending("changed", "the staged copy changed while being hashed")
        if digest != m.payload_sha256:
            return Decision("rejected", "sha256_mismatch", f"payload SHA-256 is {digest}", m, staged=staged)
        outcome = "duplicate" if problem else "accepted"
        return Decision(outcome, problem.reason if problem else "ok", problem.detail if problem else "", m,
                        data.decode(), keyid, staged)
