#!/usr/bin/env python3
"""Benchmark the firmware checker: landing-to-verdict latency and hashing throughput.

Runs against one S3 server (``S3_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``) with a real fsgateway mount and a real
``fsgateway-checker`` process watching it, in a fresh bucket that is deleted
afterwards. Measures (see bench/README.md, "bench_checker.py"):

1. landing-to-verdict latency of N small and M large packages copied onto the mount
   (payload first, then manifest.json): from the return of the manifest's ``close()``
   to the verdict row (``decided_at`` in the version database), and to the verdict
   being carried out (release object written, TUF metadata published: ``done = 1``);
   p50/p99/min/max over the runs;
2. SHA-256 throughput of the large payload: the checker's own ``checker.judge.sha256_of``
   against the bucket, ``sha256sum`` of the same file on local disk (page cache warm) and
   through a fresh mount (page cache dropped), and plain ``hashlib`` on bytes in memory;
3. peak RSS (VmHWM) of the checker process;
4. with ``--flood N`` (default 10,000): N one-byte folders of another model put straight
   into incoming/ (the cheap flood an uploader can make), then one small legitimate
   package landed through the mount while the checker works through them: its
   landing-to-verdict latency, how many flood folders were still queued then, and how
   long until every flood folder had been looked at (none lost).

Prints a Markdown table on stdout (progress on stderr); ``--json PATH`` writes the raw
figures. Must run as root (FUSE mount, drop_caches).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from checker import manifest, signing  # noqa: E402  (after the repo is on the path)

MIB = 1 << 20
MODEL = "bench-model"
POLL = 0.01  # seconds between polls of the version database
MOUNT_DEADLINE = 60.0
READY_DEADLINE = 60.0


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def poll_until(cond: Any, deadline_s: float, what: str, interval: float = POLL) -> Any:
    """Call ``cond`` until it returns something truthy; TimeoutError after the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not reached within {deadline_s:.0f} s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def vm_hwm_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 20 runs is the largest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# --------------------------------------------------------------------------- the harness


@dataclass
class Stats:
    runs: int
    p50: float
    p99: float
    min: float
    max: float
    values: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        return cls(len(values), percentile(values, 50), percentile(values, 99), min(values), max(values), values)


