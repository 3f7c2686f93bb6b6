"""sd_notify as systemd sees it, for every daemon, through a real NOTIFY_SOCKET datagram socket.

READY=1 only once the daemon serves, WATCHDOG=1 at least as often as
WatchdogSec requires (here 2 s), STATUS= lines, STOPPING=1 on SIGTERM and a
clean exit; logs in journald's form (priority prefix, no timestamps).
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.mount import is_mounted
from tests.support.process import free_port

WATCHDOG_USEC = 2_000_000  # the daemons promise a ping every half of it


class Listener:
    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(60)

    def until(self, state: str) -> list[tuple[float, str]]:
        """Messages (arrival time, text) up to and including the first one containing `state`."""
        out = []
        while True:
            text = self.sock.recv(4096).decode()
            out.append((time.monotonic(), text))
            if state in text:
                return out


def daemon_env(sock: Listener) -> dict[str, str]:
    return {"NOTIFY_SOCKET": sock.path, "WATCHDOG_USEC": str(WATCHDOG_USEC), "JOURNAL_STREAM": "8:12345"}


def mount_command(server, passwd_file, bucket, tmp_path) -> tuple[list[str], dict, callable]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    opts = (f"url={server.endpoint},use_path_request_style,passwd_file={passwd_file},cache_dir={tmp_path / 'c'},"
            f"metrics_address=127.0.0.1:{free_port()}" + (f",ca_bundle={server.ca_bundle}" if server.ca_bundle else ""))
    return [sys.executable, "-m", "fsgateway", bucket, str(mnt), "-f", "-o", opts], {}, lambda: is_mounted(mnt)


@pytest.mark.parametrize("daemon", ["mount", "checker", "syncd"])
def test_ready_watchdog_status_and_stopping(daemon, server, passwd_file, pipeline, same_backup, syncd_factory,
                                            tmp_path):
    sock = Listener(tmp_path / "notify.sock")
    if daemon == "mount":
        cmd, env, serving = mount_command(server, passwd_file, pipeline.bucket, tmp_path)
    elif daemon == "checker":
        cmd = [sys.executable, "-m", "checker", "--set", f"metrics_address=127.0.0.1:{free_port()}"]
        env = pipeline.env()

        def serving() -> bool:  # devices can refresh: the first TUF metadata is published
            return bool(pipeline.keys("metadata/timestamp.json"))
    else:
        s = syncd_factory(pipeline.bucket, same_backup)
        cmd, env = s.args("run", {"metrics_address": f"127.0.0.1:{free_port()}"}), {}

        def serving() -> bool:  # the durable cursor is loaded
            return (s.state_dir / "state.sqlite").exists()
    proc = subprocess.Popen(cmd, env={**os.environ, **env, **daemon_env(sock)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready = sock.until("READY=1")
        assert serving(), "READY=1 came before the daemon served"
        assert re.search(r"STATUS=\S", ready[-1][1])
        # Pings at the promised rate: never a gap systemd would punish (WatchdogSec = 2 s).
        pings = [t for _ in range(5) for t, text in sock.until("WATCHDOG=1") if "WATCHDOG=1" in text]
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert max(gaps) < WATCHDOG_USEC / 1e6, gaps
        proc.send_signal(signal.SIGTERM)
        sock.until("STOPPING=1")
        assert proc.wait(timeout=90) == 0
        err = proc.stderr.read()
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines and all(re.match(r"<[0-7]>(DEBUG|INFO|WARNING|ERROR|CRITICAL) ", line) for line in lines), err
        assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", err)  # journald adds the time itself
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if daemon == "mount":
            subprocess.run(["fusermount3", "-uz", str(tmp_path / "mnt")], check=False, capture_output=True)
        sock.sock.close()
