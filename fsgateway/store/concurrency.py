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


async def gather(thunks: list[Callable[[], Awaitable[T]]], limit: int | None = None,
                 limiter: trio.CapacityLimiter | None = None) -> list[T]:
    """Results in order; the first exception propagates as-is.

    At most `limit` run at once, or as many as `limiter` (shared with other callers) lends.
    The slots are taken here, one thunk after the other, before each starts: thunks start
    in order, and one may wait for an earlier one (which holds its slot) without deadlock.
    """
    results: list[T | None] = [None] * len(thunks)
    failure: list[BaseException] = []
    slots = limiter or (trio.CapacityLimiter(limit) if limit else None)

    async def one(i: int, thunk: Callable[[], Awaitable[T]], token: object, cancel: trio.CancelScope) -> None:
        try:
            results[i] = await thunk()
        except Exception as exc:
            if not failure:
                failure.append(exc)
            cancel.cancel()
        finally:
            if slots is not None:
                slots.release_on_behalf_of(token)

    async with trio.open_nursery() as nursery:
        for i, thunk in enumerate(thunks):
            token = object()
            if slots is not None:
                await slots.acquire_on_behalf_of(token)
            nursery.start_soon(one, i, thunk, token, nursery.cancel_scope)
    if failure:
        raise failure[0]
    return results  # type: ignore[return-value]  # no failure: every slot holds its thunk's result
