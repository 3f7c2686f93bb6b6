#!/usr/bin/env python3
"""fsgateway-syncd against `rclone sync`: N objects, then K changed, on one S3 server.

Both tools talk to the server through a counting HTTP proxy on loopback, so
their S3 requests are counted the same way, by kind. Rows: initial seeding,
an incremental sync after K objects changed (by another tool: syncd's
reconcile; and through a mount: syncd's feed path), a sync with no change,
and the latency from close() on a mount to the object in the backup.
Run: see bench/README.md ("bench_sync.py").
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
from bench_mount import create_bucket, delete_bucket, is_mounted, log, poll_until, seed_objects, vm_hwm_kib
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent
SMALL = 1024  # bytes per seeded object


# --------------------------------------------------------------------------- counting proxy

def request_kind(method: str, path: str, headers: Any) -> str:
    """LIST, GET, HEAD, PUT, COPY, DELETE, MULTIPART or POST: the S3 operation a path-style request is."""
    url = urlsplit(path)
    params = parse_qs(url.query, keep_blank_values=True)
    if method == "GET" and ("list-type" in params or url.path.strip("/").count("/") == 0):
        return "LIST"
    if "uploads" in params or "uploadId" in params:
        return "MULTIPART"
    if method == "PUT" and headers.get("x-amz-copy-source"):
        return "COPY"
    return method


class CountingProxy:
    """Forwards every request to the S3 server unchanged (Host included, so SigV4 holds) and counts it."""

    def __init__(self, upstream: str) -> None:
        up = urlsplit(upstream)
        if up.scheme != "http":
            raise SystemExit("bench_sync: the counting proxy needs an http:// endpoint")
        self.counts: Counter[str] = Counter()
        lock, local = threading.Lock(), threading.local()
        counts = self.counts

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if getattr(local, "conn", None) is None:
                    local.conn = http.client.HTTPConnection(up.hostname, up.port, timeout=300)
                local.conn.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                resp = local.conn.getresponse()
                data = resp.read()
                with lock:
                    counts[request_kind(self.command, self.path, self.headers)] += 1
                self.send_response_only(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                length_out = resp.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length_out or "0")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def counting(self, into: dict[str, int]) -> Iterator[None]:
        """The requests made while the block runs, by kind, stored in `into` (plus "total")."""
        before = Counter(self.counts)
        yield
        delta = self.counts - before
        into.update(sorted(delta.items()))
        into["total"] = sum(delta.values())


# --------------------------------------------------------------------------- runs

@dataclass
class Result:
    seconds: float | None = None
    requests: dict[str, int] = field(default_factory=dict)
    rss_mib: float | None = None
    note: str = ""


def run_measured(argv: list[str], env: dict[str, str], log_path: Path) -> tuple[float, float]:
    """Run to completion; (wall seconds, peak RSS MiB from wait4). Fails on a non-zero exit."""
    t0 = time.monotonic()
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} … exited with {proc.returncode}: see {log_path}")
    return time.monotonic() - t0, usage.ru_maxrss / 1024


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.endpoint = os.environ["S3_ENDPOINT_URL"]
        self.key, self.secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
        self.proxy = CountingProxy(self.endpoint)
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.key,
                               aws_secret_access_key=self.secret, region_name="us-east-1",
                               config=Config(s3={"addressing_style": "path"}, max_pool_connections=32,
                                             request_checksum_calculation="when_required",
                                             response_checksum_validation="when_required"))
        run = uuid.uuid4().hex[:8]
        self.primary, self.b_syncd, self.b_rclone, self.b_rclone_sum = (
            f"fsgw-sync-{run}-{t}" for t in ("p", "syncd", "rclone", "rclone-sum"))
        self.passwd = work / "passwd"
        self.passwd.write_text(f"{self.key}:{self.secret}\n")
        self.passwd.chmod(0o600)
        self.results: dict[str, dict[str, Result]] = {}

    # ------------------------------------------------------------ tools
    def syncd_argv(self, command: str, **extra: object) -> list[str]:
        opts: dict[str, object] = {
            "bucket": self.primary, "backup_bucket": self.b_syncd, "endpoint": self.proxy.endpoint,
            "path_style": "true", "passwd_file": self.passwd, "state_dir": self.work / "syncd-state",
            "concurrency": self.args.concurrency, "metrics_address": "off", **extra}
        return [sys.executable, "-m", "syncd", command, *(a for k, v in opts.items() for a in ("--set", f"{k}={v}"))]

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(REPO)}

    def rclone(self, backup: str, *flags: str) -> tuple[list[str], dict[str, str]]:
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # rclone 1.60 refuses to start with it
        env.update(RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER=self.args.rclone_provider,
                   RCLONE_CONFIG_BENCH_ENV_AUTH="false", RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=self.key,
                   RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=self.secret, RCLONE_CONFIG_BENCH_ENDPOINT=self.proxy.endpoint,
                   RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true")
        argv = ["rclone", "sync", f"bench:{self.primary}", f"bench:{backup}", "--config",
                str(self.work / "rclone.conf"), "--transfers", str(self.args.concurrency),
                "--checkers", str(self.args.concurrency), *flags]
        return argv, env

    def measure(self, row: str, tool: str, argv: list[str], env: dict[str, str]) -> None:
        r = Result()
        with self.proxy.counting(r.requests):
            r.seconds, r.rss_mib = run_measured(argv, env, self.work / f"{tool}.log")
        self.results.setdefault(row, {})[tool] = r
        log(f"{row} / {tool}: {r.seconds:.2f} s, {r.requests.get('total')} requests")

    def all_tools(self, row: str) -> None:
        self.measure(row, "syncd once", self.syncd_argv("once"), self.env())
        self.measure(row, "rclone sync", *self.rclone(self.b_rclone))
        self.measure(row, "rclone sync --checksum", *self.rclone(self.b_rclone_sum, "--checksum"))

    def change(self, keys: list[str], size: int) -> None:
        seed_objects(self.s3, self.primary, keys, os.urandom(size))

    # ------------------------------------------------------------ the mount and the daemon
    @contextmanager
    def mount_and_daemon(self) -> Iterator[tuple[Path, subprocess.Popen]]:
        mnt = self.work / "mnt"
        mnt.mkdir(exist_ok=True)
        opts = (f"url={self.endpoint},use_path_request_style,passwd_file={self.passwd},"
                f"cache_dir={self.work / 'cache'},metrics_address=off")
        with open(self.work / "mount.log", "ab") as mount_log, open(self.work / "syncd-run.log", "ab") as run_log:
            mount = subprocess.Popen([sys.executable, "-m", "fsgateway", self.primary, str(mnt), "-f", "-o", opts],
                                     env=self.env(), stdout=mount_log, stderr=subprocess.STDOUT)
            daemon = subprocess.Popen(self.syncd_argv("run", reconcile_interval=86400), env=self.env(),
                                      stdout=run_log, stderr=subprocess.STDOUT)
        try:
            poll_until(lambda: is_mounted(mnt), 60, 0.1, "the mount")
            poll_until(lambda: "replicating" in (self.work / "syncd-run.log").read_text(), 60, 0.1, "syncd run")
            yield mnt, daemon
        finally:
            subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
            mount.wait(timeout=60)
            daemon.terminate()
            daemon.wait(timeout=60)

    def backup_size(self, key: str) -> int | None:
        try:
            return self.s3.head_object(Bucket=self.b_syncd, Key=key)["ContentLength"]
        except self.s3.exceptions.ClientError:
            return None

    def feed_path(self, keys: list[str]) -> None:
        with self.mount_and_daemon() as (mnt, daemon):
            idle: dict[str, int] = {}
            t0 = time.monotonic()
            with self.proxy.counting(idle):
                time.sleep(self.args.idle_seconds)  # measuring the idle cost itself: nothing to wait for
            idle_rate = idle["total"] / (time.monotonic() - t0)
            r = Result()
            with self.proxy.counting(r.requests):
                t0 = time.monotonic()
                for key in keys:
                    (mnt / key).write_bytes(os.urandom(3 * SMALL))
                poll_until(lambda: all(self.backup_size(k) == 3 * SMALL for k in keys), 300, 0.1, "feed path")
                r.seconds = time.monotonic() - t0
            r.note = f"idle feed polling: {idle_rate:.1f} requests/s, included"
            self.results.setdefault(f"incremental, {len(keys)} changed through a mount", {})["syncd run (feed)"] = r
            log(f"feed path: {r.seconds:.2f} s, {r.requests['total']} requests (idle {idle_rate:.1f}/s)")
            latencies = []
            (mnt / "latency").mkdir(exist_ok=True)
            for i in range(self.args.latency_runs):
                key = f"latency/{i:04d}"
                time.sleep(random.uniform(0, 1))  # closes at random moments of the feed's poll cycle
                with open(mnt / key, "wb") as f:
                    f.write(os.urandom(SMALL))
                closed = time.monotonic()
                poll_until(lambda key=key: self.backup_size(key) is not None, 60, 0.005, key)
                latencies.append(time.monotonic() - closed)
            latencies.sort()
            rss = vm_hwm_kib(daemon.pid)
            p99 = latencies[int(0.99 * (len(latencies) - 1))]
            self.results["close() on the mount → object in the backup"] = {"syncd run (feed)": Result(
                note=f"p50 {statistics.median(latencies):.2f} s, p99 {p99:.2f} s, max {latencies[-1]:.2f} s "
                f"over {len(latencies)} closes", rss_mib=rss / 1024 if rss else None)}
            log(self.results["close() on the mount → object in the backup"]["syncd run (feed)"].note)

    # ------------------------------------------------------------ the whole run
    def run(self) -> None:
        n, k = self.args.objects, self.args.changed
        keys = [f"data/{i // 100:03d}/obj{i:06d}" for i in range(n)]
        for b in (self.primary, self.b_syncd, self.b_rclone, self.b_rclone_sum):
            create_bucket(self.s3, b)
        log(f"seeding {n} objects of {SMALL} bytes into {self.primary}")
        seed_objects(self.s3, self.primary, keys, os.urandom(SMALL), threads=16)
        self.all_tools(f"initial seeding, {n} objects")
        self.all_tools("no change")
        self.change(keys[:k], 2 * SMALL)
        self.all_tools(f"incremental, {k} changed by another tool")
        self.feed_path(keys[k:2 * k])

    def cleanup(self) -> None:
        for b in (self.primary, self.b_syncd, self.b_rclone, self.b_rclone_sum):
            delete_bucket(self.s3, b)

    def table(self) -> str:
        lines = ["| row | tool | wall time | S3 requests (by kind) | peak RSS | note |",
                 "| --- | --- | --- | --- | --- | --- |"]
        for row, tools in self.results.items():
            for tool, r in tools.items():
                kinds = ", ".join(f"{kind} {c}" for kind, c in r.requests.items() if kind != "total")
                req = f"**{r.requests['total']}** ({kinds})" if r.requests else ""
                lines.append(f"| {row} | {tool} | {f'{r.seconds:.2f} s' if r.seconds is not None else ''} | {req} | "
                             f"{f'{r.rss_mib:.0f} MiB' if r.rss_mib else ''} | {r.note} |")
        return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=10_000, help="N, objects seeded (default 10000)")
    p.add_argument("--changed", type=int, default=100, help="K, objects changed (default 100)")
    p.add_argument("--concurrency", type=int, default=8, help="syncd concurrency = rclone --transfers/--checkers")
    p.add_argument("--latency-runs", type=int, default=50, help="closes timed to the backup (default 50)")
    p.add_argument("--idle-seconds", type=float, default=10, help="window to measure syncd's idle polling")
    p.add_argument("--rclone-provider", default="Ceph", help="rclone's S3 provider (Ceph, Other, ...)")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    args = p.parse_args()
    if not all(os.environ.get(v) for v in ("S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")):
        print("bench_sync: set S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="fsgw-bench-sync-", dir="/var/tmp"))
    bench = Bench(args, work)
    try:
        bench.run()
    finally:
        bench.cleanup()
        if not is_mounted(work / "mnt"):
            shutil.rmtree(work, ignore_errors=True)
    print(bench.table())
    if args.json:
        args.json.write_text(json.dumps({row: {t: asdict(r) for t, r in tools.items()}
                                         for row, tools in bench.results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
