"""The systemd units and the install path: systemd-analyze accepts them, make install places them."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.process import REPO

UNITS = ["fsgateway@.service", "fsgateway-checker.service", "fsgateway-syncd.service"]


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(REPO / "systemd" / name)
    return parser


def test_systemd_analyze_verify_accepts_the_units():
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    for command in ("fsgateway", "fsgateway-checker", "fsgateway-syncd"):
        assert Path("/usr/local/bin", command).exists(), f"scripts/setup links {command} into /usr/local/bin"
    r = subprocess.run(["make", "-s", "check-units"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


# systemd.exec(5): each of these gives the service its own mount namespace, which disconnects mount
# propagation: a FUSE mount made inside would be invisible to the host (tests/systemd/test_boot.py).
MOUNT_NAMESPACE_SETTINGS = (
    "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts", "PrivateIPC", "ReadWritePaths",
    "ReadOnlyPaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths", "BindPaths", "BindReadOnlyPaths",
    "TemporaryFileSystem", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
    "ProtectControlGroups", "ProtectProc", "ProcSubset", "MountFlags", "RootDirectory", "RootImage", "DynamicUser",
    "LogNamespace", "MountAPIVFS",
)


@pytest.mark.parametrize("name", UNITS)
def test_every_daemon_is_notify_with_watchdog_restart_and_hardening(name):
    u = unit(name)
    service = u["Service"]
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes"
    assert "network-online.target" in u["Unit"]["After"] and "network-online.target" in u["Unit"]["Wants"]
    assert service["ExecStart"].startswith("/usr/local/bin/fsgateway")
    if name == "fsgateway@.service":  # the mount: seen by the whole host, so no mount namespace
        assert [s for s in MOUNT_NAMESPACE_SETTINGS if s in service] == []
    else:
        assert service["ProtectSystem"] == "strict"
        assert service["ProtectHome"] == "yes" and service["PrivateTmp"] == "yes"


@pytest.mark.parametrize("name", UNITS)
def test_paths_a_namespace_needs_may_be_missing(name):
    """ReadWritePaths= etc. without "-" fail with 226/NAMESPACE when the path does not exist yet."""
    service = unit(name)["Service"]
    for setting in ("ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths"):
        assert all(path.startswith("-") for path in service.get(setting, "").split()), setting


def test_checker_and_syncd_start_after_the_mount_and_the_checker_stops_with_it():
    checker, syncd = unit("fsgateway-checker.service")["Unit"], unit("fsgateway-syncd.service")["Unit"]
    assert "fsgateway@srv-firmware.service" in checker["After"] and "fsgateway@srv-firmware.service" in syncd["After"]
    assert checker["Requires"] == checker["PartOf"] == "fsgateway@srv-firmware.service"
    # Only the mount may hold a capability (mounting needs CAP_SYS_ADMIN).
    assert unit("fsgateway-checker.service")["Service"]["CapabilityBoundingSet"] == ""
    assert unit("fsgateway-syncd.service")["Service"]["CapabilityBoundingSet"] == ""
    assert unit("fsgateway@.service")["Service"]["CapabilityBoundingSet"] == "CAP_SYS_ADMIN"


def test_make_install_files_places_everything_and_keeps_existing_config(tmp_path):
    stage = tmp_path / "stage"
    kept = stage / "etc/fsgateway/fsgateway.toml"
    kept.parent.mkdir(parents=True)
    kept.write_text("# the operator's own\n")
    r = subprocess.run(["make", "-s", "install-files", f"DESTDIR={stage}"], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in UNITS:
        assert (stage / "etc/systemd/system" / name).read_text() == (REPO / "systemd" / name).read_text()
    assert kept.read_text() == "# the operator's own\n"
    assert (stage / "etc/fsgateway/srv-firmware.env").read_text().startswith("#")
    assert (stage / "etc/prometheus/fsgateway-rules.yml").exists()
    assert (stage / "usr/local/share/fsgateway/fsgateway-dashboard.json").exists()


def test_the_example_config_is_valid_for_every_daemon():
    """deploy/etc/fsgateway/fsgateway.toml loads in the mount, the checker and syncd as shipped."""
    example = str(REPO / "deploy/etc/fsgateway/fsgateway.toml")
    code = f"""
import argparse
from fsgateway.mount import options
from checker.context import load_config
from fsgateway.daemon import config
from syncd.options import SyncdOptions
m = options.load("firmware", "/srv/firmware", [], {{}}, {example!r}, foreground=True)
c = load_config(argparse.Namespace(config={example!r}, assignments=[], bucket=None, endpoint=None, prefix=None,
                                   state_dir=None, database=None), {{}})
s = config.load(SyncdOptions(), "syncd", {{}}, {example!r}, {{}}).validate()
print(m.metrics_address, c.metrics_address, c.mount_dir, s.metrics_address, s.backup_bucket)
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["127.0.0.1:9877", "127.0.0.1:9878", "/srv/firmware", "127.0.0.1:9879",
                                "firmware-backup"]
