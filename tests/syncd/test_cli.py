"""fsgateway-syncd as an operator meets it: --help, once/--dry-run, the guard, preflight errors, systemd, metrics."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

from tests.support.process import free_port, metric_value, run_on_terminal, wait_for
from tests.support.syncd import backup_keys, make_passwd


def test_help_explains_itself():
    r = subprocess.run([sys.executable, "-m", "syncd", "--help"], capture_output=True, text=True, check=True)
    assert "run" in r.stdout and "once" in r.stdout and "backup_bucket" in r.stdout and "max_delete" in r.stdout
    r = subprocess.run([sys.executable, "-m", "syncd", "once", "--help"], capture_output=True, text=True, check=True)
    assert "--dry-run" in r.stdout and "--set NAME=VALUE" in r.stdout


@pytest.mark.tls
def test_once_dry_run_changes_nothing_then_once_seeds(bucket, s3, same_backup, syncd_factory):
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x" * i)
    syncd = syncd_factory(bucket, same_backup)
    r = syncd.once("--dry-run")
    assert r.returncode == 0, r.stderr
    assert {"copy k0", "copy k1", "copy k2"} <= set(r.stdout.splitlines())
    assert backup_keys(same_backup) == {} and not syncd.state_dir.exists()
    r = syncd.once()
    assert r.returncode == 0 and "3 keys in the primary: 0 already in the backup, 3 replicated, 0 failed" in r.stdout
    assert backup_keys(same_backup) == {"k0": 0, "k1": 1, "k2": 2}
    r = syncd.once()  # nothing changed: the listings match the records, nothing to do
    assert "3 keys in the primary: 3 already in the backup, 0 replicated, 0 failed" in r.stdout


def test_once_shows_progress_on_a_terminal_only(bucket, s3, same_backup, syncd_factory):
    for i in range(12):
        s3.put_object(Bucket=bucket, Key=f"a{i}", Body=b"x" * 1024)
    syncd = syncd_factory(bucket, same_backup)
    env = {k: "" for k in ("INVOCATION_ID", "JOURNAL_STREAM")}
    rc, out, terminal = run_on_terminal(syncd.args("once", {}), {**env, "TERM": "xterm"})
    assert rc == 0 and "12 replicated" in out
    assert "listing" in terminal and "replicating" in terminal and "12/12 objects, 0 failed" in terminal
    assert "12.0k" in terminal  # 12 KiB moved, in the bar's units
    assert "replicating" not in out  # stdout (the summary a script reads) has no bar in it

    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"b{i}", Body=b"y")
    r = syncd.once()  # stderr is a pipe: a log, not a person; no bar
    assert r.returncode == 0 and "3 replicated" in r.stdout
    assert "replicating" not in r.stderr and "\r" not in r.stderr
    s3.put_object(Bucket=bucket, Key="c", Body=b"z")
    r = syncd.once("-P")  # asked for: a bar even into a pipe
    assert r.returncode == 0 and "1/1 objects, 0 failed" in r.stderr


def test_max_delete_guard_holds_back_a_large_deletion(bucket, s3, same_backup, syncd_factory):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
    syncd = syncd_factory(bucket, same_backup)
    assert syncd.once().returncode == 0
    for i in range(3):
        s3.delete_object(Bucket=bucket, Key=f"k{i}")
    r = syncd.once(delete="keep")
    assert "0 deleted" in r.stdout and len(backup_keys(same_backup)) == 5  # keep mode keeps
    r = syncd.once(delete="mirror", max_delete=2)
    assert "0 deleted, 3 deletes held back" in r.stdout, r.stdout
    assert len(backup_keys(same_backup)) == 5
    assert "max_delete=2" in r.stderr
    r = syncd.once("--dry-run", delete="mirror", max_delete=3)
    assert {"delete k0", "delete k1", "delete k2"} <= set(r.stdout.splitlines())
    r = syncd.once(delete="mirror", max_delete=3)
    assert "3 deleted" in r.stdout and set(backup_keys(same_backup)) == {"k3", "k4"}


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("fsgateway-syncd: ")
    return lines[0]


def test_preflight_failures_are_one_line_reasons(server, bucket, same_backup, syncd_factory, tmp_path):
    syncd = syncd_factory(bucket, same_backup)
    assert "unknown option 'no_such'" in one_line_error(syncd.once(no_such=1))
    assert "does not exist" in one_line_error(syncd.once(backup_bucket="no-such-backup-bucket"))
    dead = f"http://127.0.0.1:{free_port()}"
    assert "cannot reach S3 endpoint" in one_line_error(syncd.once(backup_endpoint=dead))
    wrong = make_passwd(tmp_path / "wrong", server.access_key, "not-the-secret")
    r = syncd.once(passwd_file=wrong)
    assert "credentials" in one_line_error(r) and "not-the-secret" not in r.stderr
    loose = make_passwd(tmp_path / "loose", server.access_key, server.secret_key)
    loose.chmod(0o640)
    r = syncd.once(passwd_file=loose)
    assert "accessible by group/other" in one_line_error(r) and server.secret_key not in r.stderr
    syncd.start()
    assert "in use by another fsgateway-syncd" in one_line_error(syncd.once())
    port = syncd.metrics_port
    other = syncd_factory(bucket, same_backup)
    r = subprocess.run([*other.args("run", {"metrics_address": f"127.0.0.1:{port}"})], capture_output=True,
                       text=True, timeout=60)
    assert "metrics_address" in one_line_error(r)


def test_sd_notify_ready_status_stopping_and_metrics(server, bucket, s3, same_backup, syncd_factory):
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    syncd = syncd_factory(bucket, same_backup)
    sock_path = str(syncd.state_dir.parent / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(60)
    try:
        syncd.start(env={"NOTIFY_SOCKET": sock_path})
        messages = [sock.recv(4096).decode()]
        assert "READY=1" in messages[0] and "STATUS=serving" in messages[0]
        assert (syncd.state_dir / "state.sqlite").exists()  # READY came after the state was loaded
        text = syncd.metrics()
        for name in ("fsgateway_syncd_pending_objects", "fsgateway_syncd_pending_bytes",
                     "fsgateway_syncd_behind_seconds", "fsgateway_syncd_reconcile_duration_seconds",
                     "fsgateway_syncd_last_reconcile_success_timestamp_seconds",
                     "fsgateway_syncd_feed_cursor_lag_seconds", "fsgateway_s3_requests_total"):
            assert f"# HELP {name} " in text
        assert server.secret_key not in text and server.access_key not in text
        # The start-up reconcile lists the backup: its requests are counted under role="backup".
        wait_for(lambda: metric_value(syncd.metrics(), "fsgateway_s3_requests_total", role="backup") > 0, 60,
                 "requests to the backup to be counted")
        syncd.proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in messages[-1]:
            messages.append(sock.recv(4096).decode())
        assert syncd.proc.wait(timeout=60) == 0
        syncd.proc = None
    finally:
        sock.close()


def test_last_successful_reconcile_survives_a_restart(bucket, s3, same_backup, syncd_factory):
    """A restart that skips the start-up reconcile (not due yet) still exports when the last one succeeded,
    so FsgatewayBackupReconcileStale does not fire ("no reconcile for 20000 days") after every restart."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    syncd = syncd_factory(bucket, same_backup)
    name = "fsgateway_syncd_last_reconcile_success_timestamp_seconds"
    syncd.start()
    first = wait_for(lambda: metric_value(syncd.metrics(), name), 60, "the start-up reconcile")
    assert syncd.stop() == 0
    syncd.start()  # reconcile_interval (1 h) has not passed: no reconcile now
    assert metric_value(syncd.metrics(), name) == first
    assert metric_value(syncd.metrics(), "fsgateway_syncd_reconciles_total", outcome="ok") == 0
    assert syncd.stop() == 0
    # `once` is a successful full reconcile too.
    assert syncd.once().returncode == 0
    syncd.start()
    assert metric_value(syncd.metrics(), name) > first
