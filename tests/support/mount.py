"""A real `fsgateway -f` process and its mountpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.process import free_port, wait_for
from tests.support.s3 import S3Server


def is_mounted(path: str | Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def unmount(path: Path, proc: subprocess.Popen, timeout: float = 30) -> int:
    """Unmount a FUSE daemon's mountpoint and reap the daemon; one that does not exit is killed and its
    mount detached lazily. Returns the daemon's exit status."""
    if is_mounted(path):
        subprocess.run(["fusermount3", "-u", str(path)], check=False, capture_output=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=10)
        subprocess.run(["fusermount3", "-uz", str(path)], check=False, capture_output=True)
        return rc


class Mount:
    """A real `fsgateway -f` process and its mountpoint."""

    def __init__(self, server: S3Server, passwd: Path, tmp: Path) -> None:
        self.server = server
        self.passwd = passwd
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None
        self.path: Path | None = None
        self.metrics_port = 0
        self.log = tmp / "fsgateway.log"

    def command(self, bucket: str, path: Path, options: list[str], endpoint: str | None = None) -> list[str]:
        opts = [f"url={endpoint or self.server.endpoint}", "use_path_request_style",
                f"passwd_file={self.passwd}", f"cache_dir={self.tmp / 'cache'}", "stat_ttl=1",
                f"metrics_address=127.0.0.1:{self.metrics_port}", "retry_deadline=20"]
        if self.server.ca_bundle:
            opts.append(f"ca_bundle={self.server.ca_bundle}")
        return [sys.executable, "-m", "fsgateway", bucket, str(path), "-f", "-o", ",".join(opts + options)]

    def start(self, bucket: str, *options: str, endpoint: str | None = None, env: dict | None = None,
              name: str = "mnt") -> Path:
        self.path = self.tmp / name
        self.path.mkdir(exist_ok=True)
        self.metrics_port = free_port()
        cmd = self.command(bucket, self.path, list(options), endpoint)
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        wait_for(lambda: is_mounted(self.path) or self.proc.poll() is not None, 60, "the mount")
        if not is_mounted(self.path):
            pytest.fail(f"fsgateway exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        return self.path

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        assert self.path is not None  # set by start() with the process
        rc = unmount(self.path, self.proc)
        self.proc = None
        return rc

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()


WRITE_BLOCK = 1 << 20  # write_in_thread writes 1 MiB at a time, as cp and dd bs=1M do


def write_in_thread(path: Path, data: bytes, outcome: list[BaseException | None],
                    written: list[int] | None = None) -> threading.Thread:
    """Write `data` WRITE_BLOCK at a time and close, in a thread; `written[0]` counts the bytes whose write returned."""
    def write() -> None:
        try:
            with open(path, "wb") as f:
                for off in range(0, len(data), WRITE_BLOCK):
                    assert f.write(data[off:off + WRITE_BLOCK]) == len(data[off:off + WRITE_BLOCK])
                    if written is not None:
                        written[0] = off + len(data[off:off + WRITE_BLOCK])
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    t = threading.Thread(target=write)
    t.start()
    return t
