"""The shipped units under a real, booted systemd, checked from the host side (see booted.py).

What `systemd-analyze verify` cannot see: the mount unit's sandboxing must
not give it a mount namespace (the FUSE mount would then be invisible to the
host and every other service), the checker and syncd start after the mount,
a killed daemon is restarted, a hung one is restarted by the watchdog, and
`systemctl stop` unmounts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.mount import is_mounted
from tests.support.process import free_port, wait_for

from .booted import BootedSystemd, available

MOUNT = "fsgateway@srv-firmware.service"
CHECKER = "fsgateway-checker.service"
SYNCD = "fsgateway-syncd.service"


def write_config(sd: BootedSystemd, server, passwd_file, bucket: str, backup: str) -> None:
    """/etc/fsgateway as an operator writes it; free metrics ports (the host may run other daemons)."""
    ports = {"mount": free_port(), "checker": free_port(), "syncd": free_port()}
    conf = sd.etc / "fsgateway"
    conf.mkdir()
    shutil.copy(passwd_file, conf / "passwd")
    (conf / "passwd").chmod(0o600)
    ca = 'ca_bundle = "/etc/fsgateway/ca.pem"\n' if server.ca_bundle else ""
    if server.ca_bundle:
        shutil.copy(server.ca_bundle, conf / "ca.pem")
    (conf / "fsgateway.toml").write_text(f"""
[s3]
bucket = "{bucket}"
endpoint = "{server.endpoint}"
path_style = true
passwd_file = "/etc/fsgateway/passwd"
{ca}
[mount]
metrics_address = "127.0.0.1:{ports['mount']}"

[checker]
mount_dir = "/srv/firmware"
reconcile_interval = 2
metrics_address = "127.0.0.1:{ports['checker']}"

[syncd]
backup_bucket = "{backup}"
metrics_address = "127.0.0.1:{ports['syncd']}"
""")
    (conf / "srv-firmware.env").write_text(f"MOUNT_SOURCE={bucket}\n")


@pytest.fixture
def booted(server, passwd_file, pipeline, same_backup, tmp_path) -> Iterator[BootedSystemd]:
    why = available()
    if why:
        pytest.fail(why)
    sd = BootedSystemd(tmp_path / "sd", [MOUNT, CHECKER, SYNCD])
    sd.install()
    write_config(sd, server, passwd_file, pipeline.bucket, same_backup.name)
    state = sd.var / "lib/fsgateway/checker"  # the database and online key `fsgateway-fw repo init` made
    shutil.copytree(pipeline.state_dir, state)
    state.chmod(0o700)
    try:
        sd.boot()
        yield sd
    finally:
        if sd.pid:  # for the failure report
            print(sd.systemctl("list-jobs", check=False).stdout)
            for unit in (MOUNT, CHECKER, SYNCD):
                print(sd.systemctl("status", unit, check=False).stdout)
                print(f"--- journal of {unit}\n{sd.journal(unit)[-3000:]}")
        sd.shutdown()


def active(sd: BootedSystemd, unit: str) -> bool:
    return sd.prop(unit, "ActiveState") == "active"


def all_active(sd: BootedSystemd) -> bool:
    states = {u: sd.prop(u, "ActiveState") for u in (MOUNT, CHECKER, SYNCD)}
    if any(s == "failed" for s in states.values()):
        pytest.fail(f"a unit failed: {states}")
    return all(s == "active" for s in states.values())


def restarts(sd: BootedSystemd, unit: str) -> int:
    return int(sd.prop(unit, "NRestarts"))


def test_booted_units_mount_for_the_whole_host_restart_on_kill_and_hang_and_unmount_on_stop(booted, pipeline):
    sd = booted
    mnt = sd.srv / "firmware"
    wait_for(lambda: all_active(sd), 120, "the three units to be active")
    # The host sees the FUSE mount (not a plain directory inside the service's own namespace).
    assert is_mounted(mnt)
    (mnt / "from-the-host").write_bytes(b"seen by everyone")
    wait_for(lambda: pipeline.keys("from-the-host"), 30, "a file written on the host to reach the bucket")
    # The checker and syncd started after the mount was ready.
    mount_ready = int(sd.prop(MOUNT, "ActiveEnterTimestampMonotonic"))
    for unit in (CHECKER, SYNCD):
        assert int(sd.prop(unit, "ExecMainStartTimestampMonotonic")) > mount_ready, unit

    # A killed daemon is restarted.
    before = restarts(sd, SYNCD)
    sd.systemctl("kill", "--signal=SIGKILL", SYNCD)
    wait_for(lambda: restarts(sd, SYNCD) > before and active(sd, SYNCD), 60, "syncd to be restarted")

    # A hung daemon (stopped: no more WATCHDOG=1) is restarted by the watchdog.
    pid = int(sd.prop(CHECKER, "MainPID"))
    before = restarts(sd, CHECKER)
    sd.run("kill", "-STOP", str(pid))
    wait_for(lambda: restarts(sd, CHECKER) > before and active(sd, CHECKER), 150,
             "the watchdog to restart the hung checker")
    assert "watchdog timeout" in sd.journal(CHECKER).lower()  # systemd's own message, not any other restart

    # A killed mount is restarted, and the host sees the new mount.
    before = restarts(sd, MOUNT)
    sd.systemctl("kill", "--signal=SIGKILL", MOUNT)
    wait_for(lambda: restarts(sd, MOUNT) > before and active(sd, MOUNT), 60, "the mount to be restarted")
    wait_for(lambda: is_mounted(mnt) and "from-the-host" in os.listdir(mnt), 30, "the mount back on the host")

    # `systemctl stop` unmounts; the checker, part of the mount, stops with it.
    sd.systemctl("stop", MOUNT)
    assert not is_mounted(mnt)
    assert sd.prop(MOUNT, "ActiveState") == "inactive" and sd.prop(CHECKER, "ActiveState") == "inactive"
    assert os.listdir(mnt) == []


def test_a_mount_namespace_hides_the_mount_from_the_host(server, passwd_file, bucket, tmp_path):
    """The mechanism behind the unit fix: a FUSE mount made in a slave mount namespace (what ProtectSystem=,
    PrivateTmp=, ReadWritePaths=... give a service) is live inside and absent on the host."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    opts = (f"url={server.endpoint},use_path_request_style,passwd_file={passwd_file},cache_dir={tmp_path / 'c'},"
            f"metrics_address=off" + (f",ca_bundle={server.ca_bundle}" if server.ca_bundle else ""))
    inner = (f"{sys.executable} -m fsgateway {bucket} {mnt} -o {opts} && mountpoint -q {mnt} && echo mounted && "
             f"read done; fusermount3 -u {mnt}")
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "slave", "sh", "-c", inner],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "mounted", proc.stderr.read()
        assert not is_mounted(mnt)  # live in the namespace, a plain directory on the host
        assert os.listdir(mnt) == []
    finally:
        proc.communicate("done\n", timeout=60)
    assert proc.returncode == 0
