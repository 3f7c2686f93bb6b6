"""sd_notify through a real datagram socket, and the metrics address rules."""

from __future__ import annotations

import os
import socket

import pytest

from fsgateway.daemon.metrics_server import parse_address
from fsgateway.daemon.notify import notify, watchdog_interval


def test_notify_sends_one_datagram_to_the_socket(tmp_path):
    path = str(tmp_path / "n.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        assert notify("READY=1\nSTATUS=ok", {"NOTIFY_SOCKET": path})
        assert sock.recv(100) == b"READY=1\nSTATUS=ok"


def test_notify_abstract_socket_and_absent_socket():
    name = f"fsgateway-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"WATCHDOG=1"
    assert not notify("READY=1", {})


def test_watchdog_interval_is_half_of_watchdog_sec_for_this_pid():
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}) == 5.0
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None


def test_metrics_address_defaults_to_loopback_and_can_be_off():
    assert parse_address(":9877") == ("127.0.0.1", 9877)
    assert parse_address("0.0.0.0:1") == ("0.0.0.0", 1)
    assert parse_address("[::1]:9877") == ("::1", 9877)
    assert parse_address("off") is None
    with pytest.raises(ValueError):
        parse_address("9877")
