"""Every command has --version (from the package metadata) and the daemons' -d logs something useful."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

COMMANDS = {"fsgateway": "fsgateway", "fsgateway-checker": "checker", "fsgateway-syncd": "syncd",
            "fsgateway-fw": "checker.fw", "fsgateway-device": "checker.device"}


@pytest.mark.parametrize("prog", list(COMMANDS))
def test_version_comes_from_the_package_metadata(prog):
    r = subprocess.run([sys.executable, "-m", COMMANDS[prog], "--version"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"{prog} {metadata.version('fsgateway')}", r.stdout + r.stderr


def test_debug_logs_the_configuration_and_every_s3_request_without_secrets(server, bucket, s3, same_backup,
                                                                           syncd_factory):
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    r = syncd_factory(bucket, same_backup).once("-d")
    assert r.returncode == 0, r.stderr
    assert f"option bucket = '{bucket}'" in r.stderr
    assert "primary list" in r.stderr and ": ok in " in r.stderr  # one line per S3 request
    assert server.secret_key not in r.stderr
