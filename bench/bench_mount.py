#!/usr/bin/env python3
"""Benchmark fsgateway against s3fs-fuse, rclone mount and raw boto3 on one S3 server.

Every contender runs in the same invocation against the same server (``S3_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), each in its own fresh bucket, so the
numbers are only ever compared within one run. Workloads (see bench/README.md):

1. write N MiB through the mount: time until close() returns, and until the object is
   complete in the bucket (HeadObject polled until ContentLength matches);
2. cold read N MiB: fresh mount, page cache dropped, whole file read, sha256 verified;
3. create M × 4 KiB files in one process into a directory that already exists in the bucket
   (a fresh mount has not seen it): time until the last close(), and until all are listed;
   S3 requests per file (fsgateway: its /metrics; boto3: counted in the client; the peers
   count none: an extra, untimed pass of this workload runs them through a counting proxy);
4. ``ls -l`` (scandir + lstat) of K entries on a fresh mount;
5. optionally (``--empty-files N``), N empty files into an existing directory, until all listed.

Plus the peak RSS (VmHWM) of each mount daemon. Each contender runs ``--runs`` times (3;
``--quick``: 1), each run in fresh buckets on fresh mounts; a cell is the median. Prints a
Markdown table and, with ``--json PATH``, writes the raw results. Must run as root (FUSE
mounts, drop_caches).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import itertools
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

MIB = 1 << 20
BLOCK = MIB  # read/write block size of the file-system workloads
SMALL_FILE_SIZE = 4096
LS_OBJECT_SIZE = 100
CONTENDERS = ("fsgateway", "s3fs", "rclone", "boto3")
PEERS = ("s3fs", "rclone")
REPO = Path(__file__).resolve().parent.parent

MOUNT_DEADLINE = 30.0  # seconds for a mount to appear in /proc/mounts
EXIT_DEADLINE = 60.0  # seconds for a daemon to exit after its unmount
POLL_HEAD = 0.05  # seconds between HeadObject polls
POLL_LIST = 0.2  # seconds between ListObjectsV2 polls

T = TypeVar("T")


def log(msg: str) -> None:
    """Progress line on stderr (stdout carries only the table)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def short(exc: BaseException, limit: int = 300) -> str:
    """One-line description of an exception."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- results


@dataclass
class Cell:
    """One measurement (or the reason it is missing)."""

    seconds: float | None = None
    mib_s: float | None = None
    rss_mib: float | None = None
    count: float | None = None
    error: str | None = None
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """A row of the table; ``kind`` is "throughput" (seconds + MiB/s), "time", "rss" or "count"."""

    key: str
    label: str
    kind: str


def make_rows(size_mib: int, small_files: int, ls_entries: int, empty_files: int = 0) -> list[Row]:
    """The table rows for the given workload sizes."""
    empty = [Row("empty_listed", f"create {empty_files:,} empty files into an existing dir: all listed",
                 "time")] if empty_files else []
    return [
        Row("write_close", f"write {size_mib} MiB: close() returned", "throughput"),
        Row("write_complete", f"write {size_mib} MiB: complete in bucket", "throughput"),
        Row("read_cold", f"cold read {size_mib} MiB (fresh mount, caches dropped, sha256 ok)", "throughput"),
        Row("write_cpu", f"CPU of the whole machine (server too) for the write, core-seconds of {os.cpu_count()}",
            "count"),
        Row("read_cpu", "CPU of the whole machine (server too) for the cold read, core-seconds", "count"),
        Row("small_close", f"create {small_files} × 4 KiB into an existing dir: all closed", "time"),
        Row("small_listed", f"create {small_files} × 4 KiB into an existing dir: all listed in bucket", "time"),
        Row("small_requests", "S3 requests per small file", "count"),
        Row("small_as_mount", f"boto3 only: the same {small_files} PUTs with the mount's headers "
            "(s3fs metadata, SHA-256, Content-MD5)", "time"),
        *empty,
        Row("ls", f"ls -l {ls_entries:,} entries (fresh mount)", "time"),
        Row("rss", "peak RSS of mount daemon (MiB)", "rss"),
    ]


# --------------------------------------------------------------------------- settings / S3


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, resolved from the command line and the environment."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    ca_bundle: str | None
    size: int
    small_files: int
    empty_files: int
    ls_entries: int
    fsgateway_cmd: list[str] | None
    fsgateway_opts: str
    rclone_provider: str
    workdir: Path
    row_timeout: float
    run_id: str


def s3_client(st: Settings, pool: int = 32) -> Any:
    """A boto3 client with checksums only when required (see SERVERS.md, RGW over HTTPS)."""
    cfg = Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        max_pool_connections=pool,
        retries={"max_attempts": 5, "mode": "standard"},
    )
    return boto3.client(
        "s3",
        endpoint_url=st.endpoint,
        aws_access_key_id=st.access_key,
        aws_secret_access_key=st.secret_key,
        region_name=st.region,
        verify=st.ca_bundle if st.ca_bundle else None,
        config=cfg,
    )


def head_size(s3: Any, bucket: str, key: str) -> int | None:
    """ContentLength of an object, or None if it does not exist (yet)."""
    try:
        return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def list_sizes(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    """{key: size} of every object under ``prefix``."""
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = int(obj["Size"])
    return out


def poll_until(cond: Callable[[], bool], deadline_s: float, interval: float, what: str) -> None:
    """Call ``cond`` every ``interval`` seconds until it is true; TimeoutError after the deadline."""
    end = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not reached within {deadline_s:.0f} s")
        time.sleep(interval)


def wait_listed(s3: Any, bucket: str, prefix: str, keys: Any, size: int, deadline_s: float, what: str) -> None:
    """Poll the bucket's listing until every key in ``keys`` is there with ``size`` bytes."""
    def all_listed() -> bool:
        sizes = list_sizes(s3, bucket, prefix)
        return all(sizes.get(k) == size for k in keys)

    poll_until(all_listed, deadline_s, POLL_LIST, what)


def create_bucket(s3: Any, name: str) -> None:
    """Create an empty bucket (us-east-1 style, no location constraint)."""
    s3.create_bucket(Bucket=name)


