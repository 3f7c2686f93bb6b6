"""Bad input and faults: a clear error, nothing lost, no caller hung forever."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fsgateway.daemon.identity import host_id
from tests.support.mount import is_mounted
from tests.support.process import free_port, metric_value, succeeds, wait_for
from tests.support.s3 import feed_events
from tests.support.weed import Weed

MiB = 1 << 20


def run_mount(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fsgateway", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.tls
def test_wrong_credentials_one_line_error(server, bucket, tmp_path):
    bad = tmp_path / "bad"
    bad.write_text(f"{server.access_key}:not-the-secret\n")
    bad.chmod(0o600)
    (tmp_path / "mnt").mkdir()
    opts = f"url={server.endpoint},use_path_request_style,passwd_file={bad},metrics_address=off"
    if server.ca_bundle:
        opts += f",ca_bundle={server.ca_bundle}"
    r = run_mount([bucket, str(tmp_path / "mnt"), "-f", "-o", opts])
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("fsgateway: access to bucket") and "credentials" in last
    assert "not-the-secret" not in r.stderr
    assert not is_mounted(tmp_path / "mnt")


def test_unknown_bucket_and_dead_endpoint(server, passwd_file, tmp_path):
    (tmp_path / "mnt").mkdir()
    r = run_mount(["no-such-bucket-here", str(tmp_path / "mnt"), "-o",
                   f"url={server.endpoint},use_path_request_style,passwd_file={passwd_file},metrics_address=off"])
    assert r.returncode != 0 and "does not exist" in r.stderr
    dead = f"http://127.0.0.1:{free_port()}"
    r = run_mount(["b", str(tmp_path / "mnt"), "-o",
                   f"url={dead},use_path_request_style,passwd_file={passwd_file},metrics_address=off"])
    assert r.returncode != 0 and "cannot reach S3 endpoint" in r.stderr


@pytest.mark.tls
def test_tls_error_without_trusted_ca(server, passwd_file, bucket, tmp_path):
    if not server.endpoint.startswith("https://"):
        pytest.skip("needs the TLS endpoint (run by scripts/run-tests against Ceph RGW with TLS)")
    (tmp_path / "mnt").mkdir()
    empty_ca = tmp_path / "ca.pem"
    empty_ca.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text())
    r = run_mount([bucket, str(tmp_path / "mnt"), "-o", f"url={server.endpoint},use_path_request_style,"
                   f"passwd_file={passwd_file},ca_bundle={empty_ca},metrics_address=off"])
    assert r.returncode != 0 and "TLS error" in r.stderr


def test_world_readable_passwd_file_is_refused(server, bucket, tmp_path):
    loose = tmp_path / "passwd"
    loose.write_text(f"{server.access_key}:{server.secret_key}\n")
    loose.chmod(0o644)
    (tmp_path / "mnt").mkdir()
    r = run_mount([bucket, str(tmp_path / "mnt"), "-o", f"url={server.endpoint},passwd_file={loose}"])
    assert r.returncode != 0 and "accessible by group/other" in r.stderr
    assert server.secret_key not in r.stderr


def test_bad_option_is_a_one_line_error(tmp_path):
    r = run_mount(["b", str(tmp_path), "-o", "no_such_option=1"])
    assert r.returncode != 0
    assert r.stderr.strip() == "fsgateway: unknown option 'no_such_option' (-o)"


def test_sigterm_unmounts_cleanly(mount):
    (mount.path / "f").write_bytes(b"1")
    mount.proc.send_signal(signal.SIGTERM)
    assert mount.proc.wait(timeout=30) == 0
    assert not is_mounted(mount.path)


def test_stale_uploads_of_this_gateway_are_aborted_at_start(mounter, bucket, s3):
    m = mounter()
    path = m.tmp / "mnt"
    own = f".fsgateway/staging/{host_id(bucket, '', str(path))}/crashed"
    other = ".fsgateway/staging/otherhost/running"
    s3.create_multipart_upload(Bucket=bucket, Key=own)
    s3.create_multipart_upload(Bucket=bucket, Key=other)
    s3.put_object(Bucket=bucket, Key=own + "-completed", Body=b"leftover")
    m.start(bucket)

    def remaining() -> set[str]:
        ups = {u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
        objs = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
        return ups | objs

    wait_for(lambda: remaining() == {other}, 30, "this host's stale uploads to be removed")
    # counted once the sweep is over, which may be just after the listing above saw its effect
    wait_for(lambda: metric_value(m.metrics(), "fsgateway_stale_uploads_aborted_total") >= 2, 30, "the count")
    assert metric_value(m.metrics(), "fsgateway_stale_uploads_aborted_total") == 2


def test_full_staging_space_gives_enospc_and_loses_nothing(mounter, bucket, s3):
    s3.put_object(Bucket=bucket, Key="big", Body=b"a" * (2 * MiB))
    m = mounter()
    path = m.start(bucket, "cache_size=1M")
    with pytest.raises(OSError) as e, open(path / "big", "r+b") as f:
        f.seek(10)
        f.write(b"patch")
        f.flush()
    assert e.value.errno == errno.ENOSPC
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"a" * (2 * MiB)
    (path / "small").write_bytes(b"still works")  # streaming writes need no staging space
    assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == b"still works"


@pytest.fixture
def weed(tmp_path):
    w = Weed(tmp_path)
    w.start()
    yield w
    w.stop()


def test_server_dies_mid_upload_writer_gets_eio_nothing_partial_visible(weed, tmp_path, mounter):
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=weed.endpoint, aws_access_key_id="fault-key",
                      aws_secret_access_key="fault-secret", region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}))
    wait_for(lambda: succeeds(lambda: s3.create_bucket(Bucket="fw-bucket")), 30, "bucket creation")
    creds = tmp_path / "weedpass"
    creds.write_text("fault-key:fault-secret\n")
    creds.chmod(0o600)
    m = mounter()
    m.passwd = creds
    path = m.start("fw-bucket", "retry_deadline=3", "multipart_size=5M", endpoint=weed.endpoint)
    f = open(path / "fw.bin", "wb")
    f.write(os.urandom(12 * MiB))  # two parts are on their way
    weed.stop()
    with pytest.raises(OSError) as e:
        f.write(os.urandom(12 * MiB))
        f.close()
    assert e.value.errno == errno.EIO
    if not f.closed:  # a write saw the failed part first (all part memory was in use): the close fails too
        with pytest.raises(OSError) as e:
            f.close()
        assert e.value.errno == errno.EIO
    assert metric_value(m.metrics(), "fsgateway_uploads_total", outcome="error") >= 1
    weed.start()
    objs = s3.list_objects_v2(Bucket="fw-bucket").get("Contents", [])
    assert [o["Key"] for o in objs if not o["Key"].startswith(".fsgateway/")] == []
    wait_for(lambda: "fw.bin" in m.log.read_text(), 30, "the lost data logged at the last close")
    assert not (path / "fw.bin").exists()  # a file that never reached the bucket does not linger


def test_an_emptied_cache_dir_is_made_again_and_loses_nothing(mounter, bucket, s3):
    """An operator (or a tmp cleaner) removes cache_dir under a running mount: the mount serves on. The
    staging and feed directories are made again, a staged file is copied back from its descriptor, the
    open write-ahead log segment is written back, and every change is still announced."""
    m = mounter()
    path = m.start(bucket)
    (path / "patched").write_bytes(b"a" * 1000)
    staged = open(path / "patched", "r+b")  # a write that is not an append: a staging file in cache_dir
    staged.seek(10)
    staged.write(b"bc")
    (path / "before").write_bytes(b"x")
    shutil.rmtree(m.tmp / "cache")
    staged.close()  # committed after its staging file was removed
    big = os.urandom(20 << 20)  # full parts, spooled in a staging directory made again
    (path / "big").write_bytes(big)
    for i in range(5):
        (path / f"after{i}").write_bytes(b"y")
    assert s3.get_object(Bucket=bucket, Key="patched")["Body"].read() == b"a" * 10 + b"bc" + b"a" * 988
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == big
    keys = {"patched", "before", "big", *(f"after{i}" for i in range(5))}
    wait_for(lambda: keys <= {e.key for e in feed_events(s3, bucket)}, 60, "every change announced")
    assert is_mounted(path)
    assert (m.tmp / "cache" / "feed").is_dir() and (m.tmp / "cache" / "staging").is_dir()
    assert "was removed" in m.log.read_text()
    assert m.stop() == 0
