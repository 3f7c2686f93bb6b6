"""Unit tests of the write path's pure pieces."""

from __future__ import annotations

import os

from fsgateway.mount.io.stream import StreamTail


def test_stream_tail_fills_one_part_buffer_and_gives_it_away_whole():
    tail = StreamTail()
    data = os.urandom(1000)
    taken, parts = 0, []
    while taken < len(data):
        n = tail.fill(memoryview(data)[taken : taken + 37], 300)
        assert n <= 37 and tail.size <= 300
        taken += n
        if tail.size == 300:
            parts.append(tail.take())
    assert tail.size == 100
    assert tail.peek(10, 20) == data[910:920]
    assert parts == [data[:300], data[300:600], data[600:900]]
    assert tail.fill(b"xyz", 100) == 0  # full: nothing more goes in
    assert tail.take() == data[900:] and tail.size == 0
