"""The house's import rules, read from the source (ast), not from what happens to be imported at run time.

- Nothing in checker/, syncd/ or the shared floor (fsgateway/ outside fsgateway/mount/) imports
  `fsgateway.mount`: the mount is one daemon, the floor is what all three share.
- The floor's folders see only the layers below them: formats (pure) ← store ← daemon.
- checker and syncd never import each other.
- Inside the mount, the filesystem (fs/) and the data paths (io/) never import the adapter, the
  session or the CLI above them, and io/ never imports fs/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.process import REPO

#: (package prefix of the importing module, module prefixes it must not import)
RULES = [
    ("checker", ("fsgateway.mount", "syncd")),
    ("syncd", ("fsgateway.mount", "checker")),
    ("fsgateway.formats", ("fsgateway.mount", "fsgateway.store", "fsgateway.daemon", "checker", "syncd",
                           "boto3", "botocore", "trio", "pyfuse3")),
    ("fsgateway.store", ("fsgateway.mount", "fsgateway.daemon", "checker", "syncd", "pyfuse3")),
    ("fsgateway.daemon", ("fsgateway.mount", "checker", "syncd", "pyfuse3")),
    ("fsgateway.mount.fs", ("fsgateway.mount.adapter", "fsgateway.mount.session", "fsgateway.mount.cli",
                            "pyfuse3")),
    ("fsgateway.mount.io", ("fsgateway.mount.fs", "fsgateway.mount.adapter", "fsgateway.mount.session",
                            "fsgateway.mount.cli", "pyfuse3")),
]


def modules() -> dict[str, Path]:
    found = {}
    for package in ("fsgateway", "checker", "syncd"):
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(name: str, path: Path) -> set[str]:
    """Every module the file imports, absolute, wherever in the file (a lazy import counts too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return out


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations() -> list[str]:
    found = []
    for name, path in sorted(modules().items()):
        for owner, forbidden in RULES:
            if not _under(name, owner):
                continue
            for imported in sorted(imports_of(name, path)):
                if any(_under(imported, bad) for bad in forbidden):
                    found.append(f"{name} imports {imported}")
    return found


def test_no_module_breaks_the_import_rules():
    assert violations() == []


def test_the_rules_see_a_forbidden_import():
    """The checker itself: a planted import of the mount in the shared floor is reported."""
    planted = REPO / "fsgateway" / "store" / "_planted_for_test.py"
    planted.write_text("from fsgateway.mount.fs import core\n")
    try:
        assert "fsgateway.store._planted_for_test imports fsgateway.mount.fs" in violations()
    finally:
        planted.unlink()


@pytest.mark.parametrize("module", ["checker.cli", "syncd.cli"])
def test_other_daemons_do_not_load_the_mount_at_run_time(module):
    """Belt and braces: importing a daemon's CLI loads no fsgateway.mount module (lazy imports included)."""
    import subprocess
    import sys
    code = (f"import sys, {module}; "
            "print(sorted(m for m in sys.modules if m == 'fsgateway.mount' or m.startswith('fsgateway.mount.')))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
