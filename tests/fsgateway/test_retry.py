"""Unit tests of retry classification and backoff."""

from __future__ import annotations

import errno
import random

from botocore.exceptions import ClientError, EndpointConnectionError

from fsgateway.store.retry import Backoff, errno_for, is_transient


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


def test_retry_classification():
    assert is_transient(_client_error("SlowDown", 503))
    assert is_transient(_client_error("InternalError", 500))
    assert is_transient(EndpointConnectionError(endpoint_url="http://x"))
    assert not is_transient(_client_error("NoSuchKey", 404))
    assert not is_transient(_client_error("AccessDenied", 403))
    assert errno_for(_client_error("NoSuchKey", 404)) == errno.ENOENT
    assert errno_for(_client_error("AccessDenied", 403)) == errno.EACCES
    assert errno_for(_client_error("PreconditionFailed", 412)) == errno.ESTALE
    assert errno_for(_client_error("InternalError", 500)) == errno.EIO


def test_backoff_is_jittered_and_capped():
    b = Backoff(base=0.1, cap=2.0)
    rng = random.Random(1)
    delays = [b.delay(a, rng) for a in range(40)]
    assert all(0 <= d <= 2.0 for d in delays)
    assert len(set(delays)) == len(delays)
    assert max(b.delay(0, random.Random(i)) for i in range(100)) <= 0.1
