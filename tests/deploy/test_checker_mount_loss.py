"""A checker whose mount disappears says so and gives no verdict until the mount is back.

Without the mount, /srv/firmware is a plain local directory: uploads land on
local disk, and a package being uploaded would be rejected at its deadline for
parts sitting on the wrong disk.
"""

from __future__ import annotations

import os
import time

from tests.support.checker import metric
from tests.support.mount import is_mounted
from tests.support.process import wait_for


def no_verdict_for(pipeline, version: str, seconds: float) -> bool:
    """True if no verdict on `version` appears within `seconds` (a negative needs an observation window;
    the checker lists incoming/ every second here, so an unguarded checker decides well within it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pipeline.verdict_count(version):
            return False
        time.sleep(0.2)
    return True


def test_checker_holds_verdicts_while_its_mount_is_gone_and_resumes_when_it_is_back(pipeline, mounted):
    checker = pipeline.start(mounted.path)
    bucket, path = pipeline.bucket, mounted.path

    def mount_up() -> float:
        return metric(checker.metrics(), "fsgateway_checker_mount_up", mount_dir=str(path))

    assert mount_up() == 1
    mounted.stop()
    assert not is_mounted(path)
    wait_for(lambda: mount_up() == 0, 30, "the checker to notice")
    wait_for(lambda: "is gone" in checker.log.read_text(), 10, "the checker to say so in its log")

    pipeline.put(pipeline.package("1.0.0", 1, os.urandom(4096)), "1.0.0")  # complete, straight into the bucket
    assert no_verdict_for(pipeline, "1.0.0", 5)

    mounted.start(bucket)
    assert mounted.path == path
    wait_for(lambda: mount_up() == 1, 30, "the checker to see it back")
    assert "is back" in checker.log.read_text()
    assert pipeline.verdict("1.0.0")[0] == "accepted"
