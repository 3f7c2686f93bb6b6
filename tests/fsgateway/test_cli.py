"""The command line as users and mount(8) call it: --help, daemon mode, fstab form, sd_notify."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mount import is_mounted, unmount
from tests.support.process import free_port, wait_for


def test_help_explains_the_options():
    r = subprocess.run([sys.executable, "-m", "fsgateway", "--help"], capture_output=True, text=True, check=True)
    for word in ("BUCKET[:/PREFIX] MOUNTPOINT", "passwd_file", "use_path_request_style", "metrics_address",
                 "fuse.fsgateway", "stat_ttl", "cache_size"):
        assert word in r.stdout


def _mount_opts(server, passwd_file, tmp_path: Path) -> str:
    opts = (f"url={server.endpoint},use_path_request_style,passwd_file={passwd_file},"
            f"cache_dir={tmp_path / 'cache'},metrics_address=127.0.0.1:{free_port()}")
    return opts + (f",ca_bundle={server.ca_bundle}" if server.ca_bundle else "")


def test_background_mode_returns_once_mounted(server, passwd_file, bucket, tmp_path, s3):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run([sys.executable, "-m", "fsgateway", bucket, str(mnt), "-o",
                        _mount_opts(server, passwd_file, tmp_path)], capture_output=True, text=True, timeout=60)
    try:
        assert r.returncode == 0, r.stderr
        assert is_mounted(mnt)  # already mounted when the command returned
        (mnt / "bg").write_bytes(b"daemon")
        assert s3.get_object(Bucket=bucket, Key="bg")["Body"].read() == b"daemon"
        if not os.path.exists("/dev/log"):  # no syslog here: the daemon's log goes to cache_dir
            assert "mounted" in (tmp_path / "cache" / "fsgateway.log").read_text()
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
    wait_for(lambda: not is_mounted(mnt), 30, "unmount")


@pytest.mark.tls
def test_fstab_form_through_mount_t_fuse_fsgateway(server, passwd_file, bucket, tmp_path, s3):
    """What `mount /srv/firmware` does for `bucket /srv/firmware fuse.fsgateway _netdev,... 0 0`."""
    if shutil.which("mount.fuse3") is None and not Path("/sbin/mount.fuse3").exists():
        pytest.fail("mount.fuse3 (Debian package fuse3) is required")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    # mount(8) runs helpers with a fixed PATH: the command must be installed system-wide (scripts/setup does)
    system_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    if shutil.which("fsgateway", path=system_path) is None:
        pytest.fail("fsgateway is not on the system PATH; run scripts/setup (it links it into /usr/local/bin)")
    env = dict(os.environ)
    opts = "_netdev,nofail,allow_other," + _mount_opts(server, passwd_file, tmp_path)
    r = subprocess.run(["mount", "-t", "fuse.fsgateway", bucket, str(mnt), "-o", opts], capture_output=True,
                       text=True, env=env, timeout=60)
    try:
        assert r.returncode == 0, r.stderr
        assert is_mounted(mnt)
        with open("/proc/self/mountinfo") as f:
            line = next(ln for ln in f if ln.split()[4] == str(mnt))
        assert "fuse.fsgateway" in line and bucket in line
        # allow_other without the kernel's permission checks would let any user do anything
        assert "allow_other" in line and "default_permissions" in line
        (mnt / "via-fstab").write_bytes(b"ok")
        assert s3.get_object(Bucket=bucket, Key="via-fstab")["Body"].read() == b"ok"
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
    wait_for(lambda: not is_mounted(mnt), 30, "umount")


def test_config_file_and_environment(server, passwd_file, bucket, tmp_path, s3):
    """The shared TOML file gives the connection; the environment overrides the file."""
    conf = tmp_path / "fsgateway.toml"
    conf.write_text(f'[s3]\nendpoint = "{server.endpoint}"\npath_style = true\npasswd_file = "{passwd_file}"\n'
                    + (f'ca_bundle = "{server.ca_bundle}"\n' if server.ca_bundle else "")
                    + f'[mount]\ncache_dir = "{tmp_path / "cache"}"\nmetrics_address = "off"\nro = false\n')
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = {**os.environ, "FSGATEWAY_RO": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "fsgateway", bucket, str(mnt), "-f", "--config", str(conf)],
                            env=env, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: is_mounted(mnt) or proc.poll() is not None, 60, "mount")
        assert is_mounted(mnt), proc.stderr.read().decode()
        with pytest.raises(OSError):  # FSGATEWAY_RO from the environment won over the file
            (mnt / "x").write_bytes(b"1")
    finally:
        unmount(mnt, proc)


def test_sd_notify_ready_only_when_mounted_and_stopping_on_sigterm(server, passwd_file, bucket, tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(60)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = {**os.environ, "NOTIFY_SOCKET": sock_path}
    proc = subprocess.Popen([sys.executable, "-m", "fsgateway", bucket, str(mnt), "-f", "-o",
                             _mount_opts(server, passwd_file, tmp_path)], env=env)
    try:
        msg = sock.recv(4096).decode()
        assert "READY=1" in msg and "STATUS=serving" in msg
        assert is_mounted(mnt)  # READY came after the mount was live
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in sock.recv(4096).decode()
        assert proc.wait(timeout=30) == 0
        assert not is_mounted(mnt)
    finally:
        if proc.poll() is None:
            proc.kill()
            subprocess.run(["fusermount3", "-uz", str(mnt)], check=False)
        sock.close()
