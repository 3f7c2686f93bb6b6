"""The conformance suite's mount: one real mount per session with `allow_other,default_permissions`.

Each test works in a fresh directory of its own. Checks as an unprivileged user
run in a subprocess as `nobody` (the kernel does the permission checks, as it
would for any user on an `allow_other` mount). The mountpoint lives under a
world-traversable directory so that `nobody` can reach it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fsgateway.conformance.posix import NOBODY
from tests.support.mount import Mount
from tests.support.s3 import remove_bucket

SYSTEM_PYTHON = "/usr/bin/python3"  # the project's interpreter may sit where `nobody` cannot run it (~root)


@pytest.fixture(scope="session")
def conformance_mount(server, s3, passwd_file) -> Iterator[Mount]:
    bucket = f"conf-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    top = Path(tempfile.mkdtemp(prefix="fsg-conformance-", dir="/tmp"))
    top.chmod(0o755)
    m = Mount(server, passwd_file, top)
    m.start(bucket, "allow_other")
    m.bucket = bucket
    yield m
    m.stop()
    remove_bucket(s3, bucket)
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def d(conformance_mount) -> Path:
    """A fresh directory of this test's own on the mount (owned by root, mode 0755)."""
    path = conformance_mount.path / f"t-{uuid.uuid4().hex[:10]}"
    path.mkdir()
    return path


def _run_as(uid: int, code: str, **paths: object) -> str:
    """Run `code` as `uid`; "ok", or the errno name of the OSError it raised."""
    prog = ("import errno, json, os, sys\nV = json.loads(sys.argv[1])\ntry:\n"
            + "".join(f"    {line}\n" for line in code.splitlines())
            + "    print('ok')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n")
    out = subprocess.run([SYSTEM_PYTHON, "-c", prog, json.dumps({k: str(v) for k, v in paths.items()})],
                         user=uid, group=uid, capture_output=True, text=True, timeout=60, cwd="/")
    if out.returncode != 0:
        pytest.fail(f"helper as uid {uid} crashed: {out.stderr}")
    return out.stdout.strip()


@pytest.fixture
def nobody() -> Callable[..., str]:
    """`nobody("os.mkdir(V['p'])", p=path)` runs as nobody and answers "ok" or e.g. "EACCES"."""
    return lambda code, **paths: _run_as(NOBODY, code, **paths)

