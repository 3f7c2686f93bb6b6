"""Who a daemon is in the bucket: a stable id per host and mount, used in staging and feed keys."""

from __future__ import annotations

import hashlib
import socket


def host_id(bucket: str, prefix: str, mountpoint: str) -> str:
    """Stable per host and mount, so a restart recognises its own leftovers."""
    raw = f"{socket.gethostname()}\0{bucket}\0{prefix}\0{mountpoint}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]
