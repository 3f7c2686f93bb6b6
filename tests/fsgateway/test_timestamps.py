"""The fast timestamp parser of the S3 client gives the instant botocore's own parser gives. Pure."""

from __future__ import annotations

import botocore.utils
import pytest

from fsgateway.store.client import parse_timestamp


@pytest.mark.parametrize("value", [
    "2026-12-01T16:00:00.000Z",  # RGW's listings
    "2026-12-01T16:00:00.123456Z",
    "2026-12-01T16:00:00Z",
    "2026-12-01T16:00:00+02:00",
    "Tue, 01 Dec 2026 16:00:00 GMT",  # the Last-Modified header of GET and HEAD
    "Sun, 06 Nov 1994 08:49:37 GMT",
    "1796140800",
    1796140800,
])
def test_same_instant_as_botocore(value):
    ours, theirs = parse_timestamp(value), botocore.utils.parse_timestamp(value)
    assert ours == theirs and ours.utcoffset() == theirs.utcoffset() and ours.tzinfo is not None


@pytest.mark.parametrize("value", ["2026-13-45T99:00:00Z-not-a-date", "Xyz, 99 Foo 2026 16:00:00 GMT"])
def test_garbage_is_refused_as_botocore_refuses_it(value):
    with pytest.raises(ValueError):
        botocore.utils.parse_timestamp(value)
    with pytest.raises(ValueError):
        parse_timestamp(value)
