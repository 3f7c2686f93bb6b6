"""The status document the checker keeps per package for the developer who uploaded it. Pure.

Developers see the bucket through the mount but not the checker's database,
so the checker answers them in the bucket: `<prefix>status/<model>/<version>.json`
says *pending* (and why, and when the package will be rejected), *accepted*
(and the release key), *duplicate*, or *rejected* (the reason and the
quarantine folder). It lives beside `incoming/`, not in the package folder,
because a package folder must hold exactly a manifest and its payload.
Every string that came from an uploader (names, details) is escaped before it
is stored, so printing a status never drives a terminal.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields

from fsgateway.daemon.logs import escape

from .rules import name_problem

STATUS = "status/"
INVALID = "_invalid/"  # landings whose model or version cannot be a key of their own
STATES = ("pending", "accepted", "duplicate", "rejected")
SCHEMA = 1


class StatusError(ValueError):
    """Not a status document of this schema; the message is the one-line reason."""


@dataclass(frozen=True)
class Status:
    package: str  # incoming/<model>/<version>/ (escaped)
    model: str
    version: str
    state: str  # one of STATES
    reason: str  # the verdict's reason code ("ok" when accepted)
    detail: str
    updated_at: str  # ISO 8601 UTC
    deadline: str = ""  # pending: when it will be rejected if still incomplete
    release: str = ""  # accepted, duplicate: the release key
    quarantine: str = ""  # rejected: the folder holding the parts and reason.json

    def to_json(self) -> bytes:
        return json.dumps({"schema": SCHEMA, **asdict(self)}, indent=1, sort_keys=True).encode() + b"\n"


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def nameable(name: str | None) -> bool:
    """Whether a model or version can be a key component as it is (a valid landing name, printable, short
    enough for `<version>.json` to be a file name on the mount)."""
    return name is not None and name != "" and "/" not in name and name_problem(name) is None and \
        escape(name) == name and len(name.encode()) <= 200


def key(prefix: str, model: str | None, version: str | None, package_id: str) -> str:
    """Where the status of a landing is kept; hostile or missing names go under `status/_invalid/<id>.json`."""
    if nameable(model) and nameable(version):
        return f"{prefix}{STATUS}{model}/{version}.json"
    return f"{prefix}{STATUS}{INVALID}{package_id[:16]}.json"


def build(package: str, model: str, version: str, state: str, reason: str, detail: str, now: float, *,
          deadline: float | None = None, release: str = "", quarantine: str = "") -> Status:
    """A status with every uploader-chosen string escaped."""
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    return Status(escape(package), escape(model), escape(version), state, escape(reason), escape(detail), iso(now),
                  iso(deadline) if deadline is not None else "", escape(release), escape(quarantine))


def parse(data: bytes) -> Status:
    """A stored status document; StatusError if it is not one (anyone who can write the bucket can plant one)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StatusError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise StatusError(f"not a status document of schema {SCHEMA}")
    names = {f.name for f in fields(Status)}
    values = {k: v for k, v in doc.items() if k in names}
    if set(values) != names or not all(isinstance(v, str) for v in values.values()):
        raise StatusError(f"fields must be the strings {', '.join(sorted(names))}")
    if values["state"] not in STATES:
        raise StatusError(f"unknown state {escape(values['state'])!r}")
    return Status(**{k: escape(v) for k, v in values.items()})  # escaped again: planted documents too
