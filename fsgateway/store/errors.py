"""The one exception shape every layer raises: a message plus the errno the caller gets.

The FUSE adapter maps any `GatewayError` to that errno in one place, so the
layers below raise what they know (StoreError, WriteError, ReadError, FsError)
without re-wrapping each other's failures.
"""

from __future__ import annotations

import os


class GatewayError(Exception):
    def __init__(self, errno_: int, message: str = "") -> None:
        super().__init__(message or os.strerror(errno_))
        self.errno = errno_
