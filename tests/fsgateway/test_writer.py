"""Unit tests of the write path's pure pieces."""

from __future__ import annotations

import os

from fsgateway.mount.io.stream import StreamTail


def test_stream_tail_cuts_parts_in_order_and_keeps_the_rest():
    tail = StreamTail()
    data = os.urandom(1000)
    for i in range(0, 1000, 37):
        tail.append(data[i : i + 37])
    assert tail.size == 1000
    assert tail.peek(10, 20) == data[10:20]
    assert tail.take(300) == data[:300]
    assert tail.take(300) == data[300:600]
    assert tail.size == 400
    assert tail.take(1000) == data[600:]
    assert tail.size == 0 and tail.take(5) == b""
