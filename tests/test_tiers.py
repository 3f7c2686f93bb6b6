"""The tiers tests/conftest.py gives every test, read back from a real collection of the whole tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.process import REPO

TIERS = ("s3", "fuse", "postgres", "process", "e2e")
DUMP = """
import json, os

def pytest_collection_finish(session):
    marks = {item.nodeid: sorted({m.name for m in item.iter_markers()}) for item in session.items}
    with open(os.environ["TIERS_OUT"], "w") as f:
        json.dump(marks, f)
"""


@pytest.fixture(scope="module")
def tiers(tmp_path_factory) -> dict[str, set[str]]:
    """{node id: its tier markers}, collected as a developer without any server would."""
    tmp = tmp_path_factory.mktemp("tiers")
    (tmp / "tiers_dump.py").write_text(DUMP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "AWS_", "CHECKER_PG"))}
    env.update(PYTHONPATH=str(tmp), TIERS_OUT=str(tmp / "tiers.json"))
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "tiers_dump", "tests"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return {node: set(marks) & set(TIERS) for node, marks in json.loads((tmp / "tiers.json").read_text()).items()}


def of(tiers: dict[str, set[str]], prefix: str) -> list[set[str]]:
    found = [marks for node, marks in tiers.items() if node.startswith(prefix)]
    assert found, f"no test collected under {prefix}"
    return found


def test_a_mount_or_a_whole_system_test_always_needs_a_server(tiers):
    for node, marks in tiers.items():
        if marks & {"fuse", "e2e"}:
            assert "s3" in marks, node


def test_pure_logic_has_no_tier(tiers):
    assert all(marks == set() for marks in of(tiers, "tests/checker/test_semver.py::"))
    assert of(tiers, "tests/checker/test_db.py::test_migrations_run_once_and_refuse_a_newer_schema[sqlite]") == [set()]


def test_mounts_are_found_in_fixtures_in_helpers_and_in_the_test_itself(tiers):
    assert all({"s3", "fuse"} <= marks for marks in of(tiers, "tests/fsgateway/test_mount_posix.py::"))  # `mount`
    assert all("fuse" in marks for marks in of(tiers, "tests/checker/test_hostile.py::"))  # a fixture builds a Mount
    assert all("fuse" in marks for marks in of(tiers, "tests/systemd/test_notify.py::"))  # a module helper
    assert of(tiers, "tests/fsgateway/test_cli.py::test_background_mode_returns_once_mounted") == [
        {"s3", "fuse", "process"}]  # runs `fsgateway` itself


def test_programs_postgres_and_whole_system_tests(tiers):
    assert of(tiers, "tests/fsgateway/test_cli.py::test_help_explains_the_options") == [{"process"}]
    assert of(tiers, "tests/checker/test_db.py::test_migrations_run_once_and_refuse_a_newer_schema[postgresql]") == [
        {"postgres"}]
    assert all("e2e" in marks for marks in of(tiers, "tests/checker/test_pipeline.py::"))
    assert of(tiers, "tests/deploy/test_prometheus.py::test_promtool_accepts_the_rules_and_their_unit_tests") == [
        {"process"}]  # promtool alone: no server, so not end-to-end
