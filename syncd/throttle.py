"""Bandwidth limit for the bytes that pass through syncd (streamed copies and hashing)."""

from __future__ import annotations

import trio


class Throttle:
    """Paces transfers to `rate` bytes/s on average: each transfer waits for its turn, then takes its share."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.next_free = 0.0

    def delay(self, nbytes: int, now: float) -> float:
        """Seconds to wait before sending `nbytes` at `now`; books the time it takes."""
        start = max(now, self.next_free)
        self.next_free = start + nbytes / self.rate
        return start - now

    async def take(self, nbytes: int) -> None:
        if self.rate > 0:
            await trio.sleep(self.delay(nbytes, trio.current_time()))
