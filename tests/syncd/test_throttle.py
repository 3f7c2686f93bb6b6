"""The bandwidth limit's pacing (pure)."""

from __future__ import annotations

from syncd.throttle import Throttle


def test_transfers_are_paced_to_the_rate():
    t = Throttle(rate=1000)
    assert t.delay(500, now=10.0) == 0.0  # first transfer goes at once, books 0.5 s
    assert t.delay(1000, now=10.0) == 0.5  # the next waits for that
    assert t.delay(100, now=20.0) == 0.0  # idle time is not saved up as a burst
    assert t.next_free == 20.1
