"""Building Manifest objects for rule tests without signing anything."""

from __future__ import annotations

from checker.manifest import Manifest


def manifest_for(model: str, version: str, counter: int, sha: str = "a" * 64, channel: str = "stable",
                 length: int = 10, hw: tuple[str, ...] = ("A",), name: str = "fw.bin") -> Manifest:
    return Manifest(model, hw, version, counter, channel, name, length, sha, (), b"")
