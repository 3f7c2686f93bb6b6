"""The checker's own writes reach the backup through the change feed, not at the next reconcile (an hour away)."""

from __future__ import annotations

import hashlib
import os

from tests.support.checker import MODEL
from tests.support.process import metric_value, wait_for
from tests.support.syncd import backup_body, backup_keys


def test_releases_metadata_quarantine_and_incoming_deletes_are_replicated_within_seconds(
        pipeline, same_backup, syncd_factory):
    good, bad = os.urandom(20000), os.urandom(3000)
    pipeline.put(pipeline.package("1.0.0", 1, good), "1.0.0")
    pipeline.put(pipeline.package("1.1.0", 2, bad, sha256="0" * 64), "1.1.0")
    syncd = syncd_factory(pipeline.bucket, same_backup).start(delete="mirror", reconcile_interval=3600)
    incoming = set(pipeline.keys("incoming/"))
    wait_for(lambda: incoming <= set(backup_keys(same_backup)), 60, "the start-up reconcile to copy incoming/")
    wait_for(lambda: metric_value(syncd.metrics(), "fsgateway_syncd_reconciles_total") == 1, 30,
             "the start-up reconcile to be counted")

    pipeline.start()
    assert pipeline.verdict("1.0.0")[0] == "accepted" and pipeline.verdict("1.1.0")[0] == "rejected"
    release = f"releases/{MODEL}/1.0.0/{hashlib.sha256(good).hexdigest()}.fw.bin"
    wanted = [release, *pipeline.keys("metadata/"), *pipeline.keys("quarantine/")]
    assert any(k.endswith("reason.json") for k in wanted) and any(k.endswith(".targets.json") for k in wanted)

    def replicated() -> bool:
        keys = set(backup_keys(same_backup))
        return set(wanted) <= keys and not keys & incoming and \
            backup_body(same_backup, "metadata/timestamp.json") == pipeline.get("metadata/timestamp.json")

    wait_for(replicated, 30, "the checker's writes and deletes in the backup")
    assert backup_body(same_backup, release) == good
    wait_for(lambda: metric_value(syncd.metrics(), "fsgateway_syncd_reconciles_total") == 1, 30,
             "the start-up reconcile to be counted")  # the feed did it, not a reconcile
    assert metric_value(syncd.metrics(), "fsgateway_syncd_deletes_total", outcome="held") == 0
