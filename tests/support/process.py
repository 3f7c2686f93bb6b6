"""Waiting with a deadline, ports, terminals, metrics text: what tests of processes need."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def wait_for(cond: Callable[[], object], timeout: float = 30.0, what: str = "condition", interval: float = 0.05):
    """Poll `cond` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def succeeds(fn: Callable[[], object]) -> bool:
    """Whether `fn()` returns without raising (for `wait_for` on a server that is still starting)."""
    try:
        fn()
    except Exception:
        return False
    return True


def run_on_terminal(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, str, str]:
    """Run `cmd` with its stderr on a pseudo-terminal (as a person at a shell has it); stdout stays a pipe.

    Returns the exit status, stdout, and everything written to the terminal.
    """
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal has a size
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=slave, text=True, timeout=timeout,
                           env={**os.environ, **(env or {})})
    finally:
        os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    return r.returncode, r.stdout, b"".join(chunks).decode(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def readable_by_nobody(path: str | Path) -> bool:
    """Whether the unprivileged user `nobody` can read `path` (a real `cat` under setpriv, not a mode check)."""
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat", str(path)],
                       capture_output=True, timeout=30)
    if r.returncode and b"Permission denied" not in r.stderr:
        pytest.fail(f"cat {path} as nobody failed otherwise: {r.stderr.decode(errors='replace')}")
    return r.returncode == 0
