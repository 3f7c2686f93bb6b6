"""A whole checker pipeline for tests: bucket, keys, root of trust, model registry, a real checker process.

Packages are signed in-process with the same code `fsgateway-fw sign` uses,
then land through a real fsgateway mount or straight into the bucket with
boto3 (the "other hosts, other tools" path). Verdicts are read back from the
version database the checker writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from checker import manifest, signing
from checker.db import Database
from tests.support.process import free_port, metric_value, wait_for
from tests.support.s3 import S3Server

MODEL = "sensor-x"


@dataclass
class CheckerProcess:
    proc: subprocess.Popen
    metrics_port: int
    log: Path

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


@dataclass
class Pipeline:
    server: S3Server
    s3: object
    bucket: str
    tmp: Path
    passwd: Path
    database: str = ""
    builder: signing.CryptoSigner | None = None
    processes: list[CheckerProcess] = field(default_factory=list)
    prefix: str = ""  # the checker's `prefix` (every helper below but `env` assumes "")

    # ------------------------------------------------------------------ set-up
    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "FSGATEWAY_CHECKER_BUCKET": self.bucket,
               "FSGATEWAY_CHECKER_ENDPOINT": self.server.endpoint, "FSGATEWAY_CHECKER_PATH_STYLE": "true",
               "FSGATEWAY_CHECKER_PASSWD_FILE": str(self.passwd),
               "FSGATEWAY_CHECKER_STATE_DIR": str(self.state_dir)}
        if self.database:
            env["FSGATEWAY_CHECKER_DATABASE"] = self.database
        if self.prefix:
            env["FSGATEWAY_CHECKER_PREFIX"] = self.prefix
        if self.server.ca_bundle:
            env["FSGATEWAY_CHECKER_CA_BUNDLE"] = self.server.ca_bundle
        env.update(extra)
        return env

    def fw(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "checker.fw", *args], env=self.env(), capture_output=True,
                           text=True, timeout=120)
        if check and r.returncode != 0:
            pytest.fail(f"fsgateway-fw {' '.join(args)} failed: {r.stderr}")
        return r

    def init(self) -> None:
        """Root of trust, a model with hardware A and B, and an authorised builder key."""
        self.fw("repo", "init", "--root-key", str(self.tmp / "root.key"), "--root-out", str(self.tmp / "root.json"))
        self.fw("model", "add", MODEL, "--hw", "A,B", "--max-payload", "300M")
        self.builder = self.new_key("builder", models=f"{MODEL},other-*")

    def new_key(self, name: str, models: str | None = None) -> signing.CryptoSigner:
        base = self.tmp / name
        signing.generate(f"{base}.key", f"{base}.pub")
        if models:
            self.fw("key", "add", f"{base}.pub", "--models", models)
        return signing.load_signer(f"{base}.key")

    def db(self) -> Database:
        return Database(self.database or f"sqlite://{self.state_dir / 'versions.db'}")

    def start(self, mount_dir: Path | None = None, **sets: str) -> CheckerProcess:
        port = free_port()
        log = self.tmp / f"checker{len(self.processes)}.log"
        options = {"reconcile_interval": "1", "pending_deadline": "4", "metrics_address": f"127.0.0.1:{port}",
                   "log_level": "debug", **sets}
        cmd = [sys.executable, "-m", "checker", "run"] + [a for k, v in options.items() for a in ("--set", f"{k}={v}")]
        if mount_dir is not None:
            cmd += ["--mount-dir", str(mount_dir)]
        proc = subprocess.Popen(cmd, env=self.env(), stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        p = CheckerProcess(proc, port, log)
        self.processes.append(p)

        def serving() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"checker exited with {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                return "fsgateway_checker_last_reconcile_timestamp_seconds" in p.metrics() and \
                    metric(p.metrics(), "fsgateway_checker_last_reconcile_timestamp_seconds") > 0
            except OSError:
                return False

        wait_for(serving, 60, "the checker to serve")
        return p

    # ------------------------------------------------------------------ packages
    def package(self, version: str, counter: int, payload: bytes, *, model: str = MODEL,
                hw: tuple[str, ...] = ("A",), channel: str = "stable", name: str = "fw.bin",
                key: signing.CryptoSigner | None = None, length: int | None = None,
                sha256: str | None = None) -> dict[str, bytes]:
        """{file name: bytes} of a signed package; `length`/`sha256` override what the manifest claims."""
        signed = manifest.signed_document(model, list(hw), version, counter, channel, name,
                                          len(payload) if length is None else length,
                                          sha256 or hashlib.sha256(payload).hexdigest())
        doc = {"signed": signed, "signatures": [signing.sign(manifest.canonical(signed), key or self.builder)]}
        return {name: payload, "manifest.json": json.dumps(doc).encode()}

    def put(self, files: dict[str, bytes], version: str, model: str = MODEL) -> None:
        for name, data in files.items():
            self.s3.put_object(Bucket=self.bucket, Key=f"incoming/{model}/{version}/{name}", Body=data)

    def verdict(self, version: str, model: str = MODEL, timeout: float = 60) -> tuple[str, str, str]:
        """(outcome, reason, detail) of the package, once its verdict is carried out."""
        package = f"incoming/{model}/{version}/"

        def done() -> tuple | None:
            db = self.db()
            try:
                rows = db.query("SELECT outcome, reason, detail FROM verdicts WHERE package = ? AND done = 1",
                                (package,))
            finally:
                db.close()
            return rows[-1] if rows else None

        return wait_for(done, timeout, f"a verdict on {package}")

    def verdict_count(self, version: str, model: str = MODEL) -> int:
        db = self.db()
        try:
            return len(db.query("SELECT 1 FROM verdicts WHERE package = ?", (f"incoming/{model}/{version}/",)))
        finally:
            db.close()

    def keys(self, prefix: str) -> list[str]:
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def reason(self, version: str, model: str = MODEL) -> dict:
        keys = [k for k in self.keys(f"quarantine/{model}/{version}/") if k.endswith("/reason.json")]
        assert len(keys) == 1, keys
        return json.loads(self.get(keys[0]))

    def targets(self) -> dict:
        """The targets of the newest published TUF metadata, as devices see them."""
        ts = json.loads(self.get("metadata/timestamp.json"))
        snap_v = ts["signed"]["meta"]["snapshot.json"]["version"]
        snap = json.loads(self.get(f"metadata/{snap_v}.snapshot.json"))
        targets_v = snap["signed"]["meta"]["targets.json"]["version"]
        return json.loads(self.get(f"metadata/{targets_v}.targets.json"))["signed"]["targets"]

    def device_command(self, state: Path, hw: str = "A", model: str = MODEL) -> list[str]:
        return [sys.executable, "-m", "checker.device", "--url", f"{self.server.endpoint}/{self.bucket}/",
                "--root", str(self.tmp / "root.json"), "--model", model, "--hw", hw, "--state-dir", str(state)]

    def device(self, state: Path, hw: str = "A", model: str = MODEL, check: bool = False,
               flags: tuple[str, ...] = ()) -> tuple[int, dict, str]:
        r = subprocess.run([*self.device_command(state, hw, model), *flags], capture_output=True, text=True,
                           timeout=120,
                           env={**os.environ, "REQUESTS_CA_BUNDLE": self.server.ca_bundle or ""})
        if check and r.returncode != 0:
            pytest.fail(f"device failed: {r.stderr}")
        return r.returncode, json.loads(r.stdout) if r.returncode == 0 else {}, r.stderr


def metric(text: str, name: str, **labels: str) -> float:
    return metric_value(text, name, **labels)
