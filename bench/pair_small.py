#!/usr/bin/env python3
"""Paired small-file runs: two fsgateway trees mounted side by side, one file at a time on each.

Single runs on a shared machine differ by more than a change to the close path is worth;
paired runs see the same load. Each tree gets a fresh bucket with an existing directory
made by boto3 and a fresh mount at the defaults; then, N times, one `open/write 4 KiB/close`
on each mount in turn, the order alternating. Printed per tree: close() median and mean,
the mean and median per file (open to close), the daemon's CPU per file and its S3
requests per file by kind, and the load average. See bench/PROFILE.md.

    export S3_ENDPOINT_URL=... AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
    python bench/pair_small.py OLD_TREE NEW_TREE [--files 500]

A tree is a directory holding the `fsgateway` package (a checkout, or `git archive REV fsgateway`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import bench_mount as bm
import boto3
from profile_mount import cpu_seconds, requests_by_kind

SIZE = 4096


@dataclass
class Side:
    name: str
    bucket: str
    mount: bm.Mount
    close: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)


def start(name: str, tree: str, s3, work: Path, passwd: Path, endpoint: str) -> Side:
    bucket = f"fsgw-pair-{os.getpid()}-{name}"
    bm.create_bucket(s3, bucket)
    s3.put_object(Bucket=bucket, Key="d/", Body=b"")
    port = bm.free_port()
    opts = (f"url={endpoint},use_path_request_style,passwd_file={passwd},cache_dir={work}/cache-{name},"
            f"metrics_address=127.0.0.1:{port}")
    argv = ["env", f"PYTHONPATH={tree}", sys.executable, "-m", "fsgateway", bucket, str(work / f"mnt-{name}"),
            "-f", "-o", opts]  # `env` execs python: the pid is the daemon's
    mount = bm.Mount(name, argv, dict(os.environ), work / f"mnt-{name}", work / f"log-{name}.txt")
    mount.metrics_port = port
    mount.start()
    os.stat(mount.mountpoint / "d")  # the directory is known before the first file
    return Side(name, bucket, mount)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--files", type=int, default=500)
    args = ap.parse_args()
    endpoint = os.environ["S3_ENDPOINT_URL"]
    s3 = boto3.client("s3", endpoint_url=endpoint)
    work = Path(tempfile.mkdtemp(prefix="fsgw-pair-", dir="/var/tmp"))
    passwd = work / "passwd"
    passwd.write_text(f"{os.environ['AWS_ACCESS_KEY_ID']}:{os.environ['AWS_SECRET_ACCESS_KEY']}\n")
    passwd.chmod(0o600)
    sides: list[Side] = []
    try:
        for name, tree in (("old", args.old), ("new", args.new)):
            sides.append(start(name, tree, s3, work, passwd, endpoint))
        before = {s.name: (requests_by_kind(s.mount), cpu_seconds(s.mount.proc.pid)) for s in sides}
        load = os.getloadavg()
        data = os.urandom(SIZE)
        for i in range(args.files):
            for side in sides if i % 2 == 0 else reversed(sides):
                t0 = time.perf_counter()
                fd = os.open(side.mount.mountpoint / "d" / f"f{i:05d}", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
                if os.write(fd, data) != SIZE:
                    raise RuntimeError("short write")
                t1 = time.perf_counter()
                os.close(fd)
                t2 = time.perf_counter()
                side.close.append(t2 - t1)
                side.total.append(t2 - t0)
        n = args.files
        for side in sides:
            req0, cpu0 = before[side.name]
            req = requests_by_kind(side.mount)
            cpu = cpu_seconds(side.mount.proc.pid) - cpu0
            per = ", ".join(f"{k} {(v - req0.get(k, 0)) / n:.3f}" for k, v in sorted(req.items()) if v > req0.get(k, 0))
            print(f"{side.name}: close() median {statistics.median(side.close) * 1e3:.2f} ms, mean "
                  f"{statistics.mean(side.close) * 1e3:.2f} ms; per file mean {statistics.mean(side.total) * 1e3:.2f} "
                  f"ms, median {statistics.median(side.total) * 1e3:.2f} ms; daemon CPU per file {cpu / n * 1e3:.2f} "
                  f"ms; requests per file: {per}")
        after = os.getloadavg()
        print(f"load average (1, 5 min) before {load[0]:.2f} {load[1]:.2f}, after {after[0]:.2f} {after[1]:.2f}")
    finally:
        for side in sides:
            side.mount.stop()
            bm.delete_bucket(s3, side.bucket)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
