"""Unit tests of which staging leftovers start-up clean-up removes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fsgateway.daemon.identity import host_id
from fsgateway.mount.housekeeping import _is_stale

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OWN = ".fsgateway/staging/me/"
CURRENT = OWN + "run2-"


def test_own_earlier_runs_are_stale_at_once_current_run_never():
    assert _is_stale(OWN + "run1-abc", NOW, OWN, CURRENT, 3600, NOW)
    assert not _is_stale(CURRENT + "abc", NOW - timedelta(days=9), OWN, CURRENT, 3600, NOW)


def test_other_hosts_only_after_max_age():
    other = ".fsgateway/staging/other/run-x"
    assert not _is_stale(other, NOW - timedelta(minutes=5), OWN, CURRENT, 3600, NOW)
    assert _is_stale(other, NOW - timedelta(hours=2), OWN, CURRENT, 3600, NOW)
    assert not _is_stale(other, None, OWN, CURRENT, 3600, NOW)


def test_host_id_is_stable_and_distinguishes_mounts():
    assert host_id("b", "", "/mnt/a") == host_id("b", "", "/mnt/a")
    assert host_id("b", "", "/mnt/a") != host_id("b", "", "/mnt/b")
    assert host_id("b", "", "/mnt/a") != host_id("b", "p/", "/mnt/a")
