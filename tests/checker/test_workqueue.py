"""The checker's work intake: nothing dropped, nothing twice, one model's flood never starves another."""

from __future__ import annotations

import trio

from checker.workqueue import FairQueue


def test_a_flood_in_one_model_does_not_delay_another_model_and_nothing_is_lost():
    async def main() -> list[str]:
        q = FairQueue()
        for i in range(20_000):  # twice the old channel's capacity
            q.put(f"incoming/flood/{i}/", "flood")
        q.put("incoming/sensor-x/1.0.0/", "sensor-x")
        out = [await q.get() for _ in range(len(q))]
        assert len(q) == 0
        return out

    out = trio.run(main)
    assert out.index("incoming/sensor-x/1.0.0/") <= 1
    assert len(out) == len(set(out)) == 20_001


def test_an_entry_is_queued_once_and_fresh_packages_go_before_pending_ones():
    async def main() -> list[str]:
        q = FairQueue()
        assert q.put("a/old/", "m", again=True)
        assert not q.put("a/old/", "m")
        assert q.put("a/new/", "m")
        return [await q.get(), await q.get()]

    assert trio.run(main) == ["a/new/", "a/old/"]


def test_workers_wait_for_work_and_the_intake_waits_until_it_is_drained():
    async def main() -> list[str]:
        q = FairQueue()
        got: list[str] = []

        async def worker() -> None:
            while True:
                got.append(await q.get())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker)
            await q.drained()  # empty: returns at once
            for i in range(5):
                q.put(f"p{i}", f"m{i % 2}")
            await q.drained()
            nursery.cancel_scope.cancel()
        return got

    assert sorted(trio.run(main)) == [f"p{i}" for i in range(5)]
