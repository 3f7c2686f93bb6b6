"""The change feed's on-bucket format: journal objects under `.fsgateway/feed/`. Pure logic.

Every change a mount makes (upload, delete, rename, metadata change) is an
`Event`; a batch of events is one small JSON journal object. Journal keys
start with the UTC time they were written, fixed width, so that a reader can
list them in time order with `ListObjectsV2 StartAfter=<cursor>`, and carry
the writer's host id, run id and sequence number, so that keys never collide
between hosts or restarts:

    .fsgateway/feed/20261127T052000.123456Z-<host>-<run>-<seq:010d>.json

Hosts' clocks differ, so a journal object may appear behind a reader's
cursor; readers re-list a lookback window behind the cursor and skip the
journal objects they already applied (`start_after`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from fsgateway.formats import reserved

FEED_PREFIX = reserved.feed()
FORMAT = "fsgateway-feed/1"
OPS = ("put", "delete", "rename", "meta")
_STAMP = "%Y%m%dT%H%M%S.%fZ"
_STAMP_LEN = len("20261127T052000.123456Z")


@dataclass(frozen=True)
class Event:
    """One change of one key. `rename` also names `src`, the key that no longer exists."""

    op: str
    key: str
    time: str  # ISO 8601 UTC of the change
    size: int | None = None
    sha256: str | None = None
    etag: str | None = None
    src: str | None = None

    def touched(self) -> tuple[str, ...]:
        """Every key whose state this event changed."""
        return (self.src, self.key) if self.src is not None else (self.key,)


class EventFields(TypedDict, total=False):
    """The optional fields of an `Event`, for typing `**fields` of the callers that build one."""

    size: int | None
    sha256: str | None
    etag: str | None
    src: str | None


@dataclass(frozen=True)
class Journal:
    host: str
    run: str
    seq: int
    written: datetime
    events: tuple[Event, ...]


def iso(t: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ`; isoformat is the same text at a third of strftime's cost (one per event)."""
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def journal_key(written: datetime, host: str, run: str, seq: int) -> str:
    return f"{FEED_PREFIX}{written.astimezone(UTC).strftime(_STAMP)}-{host}-{run}-{seq:010d}.json"


def key_time(key: str) -> datetime | None:
    """When the journal object `key` was written, from its name; None for foreign keys."""
    if not key.startswith(FEED_PREFIX):
        return None
    try:
        return datetime.strptime(key[len(FEED_PREFIX):len(FEED_PREFIX) + _STAMP_LEN], _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def start_after(t: datetime) -> str:
    """A StartAfter value: every journal key written at or after `t` sorts behind it."""
    return FEED_PREFIX + (t - timedelta(microseconds=1)).astimezone(UTC).strftime(_STAMP) + "~"  # '~' > '-'


_EVENT_FIELDS = tuple(f.name for f in fields(Event))
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def encode(journal: Journal) -> bytes:
    """The journal as compact JSON, each event's fields in declaration order and the unset ones left out.

    Events are read field by field, not through `asdict` (which deep-copies each one): one
    journal record is encoded per close() with the local write-ahead log.
    """
    doc = {"format": FORMAT, "host": journal.host, "run": journal.run, "seq": journal.seq,
           "written": iso(journal.written),
           "events": [{k: v for k in _EVENT_FIELDS if (v := getattr(e, k)) is not None} for e in journal.events]}
    return _ENCODER.encode(doc).encode()


class FeedFormatError(ValueError):
    """A journal object this reader cannot understand."""


def decode(data: bytes) -> Journal:
    try:
        doc = json.loads(data)
        if doc.get("format") != FORMAT:
            raise FeedFormatError(f"unknown feed format {doc.get('format')!r}")
        events = tuple(Event(**e) for e in doc["events"])
        if any(e.op not in OPS for e in events):
            raise FeedFormatError("unknown event op")
        return Journal(doc["host"], doc["run"], int(doc["seq"]), parse_time(doc["written"]), events)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, FeedFormatError):
            raise
        raise FeedFormatError(f"malformed journal object: {exc}") from exc
