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
from tuf.api.metadata import Metadata

from fsgateway.store.client import ObjectStore, StoreError
from fsgateway.store.hashing import sha256_of
from fsgateway.store.retry import Backoff, http_status

from . import metrics, status, tufrepo
from .db import Database, Tx, Verdict
from .landing import Package, Part, listable
from .rules import Release
from .signing import OnlineKey

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

    @property
    def refresh_interval(self) -> float:
        """How often the repository is looked after: a quarter of the shortest lifetime."""
        return min(self.targets_expiry, self.timestamp_expiry) / 4


class PublishConflict(RuntimeError):
    """A versioned object already holds other bytes: the intent is abandoned and rebuilt under new numbers."""


class PublishContended(RuntimeError):
    """timestamp.json kept racing with other writers; the next refresh writes it again."""


TIMESTAMP_ROUNDS = 16  # writes of timestamp.json in one call before giving up to the next refresh
TIMESTAMP_BACKOFF = Backoff(base=0.02, cap=1.0)  # after a lost race: jitter spreads the racing writers apart


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
    def __init__(self, store: ObjectStore, db: Database, prefix: str, key: OnlineKey, policy: RepoPolicy,
                 host: str) -> None:
        self.store = store
        self.db = db
        self.prefix = prefix
        self.key = key
        self.policy = policy
        self.host = host

    # ------------------------------------------------------------------ TUF
    # No lock is held across an S3 request (DATABASE.md): any task of any checker may publish at any
    # time. Versions are reserved in short transactions; versioned objects are written once
    # (If-None-Match), so two writers of one intent write the same bytes; timestamp.json, the one
    # object rewritten, is written again (newer) when another write was recorded between our
    # reservation and our record, as either may have landed last.
    async def publish(self) -> None:
        """Bring the signed targets up to the stored releases; continues an interrupted publish first."""
        await self._publish(force=False)

    async def refresh(self) -> None:
        """Keep every role alive: targets and snapshot re-signed once half their lifetime is gone (or
        when the online key changed, or nothing was ever published), timestamp.json on every call."""
        published = await trio.to_thread.run_sync(self.db.published)
        stale = bool({"targets", "snapshot", "timestamp"} - set(published)) or any(
            self._stale(expires, keyid) for role, (_, expires, keyid) in published.items() if role != "timestamp")
        if stale or await trio.to_thread.run_sync(self.db.publish_intent) is not None or \
                await trio.to_thread.run_sync(self.db.unpublished_releases) > 0:
            await self._publish(force=stale)
        else:
            await self._timestamp()
        await self._root_expiry()

    async def _publish(self, force: bool) -> None:
        intent = await trio.to_thread.run_sync(self.db.publish_intent)
        if intent is not None:
            log.info("continuing the publish of targets v%d", intent["targets"])
            await self._carry_out(intent)
            force = force and self._stale(intent["expires"], intent["keyid"])
        if force or await trio.to_thread.run_sync(self.db.unpublished_releases) > 0:
            await self._carry_out(await trio.to_thread.run_sync(self.db.record_publish_intent, self._intent))

    def _stale(self, expires: float, keyid: str) -> bool:
        """Targets/snapshot to re-sign: past half their lifetime, or signed by a key no longer ours."""
        return expires - time.time() < self.policy.targets_expiry / 2 or keyid != self.key.signer().public_key.keyid

    def _intent(self, tx: Tx) -> dict:
        """A new publish, in the transaction that reserves its version numbers (it runs in a worker thread)."""
        signer = self.key.signer()
        releases = self.db.tx_stored_releases(tx)
        versions = tufrepo.Versions(self.db.next_version(tx, "targets"), self.db.next_version(tx, "snapshot"), 0)
        now = tufrepo.utcnow()
        blobs = tufrepo.build(releases, versions, signer, now, self.policy.targets_expiry)
        return {"targets": versions.targets, "snapshot": versions.snapshot, "keyid": signer.public_key.keyid,
                "expires": now.timestamp() + self.policy.targets_expiry,
                "releases": [[r.model, r.version] for r in releases],
                "blobs": [[b.key, b.data.decode(), b.cache_control] for b in blobs]}

    async def _carry_out(self, intent: dict) -> None:
        """Write the intent's immutable objects (each once), then timestamp.json; record what devices reach."""
        try:
            for key, text, cache_control in intent["blobs"]:
                await self._write_once(self.prefix + key, text.encode(), cache_control)
            await trio.to_thread.run_sync(self.db.mark_placed, intent)
            timestamp = await self._timestamp()
        except Exception as exc:
            metrics.PUBLISHES.labels("error").inc()
            if isinstance(exc, PublishConflict):
                await trio.to_thread.run_sync(self.db.drop_publish_intent, intent)
            raise
        metrics.PUBLISHES.labels("ok").inc()
        self._expiry_metrics({"targets": intent["expires"], "snapshot": intent["expires"]})
        log.info("published TUF metadata: targets v%d (%d releases), snapshot v%d, timestamp v%d",
                 intent["targets"], len(intent["releases"]), intent["snapshot"], timestamp)

    async def _write_once(self, key: str, data: bytes, cache_control: str) -> None:
        """A versioned object: written if absent (If-None-Match: *), else its bytes must be these already."""
        existing = await self._existing(key)
        if existing is None:
            try:
                await self.store.put(key, data, {}, "application/json", if_none_match=True,
                                     cache_control=cache_control)
                return
            except StoreError as exc:
                if http_status(exc.cause) != 412:
                    raise
            existing = await self._existing(key)  # written meanwhile (another host continuing this intent)
        if existing != data:
            log.error("%s already holds other bytes; it is never rewritten: publishing under new versions", key)
            raise PublishConflict(f"{key} already holds other bytes")

    async def _existing(self, key: str) -> bytes | None:
        try:
            return await self.store.get(key)
        except StoreError as exc:
            if http_status(exc.cause) == 404:
                return None
            raise

    async def _timestamp(self) -> int:
        """Sign and write timestamp.json for the newest snapshot in place; returns its version.

        Written again (new version, newest snapshot) when another write was recorded between our
        reservation and our record: either may have landed last (see DATABASE.md).
        """
        for attempt in range(TIMESTAMP_ROUNDS):
            plan = await trio.to_thread.run_sync(self.db.reserve_timestamp)
            if plan is None:
                raise PublishContended("no snapshot is in place to point timestamp.json at (its publish was abandoned)")
            now = tufrepo.utcnow()
            signer = self.key.signer()
            blob = tufrepo.timestamp(tufrepo.Versions(plan.targets, plan.snapshot, plan.version), signer, now,
                                     self.policy.timestamp_expiry, self.policy.timestamp_cache)
            if not await trio.to_thread.run_sync(self.db.timestamp_superseded, plan):  # else it loses: no PUT
                await self.store.put(self.prefix + blob.key, blob.data, {}, "application/json",
                                     cache_control=blob.cache_control)
                expires = now.timestamp() + self.policy.timestamp_expiry
                if await trio.to_thread.run_sync(self.db.record_timestamp, plan, expires, signer.public_key.keyid):
                    self._expiry_metrics({"timestamp": expires})
                    log.info("signed timestamp.json v%d (snapshot v%d)", plan.version, plan.snapshot)
                    return plan.version
            log.info("timestamp.json v%d raced with another writer; writing it again", plan.version)
            await trio.sleep(TIMESTAMP_BACKOFF.delay(attempt))  # else writers racing in step race again
        raise PublishContended(f"timestamp.json raced with other writers {TIMESTAMP_ROUNDS} times in a row")

    async def _root_expiry(self) -> None:
        """The root's expiry, as devices see it, for the metric (renewing it takes the offline key)."""
        data = await self._existing(self.prefix + tufrepo.METADATA + "root.json")
        if data is not None:
            self._expiry_metrics({"root": Metadata.from_bytes(data).signed.expires.timestamp()})

    def _expiry_metrics(self, expiries: dict[str, float]) -> None:
        for role, when in expiries.items():
            metrics.METADATA_EXPIRY.labels(role).set(when)
        if "timestamp" in expiries:
            metrics.TIMESTAMP_EXPIRY.set(expiries["timestamp"])

    # ------------------------------------------------------------------ verdicts
    async def release(self, r: Release, staged: str, upload: Part | None = None) -> None:
        """Put the judged payload at its content-addressed key, verified, then publish it.

        Published unless a completed publish carries it already (a failed one is
        continued here). Nothing at the release key is trusted: an object already there (planted
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
        await trio.to_thread.run_sync(self.db.mark_stored, r.model, r.version)
        if not await trio.to_thread.run_sync(self.db.is_published, r.model, r.version):
            await self.publish()

    async def _matches(self, key: str, r: Release, etag: str | None) -> bool:
        """Whether `key` (pinned to `etag` if given) holds exactly the release's bytes."""
        try:
            digest, _ = await sha256_of(self.store, key, r.length, etag, hashed=metrics.HASHED.inc)
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

    async def status(self, key: str, doc: status.Status) -> None:
        """Store the uploader's status object (announced like every other write: a backup shows it too)."""
        await self.store.put(key, doc.to_json(), {}, "application/json", cache_control="no-cache")

    async def remove(self, parts: list[Part], staged: str, folder: str = "") -> None:
        """Clear the upload area: parts still holding the bytes that were judged, then an emptied folder."""
        for part in parts:
            info = await self.store.head(part.key)
            if info is not None and info.etag == part.etag:
                await self.store.delete(part.key)
        if staged:
            await self.store.delete(staged)
        if folder:
            left = await self.store.list_page(listable(folder), None, delimiter="", max_keys=2)
            if [e.key for e in left.entries if e.key.startswith(folder)] == [folder]:  # only a mkdir's marker
                await self.store.delete(folder)
