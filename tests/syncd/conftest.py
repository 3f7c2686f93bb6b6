"""syncd fixtures: a backup bucket (same server, or the other server of the run) and syncd processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.checker.conftest import pipeline, pipelines  # noqa: F401 (fixtures of test_checker_feed.py)
from tests.support.s3 import remove_bucket
from tests.support.syncd import Backup, Syncd, new_backup


@pytest.fixture(params=["same_server", "other_server"])
def backup(request, server, s3, alt_server, tmp_path) -> Iterator[Backup]:
    """Both placements: the same server (server-side copies) and the other server (streamed copies)."""
    if request.param == "other_server":
        if alt_server is None:
            pytest.skip("no second S3 server (S3_ALT_ENDPOINT_URL; scripts/run-tests sets it)")
        b = new_backup(alt_server, alt_server.client(), tmp_path, True)
    else:
        b = new_backup(server, s3, tmp_path, False)
    yield b
    remove_bucket(b.client, b.name)


@pytest.fixture
def same_backup(server, s3, tmp_path) -> Iterator[Backup]:
    b = new_backup(server, s3, tmp_path, False)
    yield b
    remove_bucket(s3, b.name)


@pytest.fixture
def syncd_factory(server, passwd_file, tmp_path) -> Iterator:
    made: list[Syncd] = []

    def make(primary: str, backup: Backup, name: str = "s") -> Syncd:
        sub = tmp_path / f"{name}{len(made)}"
        sub.mkdir()
        made.append(Syncd(server, passwd_file, primary, backup, sub))
        return made[-1]

    yield make
    for s in made:
        s.stop()
