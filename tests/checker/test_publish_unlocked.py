"""Publishing holds no lock across S3 requests: a slow bucket stalls nobody else's publish.

Two publishers share one version database (SQLite and PostgreSQL): "checker A"
writes through a fault proxy that holds one PUT of TUF metadata unanswered;
"checker B" (another host, or another task of the same process) publishes its
own release meanwhile. When the PUT is let go, A finishes, and the repository
devices see carries both releases under one line of versions.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
import trio

from checker import signing, tufrepo
from checker.db import Database
from checker.publisher import Publisher, RepoPolicy
from checker.rules import Release
from tests.support.checker import MODEL
from tests.support.faultproxy import FaultProxy

pytestmark = pytest.mark.s3

WAIT = 30  # seconds a publish may take on a loaded machine; the held PUT is held for longer


def _stored_release(db: Database, version: str, counter: int) -> Release:
    data = version.encode()
    r = Release(MODEL, "stable", version, counter, hashlib.sha256(data).hexdigest(), len(data), "fw.bin", ("A",))
    with db.transaction() as tx:
        db.record_release(tx, r, "{}", tufrepo.release_key(r), uuid.uuid4().hex, "k")
    db.mark_stored(r.model, r.version)
    return r


def _targets(s3, bucket: str) -> dict:
    """The targets devices reach: timestamp.json -> N.snapshot.json -> N.targets.json."""
    def get(key: str) -> dict:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    snapshot = get("metadata/timestamp.json")["signed"]["meta"]["snapshot.json"]["version"]
    targets = get(f"metadata/{snapshot}.snapshot.json")["signed"]["meta"]["targets.json"]["version"]
    return get(f"metadata/{targets}.targets.json")["signed"]["targets"]


@pytest.mark.parametrize("other", ["host", "task"])
def test_a_held_metadata_put_blocks_no_other_publish(server, s3, bucket, database_url, tmp_path, other):
    if not server.endpoint.startswith("http://"):
        pytest.skip("the fault proxy judges plain HTTP only")
    proxy = FaultProxy.to(server.endpoint, max_stall=4 * WAIT).start()
    signing.generate(str(tmp_path / "online.key"), str(tmp_path / "online.pub"))
    key = signing.OnlineKey(str(tmp_path / "online.key"))
    policy = RepoPolicy(86400, 86400, 60)
    dbs = [Database(database_url), Database(database_url)]
    dbs[0].migrate()
    a = Publisher(server.store(bucket, proxy.endpoint, 3 * WAIT), dbs[0], "", key, policy, "host-a")
    b = a if other == "task" else Publisher(server.store(bucket, deadline=3 * WAIT), dbs[1], "", key, policy, "host-b")
    held = proxy.add("stall", "put", key=r"^metadata/\d+\.targets\.json$", times=1)
    first = _stored_release(dbs[0], "1.0.0", 1)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.publish)
            with trio.fail_after(WAIT):
                while held.hits == 0:  # polled: the proxy runs in its own thread
                    await trio.sleep(0.05)
            second = await trio.to_thread.run_sync(_stored_release, dbs[1], "1.1.0", 2)
            # Before: B queued behind A's publish lock until the held PUT ended.
            with trio.fail_after(WAIT):
                await b.publish()
            assert {tufrepo.target_path(r) for r in (first, second)} <= set(_targets(s3, bucket))
            assert held.hits == 1 and proxy.seen("put", "stall")  # A's PUT is still held
            proxy.release()

    try:
        trio.run(main)
    finally:
        proxy.stop()
    targets = _targets(s3, bucket)
    assert {f"{MODEL}/1.0.0/fw.bin", f"{MODEL}/1.1.0/fw.bin"} <= set(targets)
    db = dbs[0]
    assert db.publish_intent() is None and db.unpublished_releases() == 0
    published = db.published()
    ts = json.loads(s3.get_object(Bucket=bucket, Key="metadata/timestamp.json")["Body"].read())["signed"]
    assert ts["version"] == published["timestamp"][0]
    assert ts["meta"]["snapshot.json"]["version"] == published["snapshot"][0]
    for d in dbs:
        d.close()


def test_many_publishes_at_once_on_two_hosts_end_on_the_newest_timestamp(server, s3, bucket, database_url, tmp_path):
    """Releases stored and published by 8 tasks on two "hosts" at once: every release is in what devices
    reach, and the timestamp.json that landed last is the newest one recorded (none lost or forked)."""
    signing.generate(str(tmp_path / "online.key"), str(tmp_path / "online.pub"))
    key = signing.OnlineKey(str(tmp_path / "online.key"))
    dbs = [Database(database_url), Database(database_url)]
    dbs[0].migrate()
    hosts = [Publisher(server.store(bucket), d, "", key, RepoPolicy(86400, 86400, 60), f"h{i}")
             for i, d in enumerate(dbs)]
    versions = [f"1.{n}.0" for n in range(8)]

    async def one(n: int) -> None:
        host = hosts[n % 2]
        await trio.to_thread.run_sync(_stored_release, host.db, versions[n], n + 1)
        await host.publish()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for n in range(len(versions)):
                nursery.start_soon(one, n)

    trio.run(main)
    assert {f"{MODEL}/{v}/fw.bin" for v in versions} <= set(_targets(s3, bucket))
    db = dbs[0]
    assert db.publish_intent() is None and db.unpublished_releases() == 0
    ts = json.loads(s3.get_object(Bucket=bucket, Key="metadata/timestamp.json")["Body"].read())["signed"]
    published = db.published()
    assert (ts["version"], ts["meta"]["snapshot.json"]["version"]) == (published["timestamp"][0],
                                                                       published["snapshot"][0])
    for d in dbs:
        d.close()
