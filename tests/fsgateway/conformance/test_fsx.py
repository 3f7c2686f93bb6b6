"""fsx-style random operations on one file against a model of its bytes.

Writes (appends, overwrites, writes past the end), reads, truncates up and down,
mmap reads and writes (MAP_SHARED + msync), fsync, and close/reopen, each
checked against an in-memory model; the bucket's object must equal the model
after every close. Seeded (FSX_SEED to replay one) and bounded in operations
and time.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import random
import time

import pytest

from tests.support.process import wait_for

OPS = 400
TIME_BUDGET = 60.0  # seconds; the run stops early (never fails) when it is spent
MAX_SIZE = 3 << 20
SEEDS = [int(os.environ["FSX_SEED"])] if os.environ.get("FSX_SEED") else [1, 2]


class Fsx:
    def __init__(self, path, seed: int, s3, bucket: str, key: str) -> None:
        self.path, self.s3, self.bucket, self.key = path, s3, bucket, key
        self.rng = random.Random(seed)
        self.model = bytearray()
        self.fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
        self.log: list[str] = []

    def _span(self, limit: int) -> tuple[int, int]:
        off = self.rng.randrange(0, max(1, limit))
        return off, self.rng.randrange(1, 64 << 10 if self.rng.random() < 0.8 else 512 << 10)

    def write(self) -> None:
        off, n = self._span(min(MAX_SIZE, len(self.model) + (256 << 10)))
        n = min(n, MAX_SIZE - off)
        data = self.rng.randbytes(n)
        self.log.append(f"write {off} {n}")
        assert os.pwrite(self.fd, data, off) == n
        if off > len(self.model):
            self.model.extend(b"\0" * (off - len(self.model)))
        self.model[off : off + n] = data

    def read(self) -> None:
        off, n = self._span(len(self.model) + 100)
        self.log.append(f"read {off} {n}")
        assert os.pread(self.fd, n, off) == bytes(self.model[off : off + n]), self.where()

    def truncate(self) -> None:
        size = self.rng.randrange(0, MAX_SIZE)
        self.log.append(f"truncate {size}")
        os.ftruncate(self.fd, size)
        del self.model[size:]
        self.model.extend(b"\0" * (size - len(self.model)))
        assert os.fstat(self.fd).st_size == size, self.where()

    def mapread(self) -> None:
        if not self.model:
            return
        off, n = self._span(len(self.model))
        self.log.append(f"mapread {off} {n}")
        with mmap.mmap(self.fd, len(self.model), mmap.MAP_SHARED, mmap.PROT_READ) as m:
            assert m[off : off + n] == bytes(self.model[off : off + n]), self.where()

    def mapwrite(self) -> None:
        if not self.model:
            return
        off, n = self._span(len(self.model))
        n = min(n, len(self.model) - off)
        data = self.rng.randbytes(n)
        self.log.append(f"mapwrite {off} {n}")
        with mmap.mmap(self.fd, len(self.model), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            m[off : off + n] = data
            m.flush()
        self.model[off : off + n] = data

    def fsync(self) -> None:
        self.log.append("fsync")
        os.fsync(self.fd)

    def reopen(self) -> None:
        self.log.append("close/reopen")
        os.close(self.fd)
        if not self.model:  # a new file nobody wrote to is stored at its last close (FUSE's release), just after
            wait_for(lambda: self._exists(), 10, "the empty new file in the bucket")
        stored = self.s3.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        assert stored == bytes(self.model), self.where("the bucket's object differs from the model")
        self.fd = os.open(self.path, os.O_RDWR)
        assert os.fstat(self.fd).st_size == len(self.model), self.where()

    def _exists(self) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self.key)
        except self.s3.exceptions.ClientError:
            return False
        return True

    def where(self, what: str = "differs from the model") -> str:
        return f"{what} after: " + "; ".join(self.log[-8:])

    def close(self) -> None:
        self.reopen()
        os.close(self.fd)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_operations_match_a_model(d, conformance_mount, s3, seed):
    fsx = Fsx(d / "fsx", seed, s3, conformance_mount.bucket, f"{d.name}/fsx")
    ops = [(fsx.write, 30), (fsx.read, 25), (fsx.truncate, 8), (fsx.mapread, 10), (fsx.mapwrite, 10),
           (fsx.fsync, 5), (fsx.reopen, 6)]
    funcs, weights = zip(*ops, strict=True)
    deadline = time.monotonic() + TIME_BUDGET
    try:
        for _ in range(OPS):
            if time.monotonic() > deadline:
                break
            fsx.rng.choices(funcs, weights)[0]()
        fsx.close()
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fsx.fd)
        raise
