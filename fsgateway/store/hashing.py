"""The SHA-256 of one version of an object, streamed: the checker's judging and release checks, syncd's
comparison of a primary and a backup object. One loop, so the pinning promise is kept in one place."""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Awaitable, Callable

import trio

from .client import ObjectStore, StoreError
from .retry import http_status

CHUNK = 16 << 20  # bytes per ranged GET; at most two are held at once (one read ahead of the hashing)


async def sha256_of(store: ObjectStore, key: str, size: int, etag: str | None = None, *, chunk: int = CHUNK,
                    before_get: Callable[[int], Awaitable[None]] | None = None,
                    buffers: trio.CapacityLimiter | None = None,
                    hashed: Callable[[int], None] | None = None) -> tuple[str, str]:
    """SHA-256 of exactly one version of `key`, which must be `size` bytes; returns (hex digest, its ETag).

    Every ranged GET is pinned (If-Match) to one ETag — the given one, or the
    first response's — and the object's total size must be `size`: bytes
    swapped or appended meanwhile end in StoreError(ESTALE), never in a digest
    of something else. One GET runs ahead of the hashing, which runs in a
    worker thread (hashlib drops the GIL for big buffers), so the event loop
    goes on. `before_get(n)` is awaited before each GET of n bytes (a bandwidth
    limit); `buffers` bounds the chunks held process-wide (one token each,
    from its GET until it is hashed); `hashed(n)` counts what was hashed.
    """
    h = hashlib.sha256()
    send, receive = trio.open_memory_channel[tuple[bytes, object]](0)
    pinned = etag or None

    async def fetch() -> None:
        nonlocal pinned
        async with send:
            for start in range(0, max(size, 1), chunk):
                end = min(size, start + chunk)
                token = object()
                if buffers is not None:
                    await buffers.acquire_on_behalf_of(token)
                try:
                    if before_get is not None:
                        await before_get(end - start)
                    try:
                        data, info = await store.get_with_info(key, start, end if size else None, pinned)
                    except StoreError as exc:
                        if http_status(exc.cause) != 416:
                            raise
                        raise StoreError("get", key, ValueError(f"object is shorter than {end} bytes"),
                                         errno.ESTALE) from exc  # emptied or truncated below the range
                    if info.size != size or len(data) != end - start:
                        raise StoreError("get", key, ValueError(
                            f"object is {info.size} bytes (ETag {info.etag}), expected {size} (ETag {pinned})"),
                            errno.ESTALE)
                    pinned = pinned or info.etag or None
                    await send.send((data, token))
                except BaseException:
                    if buffers is not None:
                        buffers.release_on_behalf_of(token)
                    raise

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fetch)
            async with receive:
                async for data, token in receive:
                    try:
                        await trio.to_thread.run_sync(h.update, data)
                    finally:
                        if buffers is not None:
                            buffers.release_on_behalf_of(token)
                    if hashed is not None:
                        hashed(len(data))
    except ExceptionGroup as group:  # callers handle the fetcher's StoreError itself
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], StoreError):
            raise group.exceptions[0] from None
        raise
    return h.hexdigest(), pinned or ""
