"""Which S3 failures are worth retrying, and how long to wait between tries.

Full-jitter exponential backoff under an overall deadline: a caller gets its
answer or an error (EIO) when the deadline passes, never a hang. Pure logic.
"""

from __future__ import annotations

import errno
import random
from dataclasses import dataclass

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import ProtocolError

TRANSIENT_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling",
     "ThrottlingException", "RequestTimeTooSkewed", "BadDigest", "IncompleteBody", "XAmzContentSHA256Mismatch"}
)
TRANSIENT_EXCEPTIONS = (
    EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError,
    ResponseStreamingError, ProtocolError, ConnectionError, TimeoutError,
)


def error_code(exc: BaseException) -> str:
    """The S3 error code of a ClientError (`NoSuchKey`, `404`, ...), else the class name."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return type(exc).__name__


def http_status(exc: BaseException) -> int:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT_EXCEPTIONS):
        return True
    if isinstance(exc, ClientError):
        return error_code(exc) in TRANSIENT_CODES or http_status(exc) >= 500 or http_status(exc) == 429
    return False


def errno_for(exc: BaseException) -> int:
    """The errno a file operation reports for a final (non-retried) S3 failure."""
    status = http_status(exc)
    code = error_code(exc)
    if status == 404 or code in ("NoSuchKey", "NotFound", "NoSuchUpload"):
        return errno.ENOENT
    if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return errno.EACCES
    if code == "EntityTooLarge":
        return errno.EFBIG
    if status == 412:
        return errno.ESTALE
    return errno.EIO


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: sleep uniform(0, min(cap, base * 2**attempt))."""

    base: float = 0.1
    cap: float = 5.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        r = rng or random
        return r.uniform(0, min(self.cap, self.base * (2 ** min(attempt, 30))))
