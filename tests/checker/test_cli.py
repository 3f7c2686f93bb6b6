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

from fsgateway.daemon.config import ConfigError
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


def test_fw_configuration_goes_before_or_after_the_sub_command_and_the_database_needs_no_bucket(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSGATEWAY_")}  # no bucket anywhere
    state = tmp_path / "state"
    config = tmp_path / "fsgateway.toml"
    config.write_text(f'[checker]\nstate_dir = "{state}"\n')
    r = run("checker.fw", "--config", str(config), "model", "add", "m-before", "--hw", "A", "--max-payload", "3M",
            env=env)
    assert r.returncode == 0, r.stderr
    r = run("checker.fw", "model", "add", "m-after", "--hw", "B", "--config", str(config), env=env)
    assert r.returncode == 0, r.stderr
    r = run("checker.fw", "--set", "state_dir=/nonexistent", "model", "list", "--set", f"state_dir={state}", env=env)
    assert r.returncode == 0, r.stderr  # the later --set wins, and both are read
    assert r.stdout.splitlines()[0].split() == ["MODEL", "HW", "MAX", "PAYLOAD"]
    assert {tuple(line.split()) for line in r.stdout.splitlines()[1:]} == {("m-before", "A", "3.0", "MiB"),
                                                                         ("m-after", "B", "1.0", "GiB")}
    for command in (["list"], ["verdicts"], ["key", "list"], ["show", "m", "1.0.0"]):
        r = run("checker.fw", "--state-dir", str(state), *command, env=env)
        assert "bucket" not in r.stderr, (command, r.stderr)
    for command in (["status"], ["repo", "init", "--root-key", str(tmp_path / "root.key")]):
        r = run("checker.fw", *command, "--state-dir", str(state), env=env)
        assert r.returncode == 1 and r.stderr.strip() == \
            "fsgateway-fw: no bucket: set bucket in [s3], FSGATEWAY_CHECKER_BUCKET or --bucket"


def test_fw_key_file_messages_name_the_right_key(tmp_path):
    base = str(tmp_path / "dev")
    assert run("checker.fw", "keygen", "--out", base).returncode == 0
    payload = tmp_path / "fw.bin"
    payload.write_bytes(b"x" * 100)
    sign = ["checker.fw", "sign", "--model", MODEL, "--hw", "A", "--version", "1.0.0", "--counter", "1", str(payload)]
    r = run(*sign, "--key", base + ".pub")  # the public key, 0644: not a reason to chmod it
    assert r.returncode == 1 and "is a public key" in r.stderr and "chmod" not in r.stderr
    r = run("checker.fw", "key", "add", base + ".key", "--models", MODEL, "--state-dir", str(tmp_path / "s"))
    assert r.returncode == 1 and "is a private key" in r.stderr and "OUT.pub" in r.stderr
    assert run(*sign, "--key", base + ".key").returncode == 0
    other = str(tmp_path / "other")
    run("checker.fw", "keygen", "--out", other)
    r = run("checker.fw", "verify", str(tmp_path / "manifest.json"), "--pub", other + ".pub")
    assert r.returncode == 1 and "not signed by any key given with --pub" in r.stderr
    assert "authoris" not in r.stderr  # offline: there is no table of authorised keys
    r = run("checker.fw", "key", "revoke", "0123abcd", "--state-dir", str(tmp_path / "s"))
    assert r.returncode == 1 and "no key 0123abcd is authorised" in r.stderr


def test_fw_list_and_verdicts_have_headers_human_sizes_filters_and_json(pipeline):
    pipeline.start()
    pipeline.put(pipeline.package("2.0.0", 5, b"f" * (3 << 19), channel="beta"), "2.0.0")
    assert pipeline.verdict("2.0.0")[0] == "accepted"
    pipeline.put(pipeline.package("2.1.0", 6, b"g" * 10, length=11), "2.1.0")
    assert pipeline.verdict("2.1.0")[:2] == ("rejected", "length_mismatch")  # pending_deadline is 4 s here

    lines = pipeline.fw("list").stdout.splitlines()
    assert lines[0].split()[:6] == ["MODEL", "VERSION", "COUNTER", "CHANNEL", "HW", "SIZE"]
    assert lines[1].split()[:7] == [MODEL, "2.0.0", "5", "beta", "A", "1.5", "MiB"]
    assert pipeline.fw("list", "--channel", "stable").stdout.strip() == "no releases (channel stable)"
    assert len(pipeline.fw("list", "--channel", "beta", "--since", "1h").stdout.splitlines()) == 2
    assert "no releases" in pipeline.fw("list", "--since", "2099-01-01").stdout
    assert json.loads(pipeline.fw("list", "--json").stdout)[0]["length"] == 3 << 19

    lines = pipeline.fw("verdicts").stdout.splitlines()
    assert lines[0].split() == ["DECIDED", "OUTCOME", "REASON", "PACKAGE", "DETAIL", "HOST"] and len(lines) == 3
    rejected = pipeline.fw("verdicts", "--outcome", "rejected").stdout.splitlines()
    assert len(rejected) == 2 and "length_mismatch" in rejected[1] and "2.1.0" in rejected[1]
    assert len(pipeline.fw("verdicts", "--model", MODEL, "--since", "2000-01-01").stdout.splitlines()) == 3
    assert pipeline.fw("verdicts", "--model", "other").stdout.strip() == "no verdicts (model other)"
    doc = json.loads(pipeline.fw("verdicts", "--json", "--outcome", "accepted").stdout)
    assert [(d["outcome"], d["package"]) for d in doc] == [("accepted", f"incoming/{MODEL}/2.0.0/")]
    r = pipeline.fw("verdicts", "--since", "last week", check=False)
    assert r.returncode == 1 and "--since" in r.stderr and len(r.stderr.splitlines()) == 1


def test_fw_bucket_commands_with_wrong_credentials_say_so_in_one_line(pipeline, tmp_path):
    bad = tmp_path / "passwd"
    bad.write_text("AKIDNOTREAL:SECRETNOTREAL123\n")
    bad.chmod(0o600)
    env = pipeline.env(FSGATEWAY_CHECKER_PASSWD_FILE=str(bad))
    root = str(pipeline.tmp / "root.key")
    for command in (["repo", "init", "--root-key", str(tmp_path / "new-root.key")],
                    ["repo", "renew-root", "--root-key", root], ["repo", "rotate-online-key", "--root-key", root],
                    ["status"], ["status", MODEL, "1.0.0"]):
        r = run("checker.fw", *command, env=env)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, (command, r.stderr)
        assert "denied" in r.stderr and "wrong credentials" in r.stderr and "SECRETNOTREAL123" not in r.stderr
    r = run("checker.fw", "bucket-policy", "--uploader", "arn:aws:iam:::user/u", "--checker", "arn:aws:iam:::user/c",
            env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["Statement"]  # printed only: no S3 request
    r = run("checker.fw", "status", MODEL, "9.9.9", env=pipeline.env())
    assert r.returncode == 1 and "no status for" in r.stderr


def test_sizes_and_ages_read_as_people_write_them():
    from checker.fw import human_size, parse_since

    assert [human_size(n) for n in (0, 1023, 1536, 3 << 20, 5 << 30)] == \
        ["0 B", "1023 B", "1.5 KiB", "3.0 MiB", "5.0 GiB"]
    assert parse_since("2h", now=10000.0) == 2800.0 and parse_since("1.5d", now=200000.0) == 200000.0 - 129600
    assert parse_since("2026-12-01") == 1796083200 == parse_since("2026-12-01T00:00:00Z")
    assert parse_since(None) == 0.0
    with pytest.raises(ConfigError):
        parse_since("2x")
