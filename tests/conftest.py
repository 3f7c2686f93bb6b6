"""Fixtures: a real S3 server, fresh buckets, real mounts; and the tiers every test is sorted into.

The server is whatever S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY name (scripts/run-tests starts Ceph RGW and SeaweedFS;
S3_CA_BUNDLE selects TLS verification). Without S3_ENDPOINT_URL the session
starts a private SeaweedFS, so `pytest tests/PATH` runs alone. Nothing here
fakes S3. Helpers live in tests/support/.
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.mount import Mount
from tests.support.s3 import S3Server, remove_bucket
from tests.support.weed import Weed

# ---------------------------------------------------------------- tiers
# Every test gets markers from what it needs, so that no test file names its tier. What a test
# needs is read from its code: the test function, the fixtures it uses, and every function and class
# of tests/ these reach by name.
#   s3        a fixture that builds on `server` or `alt_server` (every S3 fixture does)
#   fuse      mounts: the code names `Mount` or `is_mounted` (whatever mounts checks that it did; implies s3)
#   postgres  a PostgreSQL database: `pg_url` (the postgresql case of `database_url` is marked where it is defined)
#   process   starts programs (`subprocess`): the commands under test, promtool, make, setpriv
#   e2e       needs a server and sits in a module of whole-system tests (E2E_MODULES)
# `make test-pure` runs what has none of them: in-process tests of pure logic, no server, no mount.
S3_FIXTURES = frozenset({"server", "alt_server"})
MOUNT_NAMES = frozenset({"Mount", "is_mounted"})
PROCESS_NAMES = frozenset({"subprocess"})
E2E_MODULES = frozenset({"tests/checker/test_pipeline.py", "tests/deploy/test_prometheus.py",
                         "tests/systemd/test_boot.py"})
PRIVATE_SERVER = "seaweedfs"  # what the session starts when S3_ENDPOINT_URL is not set
if not os.environ.get("S3_ENDPOINT_URL"):
    # helper modules read the server's name at import (its quirks), and conftest.py files below this one
    # may be imported before any pytest_configure runs: say it here, first
    os.environ["S3_SERVER"] = PRIVATE_SERVER


class _Reach:
    """The global names in the code a test runs, following the functions and classes of tests/ they name."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self._seen: set[types.CodeType] = set()

    def visit(self, obj: object) -> None:
        if getattr(obj, "__module__", None) is None or not obj.__module__.startswith("tests"):
            return
        if inspect.isfunction(obj):
            self._walk(obj.__code__, obj.__globals__)
        elif inspect.isclass(obj):
            for member in vars(obj).values():
                self.visit(member.fget if isinstance(member, property) else getattr(member, "__func__", member))

    def _walk(self, code: types.CodeType, scope: dict) -> None:
        if code in self._seen:
            return
        self._seen.add(code)
        self.names.update(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):  # a nested function, lambda or comprehension
                self._walk(const, scope)
        for name in code.co_names:
            self.visit(scope.get(name))


def _reach(item: pytest.Function) -> _Reach:
    reach = _Reach()
    reach.visit(item.function)
    for defs in item._fixtureinfo.name2fixturedefs.values():
        for fixturedef in defs:
            reach.visit(fixturedef.func)
    return reach


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(config.rootpath)
    private = not os.environ.get("S3_ENDPOINT_URL")
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        names = set(item.fixturenames)
        reach = _reach(item)
        fuse = bool(MOUNT_NAMES & reach.names)
        s3 = fuse or bool(names & S3_FIXTURES)
        if s3:
            item.add_marker(pytest.mark.s3)
        if fuse:
            item.add_marker(pytest.mark.fuse)
        if PROCESS_NAMES & reach.names:
            item.add_marker(pytest.mark.process)
        if "pg_url" in names:
            item.add_marker(pytest.mark.postgres)
        if s3 and item.path.relative_to(root).as_posix() in E2E_MODULES:
            item.add_marker(pytest.mark.e2e)
        if private and s3 and item.get_closest_marker("ceph_only"):
            item.add_marker(pytest.mark.skip(reason="needs Ceph RGW; the private server is SeaweedFS "
                                                    "(set S3_ENDPOINT_URL to run it)"))


# ---------------------------------------------------------------- S3
@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[S3Server]:
    """The run's server; without S3_ENDPOINT_URL, a private SeaweedFS for this session, named in the
    environment as scripts/run-tests names its servers (the daemons under test read it there too)."""
    configured = S3Server.from_environment()
    if configured is not None:
        yield configured
        return
    weed = Weed(tmp_path_factory.mktemp("seaweedfs"))
    weed.start()
    try:
        with pytest.MonkeyPatch.context() as env:
            for var in ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"):
                env.setenv(var, weed.endpoint)
            env.setenv("AWS_ACCESS_KEY_ID", weed.access_key)
            env.setenv("AWS_SECRET_ACCESS_KEY", weed.secret_key)
            env.setenv("AWS_DEFAULT_REGION", "us-east-1")
            env.delenv("S3_CA_BUNDLE", raising=False)
            yield S3Server(weed.endpoint, weed.access_key, weed.secret_key, PRIVATE_SERVER)
    finally:
        weed.terminate()


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


# ---------------------------------------------------------------- mounts
@pytest.fixture
def proxy(server) -> Iterator[FaultProxy]:
    """The project's fault-injecting proxy in front of the run's server (plain HTTP only)."""
    if not server.endpoint.startswith("http://"):
        pytest.skip("the fault proxy judges plain HTTP only")
    p = FaultProxy.to(server.endpoint).start()
    yield p
    p.clear()
    p.stop()


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


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A 0755 directory every user can traverse (pytest's tmp_path is 0700: every file in it is private)."""
    path = Path(tempfile.mkdtemp(prefix="fsg-public-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