def delete_bucket(s3: Any, name: str) -> None:
    """Abort uploads, delete every object, delete the bucket; errors are logged, not raised."""
    try:
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
            for up in page.get("Uploads", []):
                with contextlib.suppress(Exception):
                    s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=name)
    except Exception as exc:
        log(f"could not delete bucket {name}: {short(exc)}")


def seed_objects(s3: Any, bucket: str, keys: list[str], body: bytes, threads: int = 16) -> None:
    """PUT ``body`` under every key, in a thread pool."""
    with ThreadPoolExecutor(threads) as pool:
        for fut in [pool.submit(s3.put_object, Bucket=bucket, Key=k, Body=body) for k in keys]:
            fut.result()


# --------------------------------------------------------------------------- /proc helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unescape_mount_field(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def mounted_paths() -> set[str]:
    """Mount points currently listed in /proc/mounts."""
    with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
        return {_unescape_mount_field(line.split()[1]) for line in f if len(line.split()) > 1}


def is_mounted(path: Path) -> bool:
    """Whether ``path`` is a mount point right now."""
    return str(path) in mounted_paths()


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def vm_hwm_kib(pid: int) -> int | None:
    """Peak resident set size (VmHWM) of a process in KiB, None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def busy_seconds() -> float:
    """Core-seconds all CPUs have spent not idle since boot (/proc/stat): the work a row cost, server included."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def drop_caches() -> str | None:
    """``sync; echo 3 > /proc/sys/vm/drop_caches``; returns a note if that was not possible."""
    done = threading.Event()

    def _sync() -> None:
        os.sync()
        done.set()

    threading.Thread(target=_sync, daemon=True).start()
    note = None
    if not done.wait(30.0):  # a hung FUSE mount elsewhere on the host must not hang us
        note = "sync did not finish in 30 s"
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as f:
            f.write("3\n")
    except OSError as exc:
        return f"page cache NOT dropped ({exc.strerror})"
    return note


# --------------------------------------------------------------------------- mounts


class MountError(RuntimeError):
    """The daemon did not produce a working mount."""


