"""Run a batch of requests concurrently and fail like a single call would.

A trio nursery reports failures as an ExceptionGroup; callers of the store
expect one `StoreError` with one errno. `gather` cancels the rest on the
first failure and re-raises that failure itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

T = TypeVar("T")


async def gather(thunks: list[Callable[[], Awaitable[T]]], limit: int | None = None) -> list[T]:
    """Results in order; at most `limit` running at once; the first exception propagates as-is."""
    results: list[T | None] = [None] * len(thunks)
    failure: list[BaseException] = []
    limiter = trio.CapacityLimiter(limit) if limit else None

    async def one(i: int, thunk: Callable[[], Awaitable[T]], cancel: trio.CancelScope) -> None:
        try:
            if limiter is None:
                results[i] = await thunk()
            else:
                async with limiter:
                    results[i] = await thunk()
        except Exception as exc:
            if not failure:
                failure.append(exc)
            cancel.cancel()

    async with trio.open_nursery() as nursery:
        for i, thunk in enumerate(thunks):
            nursery.start_soon(one, i, thunk, nursery.cancel_scope)
    if failure:
        raise failure[0]
    return results  # type: ignore[return-value]  # no failure: every slot holds its thunk's result
