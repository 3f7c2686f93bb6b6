"""Each daemon exports its own series only: importing a module never adds series to another daemon.

The checker and syncd import mount modules; when those registered their
metrics in prometheus_client's global registry, both exported
`fsgateway_mount_up 0` and the critical FsgatewayMountDown alert fired for
them on every healthy host.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.process import REPO

MOUNT_ONLY = ("fsgateway_mount_", "fsgateway_uploads", "fsgateway_fuse_", "fsgateway_cache_",
              "fsgateway_staging_", "fsgateway_checksum_", "fsgateway_unmappable_", "fsgateway_stale_")
FEED = "fsgateway_feed_"  # the change feed's writers: the mount and the checker

PROBE = """
import importlib, json, pkgutil
import checker, fsgateway, syncd
for package in (fsgateway, checker, syncd):  # every module of the three daemons, the mount's included
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
from prometheus_client import REGISTRY, generate_latest
from checker import cli as checker_cli
from fsgateway.mount import cli as mount_cli
from fsgateway.daemon.metrics_server import daemon_registry
from syncd import cli as syncd_cli
def names(registry):
    return sorted({s.name for m in registry.collect() for s in m.samples})
print(json.dumps({
    "default": names(REGISTRY),
    "mount": names(daemon_registry(*mount_cli.REGISTRIES)),
    "checker": names(daemon_registry(*checker_cli.REGISTRIES)),
    "syncd": names(daemon_registry(*syncd_cli.REGISTRIES)),
}))
"""


def expositions() -> dict[str, list[str]]:
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_importing_every_module_adds_no_series_to_the_global_registry():
    assert [n for n in expositions()["default"] if n.startswith("fsgateway_")] == []


def test_the_checker_and_syncd_registries_hold_no_mount_series_and_the_mount_holds_its_own():
    got = expositions()
    for daemon in ("checker", "syncd"):
        assert [n for n in got[daemon] if n.startswith(MOUNT_ONLY)] == [], daemon
        assert any(n.startswith(f"fsgateway_{daemon}_") for n in got[daemon])
        assert "process_start_time_seconds" in got[daemon]
    assert "fsgateway_mount_up" in got["mount"] and not any(n.startswith("fsgateway_checker_") for n in got["mount"])
    assert not any(n.startswith(FEED) for n in got["syncd"])  # syncd reads the feed; its writers count it
    assert all(any(n.startswith(FEED) for n in got[d]) for d in ("mount", "checker"))
