"""syncd for tests: a backup bucket (same server, or the other server of the run) and `python -m syncd` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.process import free_port, wait_for
from tests.support.s3 import S3Server


@dataclass
class Backup:
    """Where syncd copies to: a bucket on the test's server or on the other one (S3_ALT_*)."""

    name: str
    client: object
    endpoint: str
    passwd: Path
    other_server: bool


def make_passwd(path: Path, access: str, secret: str) -> Path:
    path.write_text(f"{access}:{secret}\n")
    path.chmod(0o600)
    return path


def new_backup(server: S3Server, client, tmp: Path, other: bool) -> Backup:
    name = f"b-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return Backup(name, client, server.endpoint, make_passwd(tmp / f"passwd-{name}", server.access_key,
                                                             server.secret_key), other)


class Syncd:
    """`python -m syncd` processes (the worktree's code) for one primary/backup pair."""

    def __init__(self, server: S3Server, passwd: Path, primary: str, backup: Backup, tmp: Path) -> None:
        self.server = server
        self.passwd = passwd
        self.primary = primary
        self.backup = backup
        self.state_dir = tmp / "syncd-state"
        self.log = tmp / "syncd.log"
        self.metrics_port = 0
        self.proc: subprocess.Popen | None = None

    def args(self, command: str, options: dict[str, object]) -> list[str]:
        opts: dict[str, object] = {
            "bucket": self.primary, "endpoint": self.server.endpoint, "path_style": "true",
            "passwd_file": self.passwd, "backup_bucket": self.backup.name, "state_dir": self.state_dir,
            "feed_poll_interval": 0.2, "retry_deadline": 10, "retry_max_interval": 2,
            "metrics_address": f"127.0.0.1:{self.metrics_port}" if command == "run" else "off",
        }
        if self.server.ca_bundle:
            opts["ca_bundle"] = self.server.ca_bundle
        if self.backup.other_server:
            opts.update(backup_endpoint=self.backup.endpoint, backup_passwd_file=self.backup.passwd)
        opts.update(options)
        return [sys.executable, "-m", "syncd", command, *(a for k, v in opts.items() for a in ("--set", f"{k}={v}"))]

    def start(self, env: dict | None = None, **options: object) -> Syncd:
        self.metrics_port = free_port()
        self.proc = subprocess.Popen(self.args("run", options), stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        wait_for(lambda: self.proc.poll() is not None or self.serving(), 60, "syncd to serve /metrics")
        if self.proc.poll() is not None:
            pytest.fail(f"syncd exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        wait_for(lambda: 'fsgateway_syncd_up 1.0' in self.metrics(), 60, "syncd to be ready")
        return self

    def serving(self) -> bool:
        try:
            self.metrics()
        except OSError:
            return False
        return True

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()

    def once(self, *flags: str, **options: object) -> subprocess.CompletedProcess:
        return subprocess.run([*self.args("once", options), *flags], capture_output=True, text=True, timeout=300)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=10)
        self.proc = None
        return rc


def backup_keys(backup: Backup) -> dict[str, int]:
    out: dict[str, int] = {}
    for page in backup.client.get_paginator("list_objects_v2").paginate(Bucket=backup.name):
        out.update((o["Key"], o["Size"]) for o in page.get("Contents", []))
    return out


def backup_body(backup: Backup, key: str) -> bytes | None:
    try:
        return backup.client.get_object(Bucket=backup.name, Key=key)["Body"].read()
    except backup.client.exceptions.NoSuchKey:
        return None
