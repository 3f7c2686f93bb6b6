"""The packages waiting for a worker: never dropped, never queued twice, served fairly by model.

Anyone who can write incoming/ can create folders for nothing: ten thousand
one-byte folders must neither overflow the intake (a bounded channel that
raises when full loses work) nor make a package of another model wait for all
of them. So each model (the folder below incoming/) has its own lane, lanes
are served round-robin, and within a lane a package not looked at yet goes
before a pending one looked at again. An entry is a package prefix: the same
one queued twice is one entry, so the queue never holds more than the bucket.
"""

from __future__ import annotations

from collections import OrderedDict, deque

import trio

from . import metrics


class FairQueue:
    def __init__(self) -> None:
        self._lanes: OrderedDict[str, tuple[deque[str], deque[str]]] = OrderedDict()  # model -> (fresh, again)
        self._members: set[str] = set()
        self._items = trio.Semaphore(0)  # one token per entry
        self._empty = trio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, item: str) -> bool:
        return item in self._members

    def put(self, item: str, lane: str, again: bool = False) -> bool:
        """Queue `item` in `lane` unless it is queued already; True if it was added."""
        if item in self._members:
            return False
        self._members.add(item)
        queues = self._lanes.setdefault(lane, (deque(), deque()))
        queues[1 if again else 0].append(item)
        self._items.release()
        self._empty = trio.Event() if self._empty.is_set() else self._empty
        metrics.QUEUED.set(len(self._members))
        return True

    async def get(self) -> str:
        """The next entry: the first lane in turn gives one (fresh before again) and goes to the back."""
        await self._items.acquire()
        lane, (fresh, again) = next(iter(self._lanes.items()))
        item = fresh.popleft() if fresh else again.popleft()
        if fresh or again:
            self._lanes.move_to_end(lane)
        else:
            del self._lanes[lane]
        self._members.discard(item)
        if not self._members:
            self._empty.set()
        metrics.QUEUED.set(len(self._members))
        return item

    async def drained(self) -> None:
        """Wait until every entry has been taken by a worker (the intake's back-pressure)."""
        await self._empty.wait()
