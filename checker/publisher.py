"""Carrying out verdicts: releases, TUF metadata, quarantine, clean-up. Every step is idempotent.

A verdict is recorded in the database before any of this runs, and marked
done after it; a checker that dies in between finds the verdict open on the
next look at the package and finishes the same steps again (same keys, same
bytes), so nothing is published twice and nothing is lost.
"""

from __future__ import annotations

import errno
import json
import logging
import time
from dataclasses import dataclass

import trio
from securesystemslib.signer import Signer

from fsgateway.store import ObjectStore, StoreError

from . import judge, metrics, tufrepo
from .db import Database, Verdict
from .landing import Package, Part
from .rules import Release

log = logging.getLogger("checker.publish")

QUARANTINE = "quarantine/"
OCTET = "application/octet-stream"


class ReleaseError(RuntimeError):
    """The released bytes cannot be put in place: no source holds what was judged."""


@dataclass(frozen=True)
class RepoPolicy:
    targets_expiry: float
    timestamp_expiry: float
    timestamp_max_age: int

    @property
    def timestamp_cache(self) -> str:
        return f"public, max-age={self.timestamp_max_age}"


def _sane(name: str) -> bool:
    """Whether a name can be kept as it is under quarantine/ (printable, valid UTF-8, short)."""
    return bool(name) and name not in (".", "..") and name.isprintable() and \
        len(name.encode("utf-8", "surrogateescape")) <= 200 and not any(0xDC80 <= ord(c) <= 0xDCFF for c in name)


def stored_names(names: list[str]) -> list[str]:
    """Quarantine file names: the originals when sane, else `part-<n>`; all distinct, none `reason.json`."""
    used = {"reason.json"}
    out = []
    for i, name in enumerate(names):
        candidate = name if _sane(name) else f"part-{i}"
        while candidate in used:
            candidate += "~"
        used.add(candidate)
        out.append(candidate)
    return out


def quarantine_prefix(prefix: str, pkg: Package | None, package_id: str) -> str:
    if pkg is not None and _sane(pkg.model) and _sane(pkg.version):
        return f"{prefix}{QUARANTINE}{pkg.model}/{pkg.version}/{package_id[:16]}/"
    return f"{prefix}{QUARANTINE}_invalid/{package_id[:16]}/"


