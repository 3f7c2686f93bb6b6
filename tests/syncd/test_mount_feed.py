"""A mount killed after close() returned, before its write-ahead log was flushed: syncd still mirrors the file.

The reconcile is an hour away, so only the replayed change feed can bring the file to the backup.
"""

from __future__ import annotations

import os
import signal
import subprocess

from tests.support.process import metric_value, wait_for
from tests.support.syncd import backup_body, backup_keys


def test_a_killed_mounts_announcements_reach_the_backup_after_its_restart(mounter, bucket, same_backup,
                                                                           syncd_factory):
    syncd = syncd_factory(bucket, same_backup).start(reconcile_interval=3600)
    wait_for(lambda: metric_value(syncd.metrics(), "fsgateway_syncd_reconciles_total") == 1, 30,
             "the start-up reconcile")
    m = mounter()
    path = m.start(bucket, "feed_flush=600")
    data = os.urandom(5000)
    (path / "fw.bin").write_bytes(data)  # close() returned: the announcement is in the local log only
    m.proc.send_signal(signal.SIGKILL)
    m.proc.wait(timeout=30)
    m.proc = subprocess.Popen(m.command(bucket, path, ["feed_flush=600"]), stdout=open(m.log, "ab"),
                              stderr=subprocess.STDOUT)
    wait_for(lambda: "fw.bin" in backup_keys(same_backup), 60, "the replayed feed to bring fw.bin to the backup")
    assert backup_body(same_backup, "fw.bin") == data
    assert metric_value(syncd.metrics(), "fsgateway_syncd_reconciles_total") == 1  # the feed did it
