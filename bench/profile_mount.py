#!/usr/bin/env python3
"""Where fsgateway's memory, time and requests go, per workload of bench_mount.py (see bench/PROFILE.md).

For each workload, on a fresh fsgateway mount at its default options:
the daemon's resident size sampled every 20 ms (peak, and when it was reached),
its VmHWM, the S3 requests by kind from its /metrics (per file for the small
files, per entry for ``ls -l``), and, with ``--py-spy``, a py-spy sampling
profile of the thread holding the GIL, summarised as the
functions where most samples were taken. Uses bench_mount's settings, mounts
and workloads. Must run as root.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_mount as bm


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


class Sampler(threading.Thread):
    """VmRSS of one process every 20 ms until stopped: the peak and its time from the start."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.at, self.stop_flag = pid, 0, 0.0, threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self.stop_flag.wait(0.02):
            with_rss = rss_kib(self.pid)
            if with_rss > self.peak:
                self.peak, self.at = with_rss, time.perf_counter() - self.t0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_by_kind(m: bm.Mount) -> dict[str, float]:
    """fsgateway_s3_requests_total by its `kind` label."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{m.metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = collections.Counter()
    for line in text.splitlines():
        if line.startswith("fsgateway_s3_requests_total{"):
            kind = re.search(r'kind="([^"]*)"', line)
            out[kind.group(1) if kind else "?"] += float(line.rsplit(" ", 1)[1])
    return out


def top_frames(raw: Path, limit: int = 15) -> list[tuple[str, float]]:
    """From py-spy's collapsed stacks: the share of samples in which each function is on the stack (self + below)."""
    total = 0
    seen: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        for frame in set(stack.split(";")):
            seen[re.sub(r" \(/.*?/(site-packages|fsgateway)/", " (", frame)] += n
    return [(f, n / total) for f, n in seen.most_common(limit)] if total else []


def profile(m: bm.Mount, name: str, fn: Callable[[], Any], units: int, out: Path, pyspy: str | None) -> dict:
    assert m.proc is not None
    before = requests_by_kind(m)
    spy = None
    if pyspy:
        spy = subprocess.Popen([pyspy, "record", "-p", str(m.proc.pid), "-r", "100", "-f", "raw", "--gil",
                                "-o", str(out / f"{name}.txt")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches
    sampler = Sampler(m.proc.pid)
    sampler.start()
    t0, cpu0 = time.perf_counter(), cpu_seconds(m.proc.pid)
    fn()
    secs, cpu = time.perf_counter() - t0, cpu_seconds(m.proc.pid) - cpu0
    sampler.stop_flag.set()
    sampler.join()
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    after = requests_by_kind(m)
    per = {k: round((after[k] - before.get(k, 0)) / units, 3) for k in after if after[k] != before.get(k, 0)}
    result = {"workload": name, "seconds": round(secs, 2), "cpu_seconds": round(cpu, 2),
              "peak_rss_mib": round(sampler.peak / 1024, 1),
              "peak_at_s": round(sampler.at, 2), "vm_hwm_mib": m.peak_rss_mib(), "requests_per_unit": per}
    if spy is not None and (out / f"{name}.txt").exists():
        result["top_frames"] = [(f, round(share, 3)) for f, share in top_frames(out / f"{name}.txt")]
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--small-files", type=int, default=500)
    p.add_argument("--ls-entries", type=int, default=5000)
    p.add_argument("--fsgateway-opts", default="cache_dir={cache_dir},metrics_address=127.0.0.1:{metrics_port}")
    p.add_argument("--fsgateway-cmd", default=None, help="as bench_mount.py's (default: this checkout's)")
    p.add_argument("--py-spy", action="store_true", help="also sample the daemon with py-spy (on PATH)")
    p.add_argument("--only", action="append", choices=("write", "read", "small", "ls"),
                   help="profile only this workload (repeatable; default all)")
    p.add_argument("--out", type=Path, default=Path("/var/tmp/fsgw-profile"))
    args = p.parse_args()
    ns = argparse.Namespace(workdir=None, ca_bundle=None, size_mib=args.size_mib, small_files=args.small_files,
                            empty_files=0, ls_entries=args.ls_entries, fsgateway_cmd=args.fsgateway_cmd,
                            fsgateway_opts=args.fsgateway_opts, rclone_provider="Ceph", row_timeout=600.0)
    st = bm.settings_from(ns)
    pyspy = shutil.which("py-spy") if args.py_spy else None
    args.out.mkdir(parents=True, exist_ok=True)
    bench = bm.Bench(st)
    results = []
    try:
        bench.prepare()
        bucket = bench.new_bucket("profile")
        bench.s3.put_object(Bucket=bucket, Key="small/", Body=b"")
        big = lambda m: m.mountpoint / "big.bin"  # noqa: E731
        plan: list[tuple[str, str, int, Callable[[bm.Mount], Any]]] = [
            ("write", bucket, 1, lambda m: bm.fs_write(bench.data_file, big(m))),
            ("read", bucket, 1, lambda m: (bm.drop_caches(), bm.fs_read(big(m)))),
            ("small", bucket, st.small_files, lambda m: bm.fs_create_small(
                m.mountpoint / "small", [f"f{i:05d}" for i in range(st.small_files)], os.urandom(4096))),
            ("ls", bench.ls_bucket or bucket, st.ls_entries, lambda m: bm.fs_ls_l(m.mountpoint / "ls")),
        ]
        for name, target, units, body in plan:
            if args.only and name not in args.only:
                continue
            with bench.mounted("fsgateway", target) as m:
                results.append(profile(m, name, lambda body=body, m=m: body(m), units, args.out, pyspy))
            if name == "ls":  # the goal is relative to the raw LIST of the same directory, in the same run
                t0 = time.perf_counter()
                listed = len(bm.list_sizes(bench.s3, target, "ls/"))
                results[-1]["raw_list_seconds"] = round(time.perf_counter() - t0, 2)
                if listed != units:
                    raise RuntimeError(f"listed {listed} objects, expected {units}")
                bm.log(repr(results[-1]))
    finally:
        bench.cleanup()
    for r in results:
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
