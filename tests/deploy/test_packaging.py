"""The sdist carries what `make install` needs, and `make install-files` runs from it; the dependency
bounds and the constraints file agree."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.support.process import REPO


def test_the_sdist_carries_units_deploy_makefile_license_and_make_runs_from_it(tmp_path):
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:  # the working tree as a fresh checkout would have it
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    r = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "sdist", "-d",
                        str(tmp_path / "dist")], cwd=src, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (sdist,) = (tmp_path / "dist").glob("fsgateway-*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
        tar.extractall(tmp_path / "x", filter="data")
    for needed in ("LICENSE", "Makefile", "README.md", "constraints.txt", "systemd/fsgateway@.service",
                   "systemd/fsgateway-checker.service", "systemd/fsgateway-syncd.service", "systemd/README.md",
                   "deploy/prometheus/fsgateway-rules.yml", "deploy/prometheus/prometheus.yml",
                   "deploy/grafana/fsgateway-dashboard.json", "deploy/etc/fsgateway/fsgateway.toml",
                   "deploy/etc/fsgateway/srv-firmware.env", "fsgateway/mount/cli.py", "checker/cli.py", "syncd/cli.py"):
        assert needed in members, needed
    assert "MIT License" in (tmp_path / "x" / sdist.name.removesuffix(".tar.gz") / "LICENSE").read_text()
    unpacked = tmp_path / "x" / sdist.name.removesuffix(".tar.gz")
    stage = tmp_path / "stage"
    r = subprocess.run(["make", "-s", "install-files", f"DESTDIR={stage}"], cwd=unpacked, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (stage / "etc/systemd/system/fsgateway@.service").exists()
    assert (stage / "etc/prometheus/fsgateway-rules.yml").exists()


def test_constraints_pin_every_runtime_requirement_within_its_bounds():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    requires = [line.strip() for line in cfg["options"]["install_requires"].splitlines() if line.strip()]
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    for req in requires:
        name, low = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?>=([0-9.]+)", req).groups()
        pinned = pins[name.lower()]
        assert tuple(map(int, pinned.split(".")[:2])) >= tuple(map(int, low.split(".")[:2])), (name, pinned, low)
    # The bounds the code needs: botocore's checksum settings, trio's strict exception groups.
    assert "boto3>=1.36" in requires and "botocore>=1.36" in requires and "trio>=0.25" in requires
    assert "-c constraints.txt" in (REPO / "Makefile").read_text()
    assert "-c constraints.txt" in (REPO / "scripts/setup").read_text()


def test_make_install_docs_generates_a_man_page_and_completion_per_command(tmp_path):
    stage = tmp_path / "stage"
    r = subprocess.run(["make", "-s", "install-docs", f"DESTDIR={stage}", f"BUILD={tmp_path / 'build'}",
                        f"DOCS_BIN={Path(sys.executable).parent}"], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    share = stage / "usr/local/share"
    for command in ("fsgateway", "fsgateway-checker", "fsgateway-syncd", "fsgateway-fw", "fsgateway-device"):
        page = (share / "man/man1" / f"{command}.1").read_text()
        assert page.startswith(".TH") and "\\-\\-version" in page, command
        done = subprocess.run(["bash", "-c", f"source {share}/bash-completion/completions/{command} && "
                               f"complete -p {command}"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and command in done.stdout, done.stderr
        assert (share / "zsh/site-functions" / f"_{command}").read_text().startswith("#compdef")
    # The options of the parsers, not hand-written lists: a daemon option shows in its completion.
    assert "--dry-run" in (share / "bash-completion/completions/fsgateway-syncd").read_text()
