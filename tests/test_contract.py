"""fsgateway/mount/CONTRACT.md names the tests that enforce each guarantee: every one it names must exist.

Read from the source (ast), so a test renamed or removed fails here, in the pure tier, at once; and every
guarantee either names a test or says plainly what is untested.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.process import REPO

CONTRACT = REPO / "fsgateway" / "mount" / "CONTRACT.md"
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def guarantees(text: str) -> list[str]:
    """Each top-level bullet of the document, joined with its continuation lines."""
    found: list[str] = []
    for line in text.splitlines():
        if line.startswith("- "):
            found.append(line)
        elif found and line.startswith("  "):
            found[-1] += " " + line.strip()
        elif found and not line.strip():
            found.append("")  # a blank line ends a bullet
    return [g for g in found if g]


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            and n.name.startswith("test_")}


def test_every_test_the_contract_names_exists():
    refs = TEST_REF.findall(CONTRACT.read_text())
    assert len(refs) > 50
    missing = [f"{file}::{name}" for file, name in refs
               if not (REPO / file).is_file() or name not in defined_tests(REPO / file)]
    assert missing == []


def test_every_guarantee_names_a_test_or_says_it_is_untested():
    bullets = guarantees(CONTRACT.read_text())
    assert len(bullets) > 15
    bare = [b[:80] for b in bullets if not TEST_REF.search(b) and "Untested" not in b]
    assert bare == []


def test_a_renamed_test_would_be_found():
    """The checks above can fail: a made-up name is not a test of its file."""
    assert "test_write_close_then_object_complete_with_s3fs_metadata" in defined_tests(
        REPO / "tests/fsgateway/test_mount_posix.py")
    assert "test_no_such_test" not in defined_tests(REPO / "tests/fsgateway/test_mount_posix.py")
    assert guarantees("- **A.** one\n  two `tests/x.py::test_y`\n\n- **B.** Untested.\n") == [
        "- **A.** one two `tests/x.py::test_y`", "- **B.** Untested."]