class Mount:
    """A FUSE daemon started by us, in the foreground, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], mountpoint: Path, logfile: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.mountpoint = mountpoint
        self.logfile = logfile
        self.proc: subprocess.Popen[bytes] | None = None
        self.mount_seconds: float | None = None
        self.metrics_port: int | None = None  # fsgateway's /metrics, for its S3 request count

    def metric(self, name: str) -> float | None:
        """The sum of the series `name` on the daemon's /metrics; None when it serves none."""
        if self.metrics_port is None:
            return None
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith((name + "{", name + " ")))

    def log_tail(self, lines: int = 3) -> str:
        """Last lines of the daemon's output, for error messages."""
        try:
            text = self.logfile.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no output"
        tail = " / ".join(line.strip() for line in text[-lines:]) or "no output"
        return tail if len(tail) <= 400 else "…" + tail[-399:]

    def start(self) -> None:
        """Start the daemon and wait (with a deadline) until the mount is listed and answers."""
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if is_mounted(self.mountpoint):
            raise MountError(f"{self.mountpoint} is already a mount point")
        log(f"mount {self.name}: {shlex.join(self.argv)}")
        t0 = time.perf_counter()
        with open(self.logfile, "ab") as out:
            try:
                self.proc = subprocess.Popen(
                    self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    # not the checkout: `python -m fsgateway` would import the checkout's code whatever
                    # PYTHONPATH a --fsgateway-cmd sets (the cwd comes first on sys.path)
                    cwd=self.mountpoint.parent, start_new_session=True,
                )
            except OSError as exc:
                raise MountError(f"cannot start {self.argv[0]}: {exc.strerror}") from exc
        end = time.monotonic() + MOUNT_DEADLINE
        while not is_mounted(self.mountpoint):
            rc = self.proc.poll()
            if rc is not None:
                raise MountError(f"{self.name} exited with status {rc} before mounting: {self.log_tail()}")
            if time.monotonic() > end:
                raise MountError(f"{self.name} not mounted within {MOUNT_DEADLINE:.0f} s: {self.log_tail()}")
            time.sleep(0.02)
        self.mount_seconds = time.perf_counter() - t0
        # The mount must also answer: a stat of its root, bounded like any other operation.
        try:
            run_bounded(lambda: os.stat(self.mountpoint), MOUNT_DEADLINE, self.abort)
        except Exception as exc:
            raise MountError(f"{self.name} mounted but its root does not answer: {short(exc)}") from exc

    def peak_rss_mib(self) -> float | None:
        """Sum of VmHWM over the daemon and its descendants, in MiB (normally one process)."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        kib = [v for p in process_tree(self.proc.pid) if (v := vm_hwm_kib(p)) is not None]
        return sum(kib) / 1024 if kib else None

    def _signal_tree(self, sig: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for pid in reversed(process_tree(self.proc.pid)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def _wait_exit(self, seconds: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _fusermount(self, flag: str) -> bool:
        try:
            res = subprocess.run(
                ["fusermount3", flag, str(self.mountpoint)], capture_output=True, text=True, timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log(f"fusermount3 {flag} {self.mountpoint}: {short(exc)}")
            return False
        if res.returncode != 0:
            log(f"fusermount3 {flag} {self.mountpoint}: {res.stderr.strip()}")
        return res.returncode == 0

    def _lazy_unmount(self) -> None:
        if is_mounted(self.mountpoint) and not self._fusermount("-uz"):
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True, timeout=30)

    def kill(self) -> None:
        """Stop a daemon that never mounted properly: SIGTERM, then SIGKILL, each with a deadline."""
        self._signal_tree(signal.SIGTERM)
        if not self._wait_exit(5.0):
            self._signal_tree(signal.SIGKILL)
            self._wait_exit(10.0)
        self._lazy_unmount()

    def abort(self) -> None:
        """Kill the daemon (which fails every pending request with ENOTCONN) and detach the mount."""
        log(f"aborting {self.name} mount at {self.mountpoint}")
        self._signal_tree(signal.SIGKILL)
        self._wait_exit(10.0)
        self._lazy_unmount()

    def stop(self) -> None:
        """Unmount (``fusermount3 -u``, else ``-uz``), wait for the daemon, then TERM/KILL it."""
        if is_mounted(self.mountpoint) and not self._fusermount("-u"):
            self._fusermount("-uz")
        if not self._wait_exit(EXIT_DEADLINE):
            log(f"{self.name} still running {EXIT_DEADLINE:.0f} s after unmount: SIGTERM")
            self._signal_tree(signal.SIGTERM)
            if not self._wait_exit(10.0):
                log(f"{self.name} ignored SIGTERM: SIGKILL")
                self._signal_tree(signal.SIGKILL)
                self._wait_exit(10.0)
        self._lazy_unmount()
        if is_mounted(self.mountpoint):
            log(f"WARNING: {self.mountpoint} is still mounted")
        else:
            with contextlib.suppress(OSError):
                self.mountpoint.rmdir()


def run_bounded(fn: Callable[[], T], timeout: float, on_timeout: Callable[[], None]) -> T:
    """Run ``fn`` in a worker thread; after ``timeout`` s call ``on_timeout`` and raise TimeoutError.

    A file-system call into a hung FUSE daemon never returns on its own; ``on_timeout`` kills the
    daemon so that the call fails and the worker thread ends.
    """
    box: dict[str, Any] = {}

    def _target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=_target, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        on_timeout()
        worker.join(30.0)
        raise TimeoutError(f"did not finish within {timeout:.0f} s (daemon killed)")
    if "error" in box:
        raise box["error"]
    return box["value"]


# --------------------------------------------------------------------------- file-system workloads


def warm_file(path: Path) -> None:
    """Read a local file once so that the timed copy does not wait on the local disk."""
    with open(path, "rb", buffering=0) as f:
        while f.read(8 * MIB):
            pass


def fs_write(src: Path, dst: Path) -> float:
    """Copy ``src`` to ``dst`` in 1 MiB blocks; seconds from open() until close() returned."""
    t0 = time.perf_counter()
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        while block := fin.read(BLOCK):
            view = memoryview(block)
            while view:
                view = view[fout.write(view) :]
    return time.perf_counter() - t0


def fs_read(path: Path) -> tuple[float, str, int]:
    """Read a whole file in 1 MiB blocks, hashing as it goes: (seconds, sha256 hex, bytes)."""
    digest = hashlib.sha256()
    total = 0
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while block := f.read(BLOCK):
            digest.update(block)
            total += len(block)
    return time.perf_counter() - t0, digest.hexdigest(), total


def fs_create_small(directory: Path, names: list[str], payload: bytes) -> float:
    """Create every file (open, one write, close), one after the other; seconds to the last close."""
    t0 = time.perf_counter()
    for name in names:
        with open(directory / name, "wb", buffering=0) as f:
            f.write(payload)
    return time.perf_counter() - t0


def fs_ls_l(directory: Path) -> tuple[float, int]:
    """What ``ls -l`` costs: readdir plus an lstat of every entry; (seconds, entries)."""
    t0 = time.perf_counter()
    count = 0
    with os.scandir(directory) as it:
        for entry in it:
            entry.stat(follow_symlinks=False)
            count += 1
    return time.perf_counter() - t0, count


def s3_read_sha(s3: Any, bucket: str, key: str, cfg: TransferConfig) -> tuple[str, int]:
    """Read an object as parallel ranged GETs and hash them in order: (sha256 hex, bytes).

    ``cfg.max_concurrency`` ranges of ``cfg.multipart_chunksize`` are in flight or buffered at a
    time. Not ``download_fileobj`` into a hashing sink: with ``response_checksum_validation=
    "when_required"`` s3transfer 0.19 submits ranges 1..N-1 from the done callback of range 0,
    which holds slot 0 of its in-memory window (10 ranges) until the callback returns, so an
    object of more than 10 ranges deadlocks a non-seekable sink.
    """
    size = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    chunk = cfg.multipart_chunksize
    starts = iter(range(0, size, chunk))

    def get(start: int) -> bytes:
        rng = f"bytes={start}-{min(start + chunk, size) - 1}"
        return s3.get_object(Bucket=bucket, Key=key, Range=rng)["Body"].read()

    digest, total = hashlib.sha256(), 0
    with ThreadPoolExecutor(cfg.max_concurrency) as pool:
        window = deque(pool.submit(get, start) for start in itertools.islice(starts, cfg.max_concurrency))
        while window:
            data = window.popleft().result()
            digest.update(data)
            total += len(data)
            nxt = next(starts, None)
            if nxt is not None:
                window.append(pool.submit(get, nxt))
    return digest.hexdigest(), total


# --------------------------------------------------------------------------- the bench


class Bench:
    """Runs every selected contender against the same server and collects the cells."""

    def __init__(self, st: Settings):
        self.st = st
        self.s3 = s3_client(st)
        self.mounts: list[Mount] = []  # every mount started, for the final clean-up
        self.buckets: list[str] = []  # every bucket created, deleted at the end at the latest
        self.mount_counter = 0
        self.data_file = st.workdir / f"data-{st.size // MIB}MiB.bin"
        self.data_sha = ""
        self.passwd_file = st.workdir / "passwd-s3fs"
        self.ls_bucket: str | None = None
        self.transfer = TransferConfig(
            multipart_threshold=16 * MIB, multipart_chunksize=16 * MIB, max_concurrency=8, use_threads=True,
        )

    # ---- preparation

    def prepare(self) -> None:
        """Data file, passwd file, and the shared bucket of ``ls`` entries."""
        log(f"generating {self.st.size // MIB} MiB of random data in {self.data_file}")
        digest = hashlib.sha256()
        with open("/dev/urandom", "rb", buffering=0) as rnd, open(self.data_file, "wb") as out:
            left = self.st.size
            while left:
                block = rnd.read(min(BLOCK, left))
                digest.update(block)
                out.write(block)
                left -= len(block)
        self.data_sha = digest.hexdigest()
        fd = os.open(self.passwd_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{self.st.access_key}:{self.st.secret_key}\n")
        self.ls_bucket = self.new_bucket("ls")
        keys = [f"ls/f{i:06d}" for i in range(self.st.ls_entries)]
        log(f"seeding {len(keys)} objects into {self.ls_bucket} (shared by all contenders)")
        t0 = time.perf_counter()
        seed_objects(self.s3, self.ls_bucket, keys, b"x" * LS_OBJECT_SIZE)
        log(f"seeded in {time.perf_counter() - t0:.1f} s")
        self.warm_up()

    def warm_up(self) -> None:
        """Write the big file twice with boto3 and delete it, so the first contender does not pay
        for a fresh server (a new Ceph OSD allocates its block file on first writes: 1.5-2x slower)."""
        t0 = time.perf_counter()
        for _ in range(2):
            with open(self.data_file, "rb") as f:
                self.s3.upload_fileobj(f, self.ls_bucket, "warm-up", Config=self.transfer)
        self.s3.delete_object(Bucket=self.ls_bucket, Key="warm-up")
        log(f"warmed the server up in {time.perf_counter() - t0:.1f} s")

    def new_bucket(self, tag: str) -> str:
        """Create a fresh bucket named after the run and ``tag``."""
        name = f"fsgw-bench-{self.st.run_id}-{tag}"
        create_bucket(self.s3, name)
        self.buckets.append(name)
        return name

    def drop_bucket(self, name: str) -> None:
        """Delete a bucket created by this run."""
        delete_bucket(self.s3, name)
        if name in self.buckets:
            self.buckets.remove(name)

    # ---- daemons

    def mount_argv(
        self, contender: str, bucket: str, mountpoint: Path, cache: Path,
        metrics_port: int = 0, endpoint: str | None = None) -> tuple[list[str], dict[str, str]]:
        """Command line and environment of a contender's mount daemon (to `endpoint`, default the server's)."""
        st = replace(self.st, endpoint=endpoint) if endpoint else self.st
        env = dict(os.environ)
        if contender == "fsgateway":
            if not st.fsgateway_cmd:
                raise MountError("fsgateway not found on PATH nor in .venv/bin (use --fsgateway-cmd)")
            opts = [f"url={st.endpoint}", "use_path_request_style", f"passwd_file={self.passwd_file}"]
            if st.ca_bundle:
                opts.append(f"ca_bundle={st.ca_bundle}")
            if st.fsgateway_opts:
                opts.append(st.fsgateway_opts.format(cache_dir=cache, metrics_port=metrics_port))
            env.update(AWS_ACCESS_KEY_ID=st.access_key, AWS_SECRET_ACCESS_KEY=st.secret_key)
            return [*st.fsgateway_cmd, bucket, str(mountpoint), "-f", "-o", ",".join(opts)], env
        if contender == "s3fs":
            opts = [f"url={st.endpoint}", "use_path_request_style", f"passwd_file={self.passwd_file}",
                    "dbglevel=warn"]
            if st.ca_bundle:
                env["CURL_CA_BUNDLE"] = st.ca_bundle  # s3fs's way of taking a CA bundle
            return ["s3fs", bucket, str(mountpoint), "-f", "-o", ",".join(opts)], env
        if contender == "rclone":
            env.pop("AWS_CA_BUNDLE", None)  # rclone 1.60 refuses to start with it set
            env.update(
                RCLONE_CONFIG_BENCH_TYPE="s3",
                RCLONE_CONFIG_BENCH_PROVIDER=st.rclone_provider,
                RCLONE_CONFIG_BENCH_ENV_AUTH="false",
                RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=st.access_key,
                RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=st.secret_key,
                RCLONE_CONFIG_BENCH_ENDPOINT=st.endpoint,
                RCLONE_CONFIG_BENCH_REGION=st.region,
                RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
            )
            argv = ["rclone", "mount", f"bench:{bucket}", str(mountpoint),
                    "--config", str(st.workdir / "rclone.conf"),  # absent: only the env remote exists
                    "--vfs-cache-mode", "writes", "--cache-dir", str(cache), "--log-level", "NOTICE"]
            if st.ca_bundle:
                argv += ["--ca-cert", st.ca_bundle]
            return argv, env
        raise ValueError(contender)

    @contextlib.contextmanager
    def mounted(self, contender: str, bucket: str, endpoint: str | None = None) -> Iterator[Mount]:
        """A fresh mount (new mount point, new cache directory) of ``bucket``, always torn down."""
        self.mount_counter += 1
        tag = f"{contender}-{self.mount_counter}"
        mountpoint = self.st.workdir / f"mnt-{tag}"
        cache = self.st.workdir / f"cache-{tag}"
        cache.mkdir()
        port = free_port()
        argv, env = self.mount_argv(contender, bucket, mountpoint, cache, port, endpoint)
        mount = Mount(contender, argv, env, mountpoint, self.st.workdir / f"log-{tag}.txt")
        if contender == "fsgateway" and f"127.0.0.1:{port}" in " ".join(argv):
            mount.metrics_port = port
        self.mounts.append(mount)
        try:
            try:
                mount.start()
            except BaseException:
                mount.kill()
                raise
            yield mount
        finally:
            mount.stop()
            shutil.rmtree(cache, ignore_errors=True)

    def cleanup(self) -> None:
        """Tear down whatever is left: mounts, daemons, buckets, the work directory."""
        for mount in self.mounts:
            if is_mounted(mount.mountpoint) or (mount.proc and mount.proc.poll() is None):
                mount.stop()
        for name in list(self.buckets):
            self.drop_bucket(name)
        mine = [p for p in mounted_paths() if p.startswith(str(self.st.workdir) + "/")]
        if mine:
            log(f"WARNING: still mounted, work directory kept: {mine}")
        else:
            shutil.rmtree(self.st.workdir, ignore_errors=True)

    # ---- rows

    def mount_row(self, cells: dict[str, Cell], keys: list[str], contender: str, bucket: str,
                  body: Callable[[Mount], None], rss: list[float]) -> None:
        """Run ``body`` on a fresh mount within the row deadline; failures become errors in ``cells``."""
        try:
            with self.mounted(contender, bucket) as mount:
                try:
                    run_bounded(lambda: body(mount), self.st.row_timeout, mount.abort)
                finally:
                    peak = mount.peak_rss_mib()
                    if peak is not None:
                        rss.append(peak)
                    for k in keys:
                        if k in cells:
                            cells[k].extra.setdefault("mount_seconds", mount.mount_seconds)
        except MountError:
            raise
        except Exception as exc:
            log(f"{contender} {keys}: {short(exc)}")
            for k in keys:
                cells.setdefault(k, Cell(error=short(exc)))

    def run_mounted(self, contender: str, bucket: str, cells: dict[str, Cell]) -> None:
        """The four workloads through a mount daemon; each on its own fresh mount."""
        st, s3 = self.st, self.s3
        rss: list[float] = []
        mib = st.size / MIB

        def write(m: Mount) -> None:
            warm_file(self.data_file)
            t0, cpu0 = time.perf_counter(), busy_seconds()
            fs_write(self.data_file, m.mountpoint / "big.bin")
            t_close = time.perf_counter() - t0
            cells["write_close"] = Cell(t_close, mib / t_close)
            log(f"{contender} write: close after {t_close:.2f} s")
            poll_until(lambda: head_size(s3, bucket, "big.bin") == st.size, max(120.0, mib / 2), POLL_HEAD,
                       "object complete in bucket")
            t_done = time.perf_counter() - t0
            cells["write_cpu"] = Cell(count=busy_seconds() - cpu0)
            cells["write_complete"] = Cell(t_done, mib / t_done)
            log(f"{contender} write: complete in bucket after {t_done:.2f} s")

        def read(m: Mount) -> None:
            note = drop_caches()
            cpu0 = busy_seconds()
            secs, sha, total = fs_read(m.mountpoint / "big.bin")
            cells["read_cpu"] = Cell(count=busy_seconds() - cpu0)
            if total != st.size or sha != self.data_sha:
                raise RuntimeError(f"read {total} bytes, sha256 mismatch ({self.diagnose_big(bucket)})")
            cells["read_cold"] = Cell(secs, mib / secs, note=note)
            log(f"{contender} cold read: {secs:.2f} s")

        def many(m: Mount, folder: str, count: int, size: int, close_key: str | None, listed_key: str) -> None:
            directory = m.mountpoint / folder  # made in the bucket before this fresh mount started
            names = [f"f{i:05d}" for i in range(count)]
            want = {f"{folder}/{n}" for n in names}
            payload = os.urandom(size)
            before = m.metric("fsgateway_s3_requests_total")
            t0 = time.perf_counter()
            t_close = fs_create_small(directory, names, payload)
            if close_key:
                cells[close_key] = Cell(t_close, extra={"files_per_s": count / t_close})
            log(f"{contender} {folder}: all closed after {t_close:.2f} s")

            wait_listed(s3, bucket, f"{folder}/", want, size, 300.0, f"all {folder} files listed")
            t_done = time.perf_counter() - t0
            cells[listed_key] = Cell(t_done, extra={"files_per_s": count / t_done})
            log(f"{contender} {folder}: all listed after {t_done:.2f} s")
            if before is not None and listed_key == "small_listed":  # the feed's journal PUTs count too:
                poll_until(lambda: not m.metric("fsgateway_feed_wal_bytes"), 60.0, POLL_LIST, "the feed's log flushed")
                after = m.metric("fsgateway_s3_requests_total") or 0.0
                cells["small_requests"] = Cell(count=(after - before) / count)

        def small(m: Mount) -> None:
            many(m, "small", st.small_files, SMALL_FILE_SIZE, "small_close", "small_listed")

        def empty(m: Mount) -> None:
            many(m, "empty", st.empty_files, 0, None, "empty_listed")

        def ls(m: Mount) -> None:
            secs, count = fs_ls_l(m.mountpoint / "ls")
            if count != st.ls_entries:
                raise RuntimeError(f"listed {count} entries, expected {st.ls_entries}")
            cells["ls"] = Cell(secs, extra={"entries_per_s": count / secs})
            log(f"{contender} ls -l: {secs:.2f} s")

        plan: list[tuple[list[str], str, Callable[[Mount], None]]] = [
            (["write_close", "write_complete"], bucket, write),
            (["read_cold"], bucket, read),
            (["small_close", "small_listed", "small_requests"], bucket, small),
            *([(["empty_listed"], bucket, empty)] if st.empty_files else []),
            (["ls"], self.ls_bucket or bucket, ls),
        ]
        for folder in ("small/", "empty/"):  # directories that exist before the mount sees them
            s3.put_object(Bucket=bucket, Key=folder, Body=b"")
        for keys, target, body in plan:
            if keys == ["read_cold"]:
                self.ensure_big(contender, bucket)
            try:
                self.mount_row(cells, keys, contender, target, body, rss)
            except MountError as exc:
                log(f"{contender}: mount failed: {exc}")
                for row in make_rows(0, 0, 0):
                    if not (row.key == "rss" and rss):  # keep the RSS of the mounts that worked
                        cells.setdefault(row.key, Cell(error=f"mount failed: {exc}"))
                break
        cells.setdefault("rss", Cell(rss_mib=max(rss) if rss else None, extra={"per_mount_mib": rss}))
        if contender in PEERS:
            try:
                self.count_peer_requests(contender, bucket, cells)
            except Exception as exc:
                log(f"{contender}: requests not counted: {short(exc)}")

    def count_peer_requests(self, contender: str, bucket: str, cells: dict[str, Cell]) -> None:
        """Requests per small file of a peer, which counts none itself: an untimed pass of the small
        workload on a fresh mount whose requests go through a counting proxy (the project's fault
        proxy, passing everything; it closes each connection, so nothing of this pass is timed)."""
        st = self.st
        if not st.endpoint.startswith("http://"):
            log(f"{contender}: requests not counted (the counting proxy speaks plain HTTP only)")
            return
        sys.path.insert(0, str(REPO))
        from tests.support.faultproxy import FaultProxy

        folder = "count"
        self.s3.put_object(Bucket=bucket, Key=f"{folder}/", Body=b"")
        names = [f"f{i:05d}" for i in range(st.small_files)]
        proxy = FaultProxy.to(st.endpoint).start()
        try:
            with self.mounted(contender, bucket, endpoint=proxy.endpoint) as m:
                before = len(proxy.seen())
                fs_create_small(m.mountpoint / folder, names, os.urandom(SMALL_FILE_SIZE))
                wait_listed(self.s3, bucket, f"{folder}/", {f"{folder}/{n}" for n in names}, SMALL_FILE_SIZE,
                            300.0, "all counted files listed")
                sent = proxy.seen()[before:]
        finally:
            proxy.stop()
        kinds: dict[str, int] = {}
        for seen in sent:
            kinds[seen.kind] = kinds.get(seen.kind, 0) + 1
        cells["small_requests"] = Cell(count=len(sent) / len(names), extra={"by_kind": kinds})
        log(f"{contender}: {len(sent) / len(names):.2f} requests per small file {kinds}")

    def ensure_big(self, contender: str, bucket: str) -> None:
        """If the write row left no complete big.bin, upload it with boto3 so that the read row can run."""
        try:
            if head_size(self.s3, bucket, "big.bin") != self.st.size:
                log(f"{contender}: big.bin incomplete after the write row; boto3 uploads it for the read")
                self.s3.upload_file(str(self.data_file), bucket, "big.bin", Config=self.transfer)
        except Exception as exc:
            log(f"{contender}: could not provide big.bin for the read row: {short(exc)}")

    def diagnose_big(self, bucket: str) -> str:
        """After a bad read through a mount: is the object in the bucket right (bad read) or not?"""
        try:
            sha, total = s3_read_sha(self.s3, bucket, "big.bin", self.transfer)
        except Exception as exc:
            return f"boto3 GET failed too: {short(exc, 80)}"
        ok = total == self.st.size and sha == self.data_sha
        return "object in bucket is correct: bad read" if ok else "object in bucket is wrong too: bad write"

    def run_boto3(self, bucket: str, cells: dict[str, Cell]) -> None:
        """The same workloads with plain boto3: the limit the mounts are measured against."""
        st, s3 = self.st, self.s3
        mib = st.size / MIB

        def row(keys: list[str], fn: Callable[[], None]) -> None:
            try:
                run_bounded(fn, st.row_timeout, lambda: None)
            except Exception as exc:
                log(f"boto3 {keys}: {short(exc)}")
                for k in keys:
                    cells.setdefault(k, Cell(error=short(exc)))

        def write() -> None:
            warm_file(self.data_file)
            t0, cpu0 = time.perf_counter(), busy_seconds()
            s3.upload_file(str(self.data_file), bucket, "big.bin", Config=self.transfer)
            t = time.perf_counter() - t0
            cells["write_close"] = Cell(t, mib / t)
            poll_until(lambda: head_size(s3, bucket, "big.bin") == st.size, 60.0, POLL_HEAD,
                       "object in bucket")
            t_done = time.perf_counter() - t0
            cells["write_cpu"] = Cell(count=busy_seconds() - cpu0)
            cells["write_complete"] = Cell(t_done, mib / t_done)
            log(f"boto3 write: {t:.2f} s")

        def read() -> None:
            note = drop_caches()
            t0, cpu0 = time.perf_counter(), busy_seconds()
            sha, total = s3_read_sha(s3, bucket, "big.bin", self.transfer)
            t = time.perf_counter() - t0
            cells["read_cpu"] = Cell(count=busy_seconds() - cpu0)
            if total != st.size or sha != self.data_sha:
                raise RuntimeError(f"read {total} bytes, sha256 mismatch")
            cells["read_cold"] = Cell(t, mib / t, note=note)
            log(f"boto3 cold read: {t:.2f} s")

        def small() -> None:
            keys = [f"small/f{i:05d}" for i in range(st.small_files)]
            payload = os.urandom(SMALL_FILE_SIZE)
            sent: list[str] = []

            def count(**_: Any) -> None:
                sent.append("request")

            s3.meta.events.register("before-send.s3", count)
            t0 = time.perf_counter()
            try:
                for key in keys:  # sequential, as one process writing file after file
                    s3.put_object(Bucket=bucket, Key=key, Body=payload)
            finally:
                s3.meta.events.unregister("before-send.s3", count)
            t = time.perf_counter() - t0
            cells["small_requests"] = Cell(count=len(sent) / len(keys))
            cells["small_close"] = Cell(t, extra={"files_per_s": st.small_files / t})

            wait_listed(s3, bucket, "small/", keys, SMALL_FILE_SIZE, 60.0, "all small objects listed")
            t_done = time.perf_counter() - t0
            cells["small_listed"] = Cell(t_done, extra={"files_per_s": st.small_files / t_done})
            log(f"boto3 small objects: {t:.2f} s")

            # What the server charges for the mount's object format: the same PUTs with its headers.
            md5 = base64.b64encode(hashlib.md5(payload).digest()).decode()
            meta = {"mode": "33188", "uid": "0", "gid": "0", "mtime": str(int(time.time())),
                    "fsg-sha256": hashlib.sha256(payload).hexdigest()}
            t0 = time.perf_counter()
            for key in keys:
                s3.put_object(Bucket=bucket, Key=f"as-mount/{key}", Body=payload, ContentMD5=md5, Metadata=meta,
                              ContentType="application/octet-stream")
            t = time.perf_counter() - t0
            cells["small_as_mount"] = Cell(t, extra={"files_per_s": st.small_files / t})
            log(f"boto3 small objects with the mount's headers: {t:.2f} s")

        def ls() -> None:
            t0 = time.perf_counter()
            count = len(list_sizes(s3, self.ls_bucket or bucket, "ls/"))
            t = time.perf_counter() - t0
            if count != st.ls_entries:
                raise RuntimeError(f"listed {count} objects, expected {st.ls_entries}")
            cells["ls"] = Cell(t, extra={"entries_per_s": count / t})
            log(f"boto3 list: {t:.2f} s")

        row(["write_close", "write_complete"], write)
        row(["read_cold"], read)
        def empty() -> None:
            keys = [f"empty/f{i:05d}" for i in range(st.empty_files)]
            t0 = time.perf_counter()
            for key in keys:
                s3.put_object(Bucket=bucket, Key=key, Body=b"")
            poll_until(lambda: len(list_sizes(s3, bucket, "empty/")) >= len(keys), 60.0, POLL_LIST, "all listed")
            cells["empty_listed"] = Cell(time.perf_counter() - t0)

        row(["small_close", "small_listed", "small_requests"], small)
        if st.empty_files:
            row(["empty_listed"], empty)
        row(["ls"], ls)
        cells["rss"] = Cell(note="no daemon (in-process client)")

    def run_contender(self, contender: str, cells: dict[str, Cell]) -> None:
        """All rows of one contender in its own fresh bucket (deleted afterwards), filling ``cells``.

        ``cells`` is filled as the rows complete, so that an interrupted run still reports them.
        """
        log(f"=== {contender}")
        try:
            bucket = self.new_bucket(contender)
        except Exception as exc:
            cells.update({r.key: Cell(error=f"create bucket: {short(exc)}") for r in make_rows(0, 0, 0)})
            return
        try:
            if contender == "boto3":
                self.run_boto3(bucket, cells)
            elif contender in ("s3fs", "rclone") and shutil.which(contender) is None:
                cells.update({r.key: Cell(error=f"{contender} not installed") for r in make_rows(0, 0, 0)})
            else:
                self.run_mounted(contender, bucket, cells)
        finally:
            self.drop_bucket(bucket)


# --------------------------------------------------------------------------- report


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def fmt_cell(row: Row, cell: Cell | None, error_ref: str = "") -> str:
    """Markdown text of one cell; an error shows its start and a reference to the footnote."""
    if cell is None:
        return "—"
    if cell.error:
        text = cell.error if len(cell.error) <= 48 else cell.error[:47] + "…"
        return f"⚠ {error_ref} {_md(text)}".replace("  ", " ")
    if row.kind == "rss":
        return f"{cell.rss_mib:.0f}" if cell.rss_mib is not None else "—"
    if row.kind == "count":
        return f"{cell.count:.2f}" if cell.count is not None else "—"
    if cell.seconds is None:
        return "—"
    text = f"{cell.seconds:.2f} s"
    if row.kind == "throughput" and cell.mib_s is not None:
        text += f" ({cell.mib_s:.0f} MiB/s)"
    if cell.note:
        text += " †"
    return text


def _value(row: Row, cell: Cell | None) -> float | None:
    if cell is None or cell.error:
        return None
    return {"rss": cell.rss_mib, "count": cell.count}.get(row.kind, cell.seconds)


def ratios(row: Row, results: dict[str, dict[str, Cell]]) -> dict[str, Any]:
    """fsgateway vs the fastest peer and vs boto3, as throughput ratios (>1: fsgateway faster).

    For the RSS and request-count rows: fsgateway's value divided by the other's (<1: fsgateway leaner).
    """
    lower = row.kind in ("rss", "count")
    out: dict[str, Any] = {"vs_peer": None, "peer": None, "vs_boto3": None}
    fsgw = _value(row, results.get("fsgateway", {}).get(row.key))
    if not fsgw:
        return out
    peers = {p: v for p in PEERS if (v := _value(row, results.get(p, {}).get(row.key)))}
    if peers:
        best = min(peers, key=lambda p: peers[p])
        out["peer"] = best
        out["vs_peer"] = fsgw / peers[best] if lower else peers[best] / fsgw
    b3 = _value(row, results.get("boto3", {}).get(row.key))
    if b3:
        out["vs_boto3"] = fsgw / b3 if lower else b3 / fsgw
    return out


def median_cells(rows: list[Row], runs: list[dict[str, Cell]]) -> dict[str, Cell]:
    """Per row, the run whose value is the median of those that have one (else the first run's error)."""
    out: dict[str, Cell] = {}
    for row in rows:
        cells = [c for run in runs if (c := run.get(row.key)) is not None]
        valued = sorted((v, i) for i, c in enumerate(cells) if (v := _value(row, c)) is not None)
        if valued:
            out[row.key] = cells[valued[(len(valued) - 1) // 2][1]]  # the lower median: a real run's cell
            if len(valued) > 1:
                out[row.key].extra["median_of"] = len(valued)
                out[row.key].extra["median"] = statistics.median(v for v, _ in valued)
        elif cells:
            out[row.key] = cells[0]
    return out


def markdown(rows: list[Row], contenders: list[str], results: dict[str, dict[str, Cell]]) -> str:
    """The results table, plus footnotes."""
    head = ["workload", *contenders, "fsgateway ÷ fastest peer", "fsgateway ÷ boto3"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    errors: dict[tuple[str, str], str] = {}  # (contender, message) -> footnote tag
    for row in rows:
        cells = []
        for c in contenders:
            cell = results.get(c, {}).get(row.key)
            ref = ""
            if cell is not None and cell.error:
                ref = errors.setdefault((c, cell.error), f"[E{len(errors) + 1}]")
            cells.append(fmt_cell(row, cell, ref))
        r = ratios(row, results)
        peer = f"×{r['vs_peer']:.2f} ({r['peer']})" if r["vs_peer"] else "—"
        b3 = f"×{r['vs_boto3']:.2f}" if r["vs_boto3"] else "—"
        lines.append("| " + " | ".join([row.label, *cells, peer, b3]) + " |")
    notes = [f"{c}, {row.label}: {cell.note}" for row in rows for c in contenders
             if (cell := results.get(c, {}).get(row.key)) and cell.note and row.kind != "rss"]
    lines.append("")
    lines.append("- Ratios: throughput of fsgateway ÷ throughput of the other (>1 = fsgateway faster); "
                 "RSS, CPU and request rows: fsgateway ÷ the other (<1 = fsgateway leaner). "
                 "Each cell is the median of the runs.")
    lines += [f"- † {_md(n)}" for n in notes]
    lines += [f"- {tag} {c}: {_md(msg)}" for (c, msg), tag in errors.items()]
    return "\n".join(lines)


def tool_version(argv: list[str]) -> str | None:
    """First output line of a ``--version``-style command, None if it cannot run."""
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                             env={k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (res.stdout or res.stderr).strip().splitlines()
    return lines[0] if lines else None


# --------------------------------------------------------------------------- main


def default_fsgateway_cmd() -> list[str] | None:
    """This checkout's ``.venv/bin/fsgateway`` (the benchmark measures this tree), else ``fsgateway``
    on PATH (it may be another checkout's), else the one beside the Python running this script."""
    local = REPO / ".venv" / "bin" / "fsgateway"
    if local.exists():
        return [str(local)]
    exe = shutil.which("fsgateway")
    if exe:
        return [exe]
    beside = Path(sys.executable).parent / "fsgateway"
    return [str(beside)] if beside.exists() else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--only", action="append", choices=CONTENDERS, metavar="CONTENDER",
                   help=f"run only this contender (repeatable; one of {', '.join(CONTENDERS)})")
    p.add_argument("--size-mib", type=int, default=256, help="size of the big file")
    p.add_argument("--small-files", type=int, default=500, help="number of 4 KiB files")
    p.add_argument("--ls-entries", type=int, default=5000, help="entries in the ls -l directory")
    p.add_argument("--fsgateway-cmd", default=None,
                   help="command starting fsgateway (default: this checkout's .venv/bin/fsgateway, else "
                        "fsgateway on PATH, else the one beside this Python)")
    p.add_argument("--fsgateway-opts", default="cache_dir={cache_dir},metrics_address=127.0.0.1:{metrics_port}",
                   help="extra -o options for fsgateway; {cache_dir} is a fresh directory per mount, "
                        "{metrics_port} a free port (its /metrics counts the S3 requests)")
    p.add_argument("--empty-files", type=int, default=0, help="also create this many empty files (0: row off)")
    p.add_argument("--runs", type=int, default=3, help="runs per contender; each cell is the median")
    p.add_argument("--quick", action="store_true", help="one run (--runs 1)")
    p.add_argument("--rclone-provider", default="Ceph", help="rclone S3 provider (Ceph, Other, …)")
    p.add_argument("--ca-bundle", default=None, help="CA bundle for an https endpoint (all contenders)")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON to this path")
    p.add_argument("--workdir", type=Path, default=None,
                   help="parent of the scratch directory (default /var/tmp: a disk, not tmpfs)")
    p.add_argument("--row-timeout", type=float, default=900.0, help="deadline of one workload, seconds")
    args = p.parse_args(argv)
    if args.quick:
        args.runs = 1
    for name in ("size_mib", "small_files", "ls_entries", "runs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    """The run's settings from the command line and the environment; makes the scratch directory."""
    env = os.environ
    parent = args.workdir or Path("/var/tmp")
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="fsgw-bench-", dir=parent)).resolve()
    return Settings(
        endpoint=env["S3_ENDPOINT_URL"],
        access_key=env["AWS_ACCESS_KEY_ID"],
        secret_key=env["AWS_SECRET_ACCESS_KEY"],
        region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or "us-east-1",
        ca_bundle=args.ca_bundle,
        size=args.size_mib * MIB,
        small_files=args.small_files,
        empty_files=args.empty_files,
        ls_entries=args.ls_entries,
        fsgateway_cmd=shlex.split(args.fsgateway_cmd) if args.fsgateway_cmd else default_fsgateway_cmd(),
        fsgateway_opts=args.fsgateway_opts,
        rclone_provider=args.rclone_provider,
        workdir=workdir,
        row_timeout=args.row_timeout,
        run_id=uuid.uuid4().hex[:8],
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 0 if every cell has a value, 1 otherwise, 2 on bad setup."""
    args = parse_args(argv)
    env = os.environ
    missing = [v for v in ("S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not env.get(v)]
    if missing:
        print(f"bench_mount: set {', '.join(missing)}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        log("not root: FUSE mounts may fail and the page cache cannot be dropped")
    contenders = [c for c in CONTENDERS if not args.only or c in args.only]
    st = settings_from(args)
    rows = make_rows(args.size_mib, args.small_files, args.ls_entries, args.empty_files)
    runs: dict[str, list[dict[str, Cell]]] = {c: [] for c in contenders}
    results: dict[str, dict[str, Cell]] = {}
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    bench = Bench(st)
    started = time.time()
    interrupted = False
    try:
        bench.prepare()
        for n in range(args.runs):
            for contender in contenders:
                log(f"run {n + 1} of {args.runs}")
                runs[contender].append({})
                bench.run_contender(contender, runs[contender][-1])
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up")
    finally:
        bench.cleanup()
    results = {c: median_cells(rows, cells) for c, cells in runs.items() if cells}
    table = markdown(rows, contenders, results)
    print(table)
    if args.json:
        doc = {
            "meta": {
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                "duration_s": time.time() - started,
                "interrupted": interrupted,
                "endpoint": st.endpoint,
                "host": platform.node(),
                "cpus": os.cpu_count(),
                "size_mib": args.size_mib,
                "small_files": args.small_files,
                "ls_entries": args.ls_entries,
                "block_bytes": BLOCK,
                "fsgateway_cmd": st.fsgateway_cmd,
                "versions": {
                    "boto3": boto3.__version__,
                    "s3fs": tool_version(["s3fs", "--version"]) if "s3fs" in contenders else None,
                    "rclone": tool_version(["rclone", "version"]) if "rclone" in contenders else None,
                    "python": platform.python_version(),
                },
            },
            "rows": [asdict(r) for r in rows],
            "results": {c: {k: asdict(v) for k, v in cells.items()} for c, cells in results.items()},
            "runs": {c: [{k: asdict(v) for k, v in cells.items()} for cells in per] for c, per in runs.items()},
            "ratios": {r.key: ratios(r, results) for r in rows},
            "markdown": table,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        log(f"results written to {args.json}")
    if interrupted:
        return 130
    complete = all(not cell.error for cells in results.values() for cell in cells.values())
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
