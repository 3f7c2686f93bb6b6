"""The three commands as users meet them: --help, one-line errors, sd_notify, SIGTERM, key files."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys

import pytest

from tests.support.checker import MODEL, metric
from tests.support.process import free_port


def run(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120,
                          env=env or dict(os.environ))


@pytest.mark.parametrize("module", ["checker", "checker.fw", "checker.device"])
def test_help_explains_the_command(module):
    r = run(module, "--help")
    assert r.returncode == 0
    assert "usage:" in r.stdout and len(r.stdout.splitlines()) > 8


def test_checker_refuses_to_start_with_a_one_line_reason(pipeline, tmp_path):
    # No online key yet in this state directory.
    r = run("checker", env=pipeline.env(FSGATEWAY_CHECKER_STATE_DIR=str(tmp_path / "empty")))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "online.key" in r.stderr and "repo init" in r.stderr
    bad = tmp_path / "passwd"
    bad.write_text("AKIDNOTREAL:SECRETNOTREAL123\n")
    bad.chmod(0o600)
    r = run("checker", env=pipeline.env(FSGATEWAY_CHECKER_PASSWD_FILE=str(bad)))
    assert r.returncode == 1 and "denied" in r.stderr
    assert "SECRETNOTREAL123" not in r.stderr  # the secret is never printed
    bad.chmod(0o644)
    r = run("checker", env=pipeline.env(FSGATEWAY_CHECKER_PASSWD_FILE=str(bad)))
    assert r.returncode == 1 and "chmod 600" in r.stderr
    r = run("checker", "--set", "pending_deadline=soon", env=pipeline.env())
    assert r.returncode == 1 and "pending_deadline" in r.stderr
    r = run("checker", "--mount-dir", str(tmp_path), env=pipeline.env())
    assert r.returncode == 1 and "not a mount point" in r.stderr


@pytest.mark.tls
def test_ready_after_serving_stopping_on_sigterm_and_clean_exit(pipeline, tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(60)
    port = free_port()
    env = pipeline.env(NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="2000000", WATCHDOG_PID="")
    proc = subprocess.Popen([sys.executable, "-m", "checker", "--set", f"metrics_address=127.0.0.1:{port}",
                             "--set", "reconcile_interval=1"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        messages = []
        while not any("READY=1" in m for m in messages):
            messages.append(sock.recv(4096).decode())
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=checking" in ready
        # READY came after the first publication: devices can already refresh.
        assert pipeline.get("metadata/timestamp.json")
        assert "WATCHDOG=1" in sock.recv(4096).decode()
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert metric(text, "fsgateway_checker_publishes_total", outcome="ok") >= 1
        pipeline.put(pipeline.package("1.0.0", 1, b"p" * 100), "1.0.0")
        while "STATUS=accepted incoming/sensor-x/1.0.0/" not in (msg := sock.recv(4096).decode()):
            assert "WATCHDOG=1" in msg
        assert "so far: 1 accepted" in msg
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in (msg := sock.recv(4096).decode()):
            assert "WATCHDOG=1" in msg
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


def test_fw_keys_sign_verify_and_release_listing(pipeline, tmp_path):
    base = str(tmp_path / "dev")
    assert run("checker.fw", "keygen", "--out", base).returncode == 0
    assert stat.S_IMODE(os.stat(base + ".key").st_mode) == 0o600
    again = run("checker.fw", "keygen", "--out", base)
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    payload = tmp_path / "fw.bin"
    payload.write_bytes(os.urandom(10000))
    r = run("checker.fw", "sign", "--key", base + ".key", "--model", MODEL, "--hw", "A", "--version", "1.0.0",
            "--counter", "1", str(payload))
    assert r.returncode == 0, r.stderr
    manifest = tmp_path / "manifest.json"
    assert json.loads(manifest.read_text())["signed"]["payload"]["length"] == 10000
    assert run("checker.fw", "verify", str(manifest), str(payload), "--pub", base + ".pub").returncode == 0
    other = str(tmp_path / "other")
    run("checker.fw", "keygen", "--out", other)
    r = run("checker.fw", "verify", str(manifest), "--pub", other + ".pub")
    assert r.returncode == 1 and "key_unknown" in r.stderr
    payload.write_bytes(b"tampered")
    r = run("checker.fw", "verify", str(manifest), str(payload), "--pub", base + ".pub")
    assert r.returncode == 1 and "does not match" in r.stderr
    os.chmod(base + ".key", 0o644)
    r = run("checker.fw", "sign", "--key", base + ".key", "--model", MODEL, "--hw", "A", "--version", "1.0.1",
            "--counter", "2", str(payload))
    assert r.returncode == 1 and "chmod 600" in r.stderr

    pipeline.start()
    pipeline.put(pipeline.package("2.0.0", 5, b"f" * 100), "2.0.0")
    assert pipeline.verdict("2.0.0")[0] == "accepted"
    listing = json.loads(pipeline.fw("list", "--model", MODEL, "--json").stdout)
    assert [(r["version"], r["release_counter"]) for r in listing] == [("2.0.0", 5)]
    shown = json.loads(pipeline.fw("show", MODEL, "2.0.0").stdout)
    assert shown["manifest"]["signed"]["version"] == "2.0.0" and shown["signed_by"] == pipeline.builder.public_key.keyid
    assert "accepted" in pipeline.fw("verdicts").stdout
    missing = pipeline.fw("show", MODEL, "9.9.9", check=False)
    assert missing.returncode == 1 and "not released" in missing.stderr
