"""Packages through a real mount, in every way developers copy them, to a device that installs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.support.checker import MODEL, metric
from tests.support.process import run_on_terminal, wait_for


def _write(folder, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def copy_payload_first(src, dst) -> None:
    dst.mkdir(parents=True)
    shutil.copyfile(src / "fw.bin", dst / "fw.bin")
    shutil.copyfile(src / "manifest.json", dst / "manifest.json")


def copy_manifest_first(src, dst) -> None:
    dst.mkdir(parents=True)
    shutil.copyfile(src / "manifest.json", dst / "manifest.json")
    shutil.copyfile(src / "fw.bin", dst / "fw.bin")


def cp_r(src, dst) -> None:
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)


def rsync(src, dst) -> None:  # temp file then rename inside the mount
    subprocess.run(["rsync", "-r", f"{src}/", f"{dst}/"], check=True)


def mv_within_mount(src, dst) -> None:  # staged elsewhere on the mount, then renamed into incoming/
    staging = dst.parents[2] / "staging" / dst.name
    staging.parent.mkdir()
    cp_r(src, staging)
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, dst)


@pytest.mark.parametrize("copy", [copy_payload_first, copy_manifest_first, cp_r, rsync, mv_within_mount])
def test_package_copied_onto_the_mount_is_released_and_installed(pipeline, mounted, tmp_path, copy):
    if copy is rsync and shutil.which("rsync") is None:
        pytest.fail("rsync is not installed (scripts/setup installs it)")
    checker = pipeline.start(mounted.path)
    payload = os.urandom(3 << 20)
    src = tmp_path / "pkg"
    _write(src, pipeline.package("1.0.0", 1, payload, hw=("A", "B")))
    (mounted.path / "incoming" / MODEL).mkdir(parents=True, exist_ok=True)
    copy(src, mounted.path / "incoming" / MODEL / "1.0.0")

    assert pipeline.verdict("1.0.0")[:2] == ("accepted", "ok")
    release = [k for k in pipeline.keys(f"releases/{MODEL}/1.0.0/")]
    assert len(release) == 1 and pipeline.get(release[0]) == payload
    assert pipeline.s3.head_object(Bucket=pipeline.bucket, Key=release[0])["CacheControl"].endswith("immutable")
    # The upload folder goes away (parts and the marker mkdir left), on the mount too. SeaweedFS keeps
    # listing an emptied directory as a common prefix for a while, so the mount shows it there.
    wait_for(lambda: not pipeline.keys(f"incoming/{MODEL}/1.0.0/"), 30, "the upload area to be cleared")
    if pipeline.server.name != "seaweedfs":
        wait_for(lambda: not (mounted.path / "incoming" / MODEL / "1.0.0").exists(), 30, "the folder to vanish")
    target = pipeline.targets()[f"{MODEL}/1.0.0/fw.bin"]
    assert target["custom"] == {"model": MODEL, "hw_revisions": ["A", "B"], "version": "1.0.0",
                                "release_counter": 1, "channel": "stable"}
    text = checker.metrics()
    assert metric(text, "fsgateway_checker_verdicts_total", outcome="accepted") == 1
    assert metric(text, "fsgateway_checker_hashed_bytes_total") >= len(payload)

    rc, result, err = pipeline.device(tmp_path / "device-b", hw="B")
    assert rc == 0, err
    assert result["result"] == "updated" and result["installed"]["version"] == "1.0.0"
    with open(result["installed"]["path"], "rb") as f:
        assert f.read() == payload


def test_device_takes_the_newest_for_its_hardware_and_refuses_rollback_and_tampering(pipeline, tmp_path):
    pipeline.start()
    pipeline.put(pipeline.package("1.0.0", 1, b"one" * 1000, hw=("A", "B")), "1.0.0")
    assert pipeline.verdict("1.0.0")[0] == "accepted"
    pipeline.put(pipeline.package("1.1.0", 2, b"two" * 1000, hw=("A",)), "1.1.0")
    assert pipeline.verdict("1.1.0")[0] == "accepted"

    rc, a, err = pipeline.device(tmp_path / "dev-a", hw="A")
    assert rc == 0 and a["installed"]["version"] == "1.1.0", err
    rc, b, err = pipeline.device(tmp_path / "dev-b", hw="B")
    assert rc == 0 and b["installed"]["version"] == "1.0.0", err  # 1.1.0 is not for hardware B
    rc, again, _ = pipeline.device(tmp_path / "dev-a", hw="A")
    assert again["result"] == "up_to_date"

    # Rollback of the metadata: an old timestamp.json served again after a device saw a newer one.
    old_timestamp = pipeline.get("metadata/timestamp.json")
    pipeline.put(pipeline.package("1.2.0", 3, b"three" * 1000, hw=("A",)), "1.2.0")
    assert pipeline.verdict("1.2.0")[0] == "accepted"
    rc, c, err = pipeline.device(tmp_path / "dev-a", hw="A")
    assert rc == 0 and c["installed"]["version"] == "1.2.0", err
    pipeline.s3.put_object(Bucket=pipeline.bucket, Key="metadata/timestamp.json", Body=old_timestamp)
    rc, _, err = pipeline.device(tmp_path / "dev-a", hw="A")
    assert rc == 1 and "update refused" in err and "version" in err.lower()

    # A tampered payload in the bucket (same length): a fresh device refuses it.
    key = next(k for k in pipeline.keys(f"releases/{MODEL}/1.0.0/"))
    data = bytearray(pipeline.get(key))
    data[10] ^= 0xFF
    pipeline.s3.put_object(Bucket=pipeline.bucket, Key=key, Body=bytes(data))
    rc, _, err = pipeline.device(tmp_path / "dev-b2", hw="B")
    assert rc == 1 and "update refused" in err


def test_device_shows_download_progress_on_a_terminal_only(pipeline, tmp_path):
    pipeline.start()
    pipeline.put(pipeline.package("2.0.0", 1, os.urandom(3 << 20)), "2.0.0")
    assert pipeline.verdict("2.0.0")[0] == "accepted"
    env = {"INVOCATION_ID": "", "JOURNAL_STREAM": "", "TERM": "xterm",
           "REQUESTS_CA_BUNDLE": pipeline.server.ca_bundle or ""}
    rc, out, terminal = run_on_terminal(pipeline.device_command(tmp_path / "dev-t"), env)
    assert rc == 0 and json.loads(out)["result"] == "updated", terminal
    assert f"{MODEL}/2.0.0/" in terminal and "100%" in terminal and "3.00M/3.00M" in terminal
    rc, result, err = pipeline.device(tmp_path / "dev-p")  # a pipe: quiet, only the JSON on stdout
    assert rc == 0 and result["result"] == "updated" and "100%" not in err
    rc, result, err = pipeline.device(tmp_path / "dev-f", flags=("--progress",))
    assert rc == 0 and result["result"] == "updated" and "100%" in err
