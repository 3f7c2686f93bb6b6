"""The real s3fs-fuse (Debian's `s3fs`) and the gateway on one bucket: each reads what the other wrote.

Special files, times, owners and `user.*` xattrs (s3fs's `use_xattr`). s3fs keeps no device
number (its mknod stores only the mode), so a device made by s3fs shows st_rdev 0 here too.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.mount import is_mounted, unmount
from tests.support.process import wait_for


def start_s3fs(server, bucket: str, passwd_file: Path, tmp_path: Path) -> tuple[Path, subprocess.Popen]:
    """s3fs in the foreground on `bucket`: its mountpoint and process, once mounted."""
    if shutil.which("s3fs") is None:
        pytest.fail("s3fs (Debian package s3fs, installed by scripts/setup) is missing")
    path = tmp_path / "s3fs"
    path.mkdir()
    opts = [f"url={server.endpoint}", "use_path_request_style", f"passwd_file={passwd_file}", "use_xattr",
            "stat_cache_expire=1", "enable_noobj_cache"]
    env = {**os.environ, **({"CURL_CA_BUNDLE": server.ca_bundle} if server.ca_bundle else {})}
    proc = subprocess.Popen(["s3fs", bucket, str(path), "-f", "-o", ",".join(opts)], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "s3fs.log", "wb"))
    wait_for(lambda: is_mounted(path) or proc.poll() is not None, 30, "s3fs to mount")
    if not is_mounted(path):
        pytest.fail(f"s3fs exited with {proc.returncode}: {(tmp_path / 's3fs.log').read_text()[-2000:]}")
    return path, proc


@pytest.fixture
def s3fs_mount(server, bucket, passwd_file, tmp_path):
    """s3fs on `bucket`, stopped by its pid (unmounted first) at the end."""
    path, proc = start_s3fs(server, bucket, passwd_file, tmp_path)
    yield path
    unmount(path, proc)


def test_a_dead_mount_of_another_filesystem_is_refused_not_taken_over(server, bucket, passwd_file, mounter,
                                                                       tmp_path):
    """The crash takeover detaches only a dead fsgateway mount: a killed s3fs's is left alone, one error line."""
    path, proc = start_s3fs(server, bucket, passwd_file, tmp_path)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        with pytest.raises(OSError) as e:
            os.statvfs(path)
        assert e.value.errno == errno.ENOTCONN
        m = mounter()
        r = subprocess.run(m.command(bucket, path, ["metrics_address=off"]), capture_output=True, text=True, timeout=60)
        assert r.returncode != 0
        last = r.stderr.strip().splitlines()[-1]
        assert "dead fuse.s3fs mount" in last and f"fusermount3 -uz {path}" in last, r.stderr
        with open("/proc/self/mountinfo") as f:  # still there, still s3fs's: not detached, nothing stacked
            assert [ln.split(" - ")[1].split()[0] for ln in f if ln.split()[4] == str(path)] == ["fuse.s3fs"]
    finally:
        subprocess.run(["fusermount3", "-uz", str(path)], check=False, capture_output=True)


def test_s3fs_reads_what_the_gateway_wrote(mount, s3fs_mount):
    g = mount.path
    os.mkfifo(g / "fifo", 0o640)
    os.mknod(g / "chr", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (g / "f").write_bytes(b"data")
    os.chown(g / "f", 1234, 5678)
    os.setxattr(g / "f", "user.origin", b"gateway w/+")
    os.utime(g / "f", ns=(1_500_000_000_000_000_000, 1_600_000_000_000_000_000))
    (g / "d").mkdir()
    assert stat.S_ISFIFO(os.lstat(s3fs_mount / "fifo").st_mode)
    assert stat.S_IMODE(os.lstat(s3fs_mount / "fifo").st_mode) == 0o640 & ~_umask()
    assert stat.S_ISCHR(os.lstat(s3fs_mount / "chr").st_mode)
    st = os.stat(s3fs_mount / "f")
    assert (st.st_uid, st.st_gid, st.st_size) == (1234, 5678, 4)
    assert (st.st_atime, st.st_mtime) == (1_500_000_000, 1_600_000_000)  # s3fs 1.90 keeps whole seconds
    assert os.getxattr(s3fs_mount / "f", "user.origin") == b"gateway w/+"
    assert stat.S_ISDIR(os.stat(s3fs_mount / "d").st_mode)


def test_gateway_reads_what_s3fs_wrote(s3fs_mount, mounter, bucket, s3):
    s = s3fs_mount
    os.mkfifo(s / "fifo")
    os.mknod(s / "chr", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (s / "f").write_bytes(b"from s3fs")
    os.setxattr(s / "f", "user.origin", b"s3fs value")
    (s / "d").mkdir()
    meta = s3.head_object(Bucket=bucket, Key="f")["Metadata"]
    assert "atime" in meta and "ctime" in meta and "xattr" in meta
    g = mounter().start(bucket)
    assert stat.S_ISFIFO(os.lstat(g / "fifo").st_mode)
    chr_st = os.lstat(g / "chr")
    assert stat.S_ISCHR(chr_st.st_mode) and chr_st.st_rdev == 0  # s3fs stores no device number
    assert (g / "f").read_bytes() == b"from s3fs"
    assert os.getxattr(g / "f", "user.origin") == b"s3fs value"
    st = os.stat(g / "f")
    assert st.st_atime == int(meta["atime"]) and st.st_ctime == int(meta["ctime"])
    assert stat.S_ISDIR(os.stat(g / "d").st_mode)
    # and back: an xattr the gateway adds keeps the one s3fs wrote
    os.setxattr(g / "f", "user.second", b"2")
    assert os.getxattr(s / "f", "user.origin") == b"s3fs value"
    assert wait_for(lambda: _xattr_or_none(s / "f", "user.second"), 10, "s3fs to see the new xattr") == b"2"


def _xattr_or_none(path, name):
    try:
        return os.getxattr(path, name)
    except OSError:
        return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
