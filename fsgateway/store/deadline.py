"""One deadline per caller: every request a file operation makes shares it.

A syscall may wait for a connection slot, then make several requests (HEAD,
PUT, CopyObject, a journal PUT), each retried. With a deadline per request it
could block a multiple of `retry_deadline`; the caller's deadline, started
when the operation starts and read by the store before every attempt, makes
`retry_deadline` the bound of the whole operation. Background work (part
uploads, read-ahead) starts a deadline of its own: it outlives the write or
read that started it, and whoever waits for it later is bounded by its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import trio

_DEADLINE: ContextVar[float | None] = ContextVar("fsgateway_deadline", default=None)


@contextmanager
def caller(seconds: float) -> Iterator[None]:
    """The current operation's deadline, `seconds` from now (an enclosing one is kept)."""
    if _DEADLINE.get() is not None:
        yield
        return
    token = _DEADLINE.set(trio.current_time() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


@contextmanager
def own(seconds: float) -> Iterator[None]:
    """A fresh deadline for background work, whatever the task that started it had."""
    token = _DEADLINE.set(trio.current_time() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def current(default_seconds: float) -> float:
    """The caller's deadline (trio clock), or `default_seconds` from now when it has none."""
    d = _DEADLINE.get()
    return trio.current_time() + default_seconds if d is None else d
