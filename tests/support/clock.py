"""A clock for pure tests of time-bound caches."""

from __future__ import annotations


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
