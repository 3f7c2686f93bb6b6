"""What every daemon of the pipeline does the same way: preflight checks, signals, readiness, watchdog.

Preflight checks run before a daemon reports readiness so that a mistake is a
one-line reason and exit 1 on the terminal or in `systemctl status`, not a
daemon that starts and then fails every request.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable

import trio
from botocore.exceptions import BotoCoreError, ClientError

from fsgateway.daemon import notify
from fsgateway.daemon.metrics_server import parse_address
from fsgateway.store.client import StoreSettings, make_client, startup_problem
from fsgateway.store.retry import is_transient

log = logging.getLogger("fsgateway.daemon")


def check_bucket(settings: StoreSettings) -> str | None:
    """HeadBucket with a few quick retries; the one-line problem, or None if usable."""
    client = make_client(settings)
    deadline = time.monotonic() + min(settings.retry_deadline, 15)
    while True:
        try:
            client.head_bucket(Bucket=settings.bucket)
            return None
        except (ClientError, BotoCoreError, OSError) as exc:
            if not is_transient(exc) or time.monotonic() > deadline:
                return startup_problem(exc, settings)
            time.sleep(0.5)


def check_metrics_port(address: str) -> str | None:
    try:
        parsed = parse_address(address)
    except ValueError as exc:
        return str(exc)
    if parsed is None:
        return None
    try:
        with socket.create_server(parsed, family=socket.AF_INET6 if ":" in parsed[0] else socket.AF_INET):
            return None
    except OSError as exc:
        return f"metrics_address {address}: {exc.strerror} (set metrics_address=HOST:PORT or off)"


def one_line(exc: BaseException) -> str:
    """An exception in one line: the first of a trio nursery's exceptions, its type if it says nothing."""
    more = 0
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        more += len(exc.exceptions) - 1
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__) + (f" (and {more} more)" if more else "")


def fail(program: str, message: str) -> int:
    """The one-line reason on stderr; the exit status of a daemon that cannot start."""
    print(f"{program}: {message}", file=sys.stderr)
    return 1


async def watchdog() -> None:
    """WATCHDOG=1 at half of systemd's WatchdogSec, from the event loop: a hung loop stops the pings."""
    interval = notify.watchdog_interval()
    if not interval:
        return
    while True:
        notify.notify("WATCHDOG=1")
        await trio.sleep(interval)


async def stop_on_signal(on_stop: Callable[[str], Awaitable[None]]) -> None:
    """Wait for SIGTERM/SIGINT/SIGHUP, say STOPPING=1, then run `on_stop` shielded from cancellation."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            notify.notify(f"STOPPING=1\nSTATUS=stopping ({name})")
            with trio.CancelScope(shield=True):
                await on_stop(name)
            return