class Harness:
    """Bucket, credentials, mount and checker process of one run; `close()` removes them all."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.endpoint = os.environ["S3_ENDPOINT_URL"]
        self.access = os.environ["AWS_ACCESS_KEY_ID"]
        self.secret = os.environ["AWS_SECRET_ACCESS_KEY"]
        self.ca_bundle = args.ca_bundle or os.environ.get("S3_CA_BUNDLE") or None
        self.work = Path(tempfile.mkdtemp(prefix="fsgw-bench-checker-", dir=args.workdir))
        self.bucket = f"fsgw-bench-checker-{uuid.uuid4().hex[:8]}"
        self.s3 = boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access, aws_secret_access_key=self.secret,
            region_name="us-east-1", verify=self.ca_bundle if self.ca_bundle else None,
            config=Config(s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                          response_checksum_validation="when_required", retries={"max_attempts": 5}))
        self.passwd = self.work / "passwd"
        self.passwd.write_text(f"{self.access}:{self.secret}\n")
        self.passwd.chmod(0o600)
        self.state = self.work / "state"
        self.mounts: list[tuple[subprocess.Popen, Path]] = []
        self.checker: subprocess.Popen | None = None
        self.metrics_port = free_port()
        self.builder: signing.CryptoSigner | None = None
        self.bucket_made = False

    # ------------------------------------------------------------------ processes
    def env(self) -> dict[str, str]:
        env = {**os.environ, "FSGATEWAY_CHECKER_BUCKET": self.bucket, "FSGATEWAY_CHECKER_ENDPOINT": self.endpoint,
               "FSGATEWAY_CHECKER_PATH_STYLE": "true", "FSGATEWAY_CHECKER_PASSWD_FILE": str(self.passwd),
               "FSGATEWAY_CHECKER_STATE_DIR": str(self.state)}
        if self.ca_bundle:
            env["FSGATEWAY_CHECKER_CA_BUNDLE"] = self.ca_bundle
        return env

    def fw(self, *argv: str) -> None:
        r = subprocess.run([sys.executable, "-m", "checker.fw", *argv], env=self.env(), cwd=REPO,
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"fsgateway-fw {' '.join(argv)}: {r.stderr.strip()}")

    def setup(self) -> None:
        self.s3.create_bucket(Bucket=self.bucket)
        self.bucket_made = True
        self.fw("repo", "init", "--root-key", str(self.work / "root.key"), "--root-out", str(self.work / "root.json"),
                "--no-public-read")
        self.fw("model", "add", MODEL, "--hw", "A", "--max-payload", f"{max(self.args.large_mib, 1) * 2}M")
        signing.generate(str(self.work / "builder.key"), str(self.work / "builder.pub"))
        self.fw("key", "add", str(self.work / "builder.pub"), "--models", MODEL)
        self.builder = signing.load_signer(str(self.work / "builder.key"))

    def mount(self, name: str) -> Path:
        path = self.work / name
        path.mkdir()
        opts = [f"url={self.endpoint}", "use_path_request_style", f"passwd_file={self.passwd}",
                f"cache_dir={self.work / (name + '-cache')}", "metrics_address=off"]
        if self.ca_bundle:
            opts.append(f"ca_bundle={self.ca_bundle}")
        logf = open(self.work / f"log-{name}.txt", "ab")  # noqa: SIM115  (lives as long as the daemon)
        proc = subprocess.Popen([sys.executable, "-m", "fsgateway", self.bucket, str(path), "-f", "-o", ",".join(opts)],
                                stdout=logf, stderr=subprocess.STDOUT, cwd=REPO)
        self.mounts.append((proc, path))
        poll_until(lambda: is_mounted(path) or proc.poll() is not None, MOUNT_DEADLINE, f"mount {name}", 0.05)
        if not is_mounted(path):
            raise RuntimeError(f"fsgateway exited with {proc.returncode}: {self.tail(f'log-{name}.txt')}")
        return path

    def unmount(self, path: Path) -> None:
        for proc, p in list(self.mounts):
            if p != path:
                continue
            subprocess.run(["fusermount3", "-u", str(p)], check=False, capture_output=True)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                subprocess.run(["fusermount3", "-uz", str(p)], check=False, capture_output=True)
            self.mounts.remove((proc, p))

    def tail(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.work / name).read_text(errors="replace")[-2000:]
        return ""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()

    def start_checker(self, mount_dir: Path) -> None:
        sets = {"mount_dir": str(mount_dir), "metrics_address": f"127.0.0.1:{self.metrics_port}",
                "reconcile_interval": str(self.args.reconcile_interval), "pending_deadline": "3600",
                "log_level": "info"}
        cmd = [sys.executable, "-m", "checker", "run"] + [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
        logf = open(self.work / "log-checker.txt", "ab")  # noqa: SIM115  (lives as long as the daemon)
        self.checker = subprocess.Popen(cmd, env=self.env(), stdout=logf, stderr=subprocess.STDOUT, cwd=REPO)

        def ready() -> bool:
            if self.checker.poll() is not None:
                raise RuntimeError(f"checker exited with {self.checker.returncode}: {self.tail('log-checker.txt')}")
            try:
                text = self.metrics()
            except OSError:
                return False
            return any(line.startswith("fsgateway_checker_last_reconcile_timestamp_seconds ")
                       and float(line.split()[1]) > 0 for line in text.splitlines())

        poll_until(ready, READY_DEADLINE, "the checker to serve", 0.1)

    def close(self) -> None:
        if self.checker is not None and self.checker.poll() is None:
            self.checker.send_signal(signal.SIGTERM)
            try:
                self.checker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.checker.kill()
                self.checker.wait(timeout=10)
        for _, path in list(self.mounts):
            self.unmount(path)
        if self.bucket_made:
            try:
                for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                    keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                    if keys:
                        self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                self.s3.delete_bucket(Bucket=self.bucket)
            except Exception as exc:
                log(f"could not delete bucket {self.bucket}: {exc}")
        if not any(is_mounted(p) for _, p in self.mounts):
            shutil.rmtree(self.work, ignore_errors=True)

    # ------------------------------------------------------------------ database
    def verdict(self, package: str) -> tuple[str, str, float, int] | None:
        conn = sqlite3.connect(f"file:{self.state / 'versions.db'}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT outcome, reason, decided_at, done FROM verdicts WHERE package = ?",
                               (package,)).fetchone()
        finally:
            conn.close()
        return row

    # ------------------------------------------------------------------ one landing
    def land(self, mnt: Path, src: Path, version: str, counter: int, channel: str) -> dict[str, float]:
        """Sign src/fw.bin, copy payload then manifest onto the mount; seconds to verdict and to done."""
        digest = hashlib.sha256()
        size = 0
        with open(src / "fw.bin", "rb") as f:
            while chunk := f.read(16 * MIB):
                digest.update(chunk)
                size += len(chunk)
        signed = manifest.signed_document(MODEL, ["A"], version, counter, channel, "fw.bin", size, digest.hexdigest())
        doc = {"signed": signed, "signatures": [signing.sign(manifest.canonical(signed), self.builder)]}
        man = json.dumps(doc).encode()
        dst = mnt / "incoming" / MODEL / version
        dst.mkdir(parents=True)
        t_payload = time.monotonic()
        with open(src / "fw.bin", "rb") as fin, open(dst / "fw.bin", "wb") as fout:
            shutil.copyfileobj(fin, fout, MIB)
        payload_s = time.monotonic() - t_payload
        with open(dst / "manifest.json", "wb") as f:
            f.write(man)
        landed_wall = time.time()  # close() of the last file has returned
        landed = time.monotonic()
        package = f"incoming/{MODEL}/{version}/"
        row = poll_until(lambda: self.verdict(package), self.args.verdict_deadline, f"a verdict on {package}")
        if row[:2] != ("accepted", "ok"):
            raise RuntimeError(f"{package}: {row[0]} {row[1]} (see {self.work / 'log-checker.txt'})")
        poll_until(lambda: self.verdict(package)[3] == 1, self.args.verdict_deadline, f"{package} carried out")
        done = time.monotonic() - landed
        return {"verdict_s": max(0.0, row[2] - landed_wall), "done_s": done, "payload_copy_s": payload_s}


# --------------------------------------------------------------------------- hashing


def time_sha256sum(path: Path) -> tuple[float, str]:
    t0 = time.monotonic()
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True).stdout
    return time.monotonic() - t0, out.split()[0]


def time_checker_hash(h: Harness, key: str, size: int) -> tuple[float, str]:
    import trio

    from checker.judge import sha256_of
    from fsgateway.store.client import ObjectStore, StoreSettings
    from fsgateway.store.credentials import Keys

    settings = StoreSettings(bucket=h.bucket, endpoint=h.endpoint, region="us-east-1", path_style=True,
                             keys=Keys(h.access, h.secret), profile=None, verify=h.ca_bundle or True,
                             max_connections=16, connect_timeout=10, read_timeout=60, retry_deadline=60)

    async def run() -> tuple[float, str]:
        store = ObjectStore(settings)
        t0 = time.monotonic()
        digest, _ = await sha256_of(store, key, size)  # raises unless the object is exactly `size` bytes
        return time.monotonic() - t0, digest

    return trio.run(run)


def time_hashlib(path: Path) -> tuple[float, str]:
    data = path.read_bytes()
    t0 = time.monotonic()
    digest = hashlib.sha256(data).hexdigest()
    return time.monotonic() - t0, digest


# --------------------------------------------------------------------------- main


def make_payload(path: Path, mib: int) -> None:
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MIB))


def latency_table(results: dict[str, Any]) -> list[str]:
    lines = ["| landing → verdict | runs | p50 s | p99 s | min s | max s |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, key in (("verdict recorded", "verdict_s"), ("verdict carried out (release + TUF)", "done_s"),
                       ("copy of the payload onto the mount", "payload_copy_s")):
        for size_label, stats in results["latency"].items():
            s = stats[key]
            lines.append(f"| {size_label}: {label} | {s['runs']} | {s['p50']:.3f} | {s['p99']:.3f} | "
                         f"{s['min']:.3f} | {s['max']:.3f} |")
    return lines


def hashing_table(results: dict[str, Any]) -> list[str]:
    lines = [f"| SHA-256 of {results['hash_mib']} MiB | seconds | MiB/s |", "| --- | ---: | ---: |"]
    for label, cell in results["hashing"].items():
        lines.append(f"| {label} | {cell['seconds']:.2f} | {cell['mib_s']:.0f} |")
    lines.append("")
    lines.append(f"Peak RSS (VmHWM) of the checker process: {results['checker_rss_mib']:.0f} MiB; "
                 f"of the mount daemon: {results['mount_rss_mib']:.0f} MiB.")
    return lines


def metric_value(text: str, name: str) -> float:
    return sum(float(line.split()[1]) for line in text.splitlines() if line.split(" ")[0] == name)


def flood_phase(h: Harness, mnt: Path, n: int) -> dict[str, float]:
    """N one-byte folders of another model, then one legitimate package: its latency under the flood."""
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: h.s3.put_object(Bucket=h.bucket, Key=f"incoming/flood-model/{i}/x", Body=b"x"),
                      range(n)))
    put_s = time.monotonic() - t0
    log(f"flood: {n} folders put in {put_s:.1f} s; waiting for the checker's listing to queue them")
    poll_until(lambda: metric_value(h.metrics(), "fsgateway_checker_queued_packages") >= n // 2,
               h.args.reconcile_interval + 120, "the flood to be queued", 0.2)
    src = h.work / "src-flood"
    src.mkdir()
    make_payload(src / "fw.bin", 1)
    cell = h.land(mnt, src, "9999.0.0", 1, "flood")
    queued_then = metric_value(h.metrics(), "fsgateway_checker_queued_packages")
    log(f"flood: legitimate package verdict {cell['verdict_s']:.3f} s with {queued_then:.0f} folders still queued")
    poll_until(lambda: metric_value(h.metrics(), "fsgateway_checker_pending_packages") >= n,
               h.args.verdict_deadline, "every flood folder to be looked at", 0.5)
    return {"folders": n, "put_s": put_s, "legit_verdict_s": cell["verdict_s"], "legit_done_s": cell["done_s"],
            "queued_at_verdict": queued_then, "all_looked_at_s": time.monotonic() - t0}


def flood_table(f: dict[str, float]) -> list[str]:
    return ["| flood of one-byte folders in another model | value |", "| --- | ---: |",
            f"| folders | {f['folders']:.0f} |",
            f"| legitimate 1 MiB package: landing → verdict, s | {f['legit_verdict_s']:.3f} |",
            f"| legitimate 1 MiB package: landing → carried out, s | {f['legit_done_s']:.3f} |",
            f"| flood folders still queued at its verdict | {f['queued_at_verdict']:.0f} |",
            f"| from the first PUT until every folder was looked at, s | {f['all_looked_at_s']:.1f} |"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small-runs", type=int, default=20, help="packages of --small-mib (default 20)")
    p.add_argument("--small-mib", type=int, default=1, help="size of the small payload (default 1)")
    p.add_argument("--large-runs", type=int, default=5, help="packages of --large-mib (default 5)")
    p.add_argument("--large-mib", type=int, default=256, help="size of the large payload (default 256)")
    p.add_argument("--reconcile-interval", type=float, default=30.0,
                   help="the checker's full-listing interval; the default 30 s means inotify events do the work")
    p.add_argument("--verdict-deadline", type=float, default=600.0, help="seconds to wait for one verdict")
    p.add_argument("--workdir", default="/var/tmp", help="parent of the scratch directory (default /var/tmp)")
    p.add_argument("--ca-bundle", help="CA bundle for an https:// endpoint (default $S3_CA_BUNDLE)")
    p.add_argument("--flood", type=int, default=10_000, help="one-byte folders of the flood phase (0: skip)")
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    return p.parse_args(argv)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not all(os.environ.get(v) for v in ("S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")):
        print("set S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", file=sys.stderr)
        return 2
    started = time.time()
    h = Harness(args)
    results: dict[str, Any] = {"meta": {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                                        "endpoint": h.endpoint, "python": platform.python_version(),
                                        "cpus": os.cpu_count(), "args": vars(args)}}
    interrupted = False
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        log(f"bucket {h.bucket}, scratch {h.work}")
        h.setup()
        mnt = h.mount("mnt")
        h.start_checker(mnt)
        results["latency"] = {}
        counter = 0
        large_src = None
        for label, mib, runs, channel in ((f"{args.small_mib} MiB", args.small_mib, args.small_runs, "small"),
                                          (f"{args.large_mib} MiB", args.large_mib, args.large_runs, "large")):
            if runs <= 0:
                continue
            src = h.work / f"src-{channel}"
            src.mkdir()
            cells: dict[str, list[float]] = {"verdict_s": [], "done_s": [], "payload_copy_s": []}
            for i in range(runs):
                make_payload(src / "fw.bin", mib)  # new bytes each run: nothing is a duplicate
                counter += 1
                cell = h.land(mnt, src, f"{counter}.0.0", counter, "stable")
                for k, v in cell.items():
                    cells[k].append(v)
                log(f"{label} #{i + 1}: verdict {cell['verdict_s']:.3f} s, carried out {cell['done_s']:.3f} s")
            results["latency"][label] = {k: asdict(Stats.of(v)) for k, v in cells.items()}
            large_src = src if channel == "large" else large_src
        if args.flood > 0:
            results["flood"] = flood_phase(h, mnt, args.flood)
        results["checker_rss_mib"] = vm_hwm_mib(h.checker.pid) or 0.0
        results["mount_rss_mib"] = vm_hwm_mib(h.mounts[0][0].pid) or 0.0

        # Hashing: the last large payload, as released (content-addressed key) and as a local file.
        hash_src = (large_src or h.work / "src-small") / "fw.bin"
        size = hash_src.stat().st_size
        expected = hashlib.sha256(hash_src.read_bytes()).hexdigest()
        release_key = f"releases/{MODEL}/{counter}.0.0/{expected}.fw.bin"
        results["hash_mib"] = size // MIB
        hashing: dict[str, dict[str, float]] = {}

        def record(label: str, seconds: float, digest: str) -> None:
            if digest != expected:
                raise RuntimeError(f"{label}: digest {digest} != {expected}")
            hashing[label] = {"seconds": seconds, "mib_s": size / MIB / seconds}
            log(f"{label}: {seconds:.2f} s")

        record("hashlib, bytes in memory (CPU bound)", *time_hashlib(hash_src))
        time_sha256sum(hash_src)  # warm the page cache
        record("sha256sum, local disk (page cache warm)", *time_sha256sum(hash_src))
        record("checker.judge.sha256_of, from the bucket (16 MiB ranged GETs)",
               *time_checker_hash(h, release_key, size))
        h.unmount(mnt)
        fresh = h.mount("mnt-read")
        dropped = drop_caches()
        record(f"sha256sum through a fresh mount{'' if dropped else ' (caches NOT dropped: not root)'}",
               *time_sha256sum(fresh / release_key))
        results["hashing"] = hashing
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up")
    except Exception as exc:
        log(f"failed: {type(exc).__name__}: {exc}")
        log(h.tail("log-checker.txt")[-1500:])
        h.close()
        return 1
    finally:
        results["meta"]["duration_s"] = time.time() - started
        results["meta"]["interrupted"] = interrupted
    h.close()
    lines = []
    if results.get("latency"):
        lines += latency_table(results)
    if results.get("hashing"):
        lines += ["", *hashing_table(results)]
    if results.get("flood"):
        lines += ["", *flood_table(results["flood"])]
    markdown = "\n".join(lines)
    print(markdown)
    if args.json:
        results["markdown"] = markdown
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