class Publisher:
    def __init__(self, store: ObjectStore, db: Database, prefix: str, signer: Signer, policy: RepoPolicy,
                 host: str) -> None:
        self.store = store
        self.db = db
        self.prefix = prefix
        self.signer = signer
        self.policy = policy
        self.host = host

    # ------------------------------------------------------------------ TUF
    async def publish(self) -> None:
        """New targets, snapshot and timestamp from the stored releases, under the database's lock.

        Version numbers are taken and kept even when a write fails, so an
        immutable `N.targets.json` is never rewritten with other content.
        """
        tx = await trio.to_thread.run_sync(self.db.begin, "fsgateway-checker-publish")
        failure: BaseException | None = None
        try:
            releases = self.db.tx_stored_releases(tx)
            versions = tufrepo.Versions(*(self.db.next_version(tx, r) for r in tufrepo.ONLINE_ROLES))
            now = tufrepo.utcnow()
            blobs = tufrepo.build(releases, versions, self.signer, now, self.policy.targets_expiry,
                                  self.policy.timestamp_expiry, self.policy.timestamp_cache)
            try:
                for blob in blobs:
                    await self.store.put(self.prefix + blob.key, blob.data, {}, "application/json",
                                         cache_control=blob.cache_control)
            except Exception as exc:
                failure = exc
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.db.end, tx, True)
        if failure is not None:
            metrics.PUBLISHES.labels("error").inc()
            raise failure
        metrics.PUBLISHES.labels("ok").inc()
        metrics.TIMESTAMP_EXPIRY.set(time.time() + self.policy.timestamp_expiry)
        log.info("published TUF metadata: targets v%d (%d releases), snapshot v%d, timestamp v%d",
                 versions.targets, len(releases), versions.snapshot, versions.timestamp)

    async def refresh_timestamp(self) -> None:
        """Re-sign timestamp.json (same snapshot) so devices never see it expire; publish if never done."""
        tx = await trio.to_thread.run_sync(self.db.begin, "fsgateway-checker-publish")
        try:
            snapshot = self.db.current_version(tx, "snapshot")
            if snapshot:
                versions = tufrepo.Versions(self.db.current_version(tx, "targets"), snapshot,
                                            self.db.next_version(tx, "timestamp"))
                blob = tufrepo.timestamp(versions, self.signer, tufrepo.utcnow(), self.policy.timestamp_expiry,
                                         self.policy.timestamp_cache)
                await self.store.put(self.prefix + blob.key, blob.data, {}, "application/json",
                                     cache_control=blob.cache_control)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.db.end, tx, True)
        if not snapshot:
            await self.publish()
            return
        metrics.TIMESTAMP_EXPIRY.set(time.time() + self.policy.timestamp_expiry)
        log.info("re-signed timestamp.json (v%d)", versions.timestamp)

    # ------------------------------------------------------------------ verdicts
    async def release(self, r: Release, staged: str, upload: Part | None = None) -> None:
        """Put the judged payload at its content-addressed key, verified, then publish if new.

        Nothing at the release key is trusted: an object already there (planted
        by whoever could write the bucket, or left by an earlier run) is hashed
        against the verdict and replaced unless it is exactly the released
        bytes, and every copy made is hashed again before the release is
        recorded as stored. So devices get byte for byte what was hashed when
        the package was judged. Sources, in order: the staged copy that was
        hashed, then the upload itself while it still has the judged ETag.
        """
        key = self.prefix + tufrepo.release_key(r)
        new = not await self._holds(key, r)
        if new:
            sources = [(staged, None)] + ([(upload.key, upload.etag)] if upload is not None else [])
            for source, etag in sources:
                if await self._copy_verified(source, etag, key, r):
                    break
                if source == staged:  # the copy that was hashed is not what was hashed any more
                    metrics.TAMPERED.labels("staged").inc()
            else:
                raise ReleaseError(f"no source of {key} holds the {r.length} bytes with SHA-256 {r.sha256}")
        if await trio.to_thread.run_sync(self.db.mark_stored, r.model, r.version) or new:
            await self.publish()

    async def _matches(self, key: str, r: Release, etag: str | None) -> bool:
        """Whether `key` (pinned to `etag` if given) holds exactly the release's bytes."""
        try:
            digest, _ = await judge.sha256_of(self.store, key, r.length, etag)
        except StoreError as exc:
            if exc.errno in (errno.ESTALE, errno.ENOENT):  # other size, or changed while read
                return False
            raise
        return digest == r.sha256

    async def _holds(self, key: str, r: Release) -> bool:
        """Whether the release key already holds the release; anything else there is counted and logged."""
        info = await self.store.head(key)
        if info is None:
            return False
        if info.size == r.length and await self._matches(key, r, info.etag or None):
            return True
        metrics.TAMPERED.labels("release").inc()
        log.warning("%s held %d bytes (ETag %s) that are not the release's %d bytes; replacing them",
                    key, info.size, info.etag, r.length)
        return False

    async def _copy_verified(self, source: str, etag: str | None, key: str, r: Release) -> bool:
        """Copy `source` (pinned to `etag`, else to the ETag it has now) to the release key and hash the copy.

        False, with nothing left at the release key, unless the copy is exactly the release.
        """
        info = await self.store.head(source)
        if info is None or info.size != r.length:
            log.warning("%s is not the judged %d bytes (%s); not copying it to %s", source, r.length,
                        "gone" if info is None else f"{info.size} bytes, ETag {info.etag}", key)
            return False
        etag = etag or info.etag or None  # the copy fails (412) if the source changes meanwhile
        try:
            copied = await self.store.copy(source, key, r.length, {"fsg-sha256": r.sha256}, OCTET,
                                           cache_control=tufrepo.IMMUTABLE, if_match=etag)
        except StoreError as exc:
            if exc.errno in (errno.ESTALE, errno.ENOENT):
                log.warning("cannot copy %s to %s: %s", source, key, exc)
                return False
            raise
        if await self._matches(key, r, copied or None):
            return True
        log.warning("%s copied from %s is not the release's %d bytes with SHA-256 %s; removed",
                    key, source, r.length, r.sha256)
        await self.store.delete(key)
        return False

    async def quarantine(self, pkg: Package | None, parts: list[Part], verdict: Verdict) -> str:
        """Copy the parts under quarantine/ with a reason.json beside them; returns the folder."""
        folder = quarantine_prefix(self.prefix, pkg, verdict.package_id)
        listed = []
        names = stored_names([part.key.rsplit("/", 1)[-1] for part in parts])
        for part, name in zip(parts, names, strict=True):
            info = await self.store.head(part.key)
            if info is not None and info.etag == part.etag:
                await self.store.copy(part.key, folder + name, part.size, None, None, if_match=part.etag)
            listed.append({"key": part.key.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                           "stored_as": name, "size": part.size, "etag": part.etag})
        reason = {"package": verdict.package, "outcome": verdict.outcome, "reason": verdict.reason,
                  "detail": verdict.detail, "parts": listed, "checker_host": self.host,
                  "decided_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        await self.store.put(folder + "reason.json", json.dumps(reason, indent=1).encode() + b"\n", {},
                             "application/json")
        return folder

    async def remove(self, parts: list[Part], staged: str, folder: str = "") -> None:
        """Clear the upload area: parts still holding the bytes that were judged, then an emptied folder."""
        for part in parts:
            info = await self.store.head(part.key)
            if info is not None and info.etag == part.etag:
                await self.store.delete(part.key)
        if staged:
            await self.store.delete(staged)
        if folder:
            left, _, _ = await self.store.list_page(folder, None, delimiter="", max_keys=2)
            if [o["Key"] for o in left] == [folder]:  # only the directory marker a mkdir left
                await self.store.delete(folder)
