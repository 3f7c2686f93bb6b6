"""Which packages have landed under incoming/, and whether they are complete. Pure.

A package is the set of objects under `incoming/<model>/<version>/`. Objects
appear whole (the mount commits on close, other tools PUT atomically), but
the two parts of a package arrive in either order and rsync writes a hidden
temporary name first. So a package is judged only once its manifest and the
payload it names are both there at the declared size; until then it is
pending, and past the deadline it is rejected.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .rules import MANIFEST_NAME, Problem, check_key


@dataclass(frozen=True)
class Part:
    key: str
    size: int
    etag: str
    last_modified: float  # epoch seconds


@dataclass
class Package:
    prefix: str  # incoming/<model>/<version>/
    model: str
    version: str
    parts: dict[str, Part] = field(default_factory=dict)  # by file name
    hidden: list[Part] = field(default_factory=list)  # in-progress temporaries (".name.XXXX")
    problem: Problem | None = None  # a bad name somewhere in the package: judged at once

    @property
    def manifest(self) -> Part | None:
        return self.parts.get(MANIFEST_NAME)

    def landed_at(self) -> float:
        """When the last part arrived (the start of landing-to-verdict latency)."""
        return max((p.last_modified for p in self.parts.values()), default=0.0)

    def first_seen(self) -> float:
        """When the first part arrived: pending deadlines count from here, so restarts keep them."""
        return min((p.last_modified for p in [*self.parts.values(), *self.hidden]), default=0.0)

    def package_id(self) -> str:
        """Identity of this landing: the same bytes uploaded again later are a new landing."""
        h = hashlib.sha256(self.prefix.encode("utf-8", "surrogateescape"))
        for name in sorted(self.parts):
            p = self.parts[name]
            h.update(f"\0{name}\0{p.size}\0{p.etag}\0{p.last_modified}".encode("utf-8", "surrogateescape"))
        return h.hexdigest()[:32]


def listable(prefix: str) -> str:
    """`prefix` cut before its first unprintable character: Ceph RGW answers a ListObjects prefix holding
    one (an uploader's folder name) with 500 for ever. Callers keep only the keys that start with `prefix`."""
    return next((prefix[:i] for i, c in enumerate(prefix) if not c.isprintable()), prefix)


def group(objects: list[Part], incoming: str) -> tuple[list[Package], list[tuple[Part, Problem]]]:
    """Packages under `incoming`, and stray keys that are not in any package (each with its problem)."""
    packages: dict[str, Package] = {}
    strays: list[tuple[Part, Problem]] = []
    for obj in objects:
        rel = obj.key[len(incoming):]
        if not rel or rel.endswith("/"):
            continue  # directory markers made by mkdir on the mount
        parts = rel.split("/")
        problem = check_key(rel)
        if len(parts) != 3:
            strays.append((obj, problem or Problem("bad_layout", "not inside incoming/<model>/<version>/")))
            continue
        model, version, name = parts
        prefix = f"{incoming}{model}/{version}/"
        pkg = packages.setdefault(prefix, Package(prefix, model, version))
        if problem:
            pkg.problem = pkg.problem or problem
        if name.startswith(".") and name != MANIFEST_NAME:
            pkg.hidden.append(obj)
        else:
            pkg.parts[name] = obj
    return list(packages.values()), strays
