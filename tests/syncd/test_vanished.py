"""A key the checker deletes between syncd's listing and its copy: not an error, no hold-back of deletes."""

from __future__ import annotations

import trio

from fsgateway.store.client import ObjectStore, StoreSettings
from fsgateway.store.credentials import Keys
from syncd.copier import Copier
from syncd.metrics import REGISTRY
from syncd.plan import Version
from syncd.replicate import Replicator
from syncd.state import State
from syncd.throttle import Throttle


def store(bucket: str, endpoint: str, passwd, ca_bundle: str | None) -> ObjectStore:
    access, secret = passwd.read_text().strip().split(":")
    return ObjectStore(StoreSettings(bucket, endpoint, "us-east-1", True, Keys(access, secret), None,
                                     ca_bundle or True, 4, 10, 30, 5), role="primary")


def test_a_key_deleted_after_the_listing_is_counted_apart_and_deletes_still_run(bucket, s3, server, backup,
                                                                                 passwd_file, tmp_path):
    s3.put_object(Bucket=bucket, Key="incoming/m/1.0/fw.bin", Body=b"x" * 1000)
    primary = store(bucket, server.endpoint, passwd_file, server.ca_bundle)
    listed = Version.of_listing(trio.run(lambda: primary.list_page("", None, delimiter="")).entries[0])
    s3.delete_object(Bucket=bucket, Key="incoming/m/1.0/fw.bin")  # the checker cleared it meanwhile
    backup.client.put_object(Bucket=backup.name, Key="old", Body=b"deleted in the primary long ago")
    dst = store(backup.name, backup.endpoint, backup.passwd, None if backup.other_server else server.ca_bundle)
    state = State(str(tmp_path / "state"))
    rep = Replicator(primary, dst, Copier(primary, dst, state, not backup.other_server, 5 << 20, 2, Throttle(0)),
                     state, True, 10, 2, 2)
    before = REGISTRY.get_sample_value("fsgateway_syncd_vanished_total") or 0.0

    async def main() -> tuple[str | None, str | None]:
        return (await rep.sync("incoming/m/1.0/fw.bin", listed, missing=True),
                await rep.delete_confirmed("old") if rep.guard.allow() else "held")

    assert trio.run(main) == (None, None)
    assert rep.guard.errors == 0
    assert REGISTRY.get_sample_value("fsgateway_syncd_vanished_total") == before + 1
    assert "Contents" not in backup.client.list_objects_v2(Bucket=backup.name)
    state.close()
