"""Unit tests of the write path's pure pieces."""

from __future__ import annotations

import os

from fsgateway.mount.io.buffers import PartBuffers
from fsgateway.mount.io.stream import StreamTail
from tests.support.clock import Clock


def test_stream_tail_fills_one_part_buffer_and_gives_it_away_whole():
    tail = StreamTail(PartBuffers(300, keep=2))
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


def test_a_large_tail_moves_once_into_a_reused_part_buffer_and_a_small_one_stays_its_size():
    part = 3 * StreamTail.GROW_LIMIT
    buffers = PartBuffers(part, keep=2)
    data = os.urandom(part + 1000)
    small = StreamTail(buffers)
    small.fill(data[:1000], part)
    assert len(small.buf) == 1000  # a small file holds only its bytes
    tail = StreamTail(buffers)
    for off in range(0, len(data), 1 << 18):
        chunk = memoryview(data)[off:off + (1 << 18)]
        n = tail.fill(chunk, part)
        if tail.size == part:
            first = tail.take()
            assert first == data[:part] and len(first) == part
            assert buffers.give(first)  # its upload is done: kept for the next part
            tail.fill(chunk[n:], part)
    assert tail.size == 1000 and tail.peek(0, 2000) == data[part:]
    rest = data[: part - 1005]
    assert tail.fill(rest, part) == len(rest)  # the second part reuses the first one's buffer
    assert tail.buf is first and not buffers.free
    last = tail.take()  # a part buffer that is not full: its bytes copied out, the buffer reused at once
    assert last == data[part:] + rest and len(last) == len(data) - part + len(rest)
    assert buffers.free == [first] and tail.size == 0


def test_part_buffers_keep_a_bounded_number_and_let_them_go_when_idle():
    clock = Clock()
    buffers = PartBuffers(64, keep=2, idle=5.0, clock=clock)
    a, b, c = buffers.take(), buffers.take(), buffers.take()
    assert len(a) == 64 and a is not b
    assert buffers.give(a) and buffers.give(b)
    assert not buffers.give(c)  # over `keep`: freed, not kept
    assert not buffers.give(bytearray(10))  # not one of ours
    assert buffers.take() is b and buffers.give(b)
    clock.now += 4.9
    buffers.expire()
    assert len(buffers.free) == 2
    clock.now += 0.2
    buffers.expire()
    assert buffers.free == []
