"""Least privilege on a real RGW: the upload host's credentials cannot publish, the checker's can.

Two RGW users made with radosgw-admin: the checker's owns the bucket, the
uploader's is granted the upload area by `checker.bucketpolicy` (the policy
the README tells operators to apply). Everything the uploader could use to
publish — releases/, metadata/, quarantine/, the checker's staging copies,
the bucket policy itself — is refused by the server, through the mount and
with the uploader's keys used directly, while the pipeline still works.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

from checker import bucketpolicy
from tests.support.checker import MODEL, Pipeline
from tests.support.mount import Mount
from tests.support.s3 import S3Server, remove_bucket

pytestmark = pytest.mark.ceph_only


def radosgw_admin(*args: str) -> dict:
    conf = os.environ.get("CEPH_CONF")
    if not conf or not shutil.which("radosgw-admin"):
        pytest.skip("needs radosgw-admin and CEPH_CONF (scripts/ceph-rgw-up.sh)")
    r = subprocess.run(["radosgw-admin", "-c", conf, "-n", "client.admin", *args], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else {}


@pytest.fixture
def rgw_user(server):
    made: list[str] = []

    def make(role: str) -> tuple[str, S3Server]:
        uid = f"{role}-{uuid.uuid4().hex[:8]}"
        access, secret = uuid.uuid4().hex[:20].upper(), uuid.uuid4().hex
        radosgw_admin("user", "create", f"--uid={uid}", f"--display-name=fsgateway {role}",
                      f"--access-key={access}", f"--secret-key={secret}")
        made.append(uid)
        return uid, S3Server(server.endpoint, access, secret, name=server.name)

    yield make
    for uid in made:
        radosgw_admin("user", "rm", f"--uid={uid}")


def passwd(tmp, name: str, user: S3Server):
    path = tmp / f"{name}.passwd"
    path.write_text(f"{user.access_key}:{user.secret_key}\n")
    path.chmod(0o600)
    return path


def denied(call) -> bool:
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"] == "AccessDenied"
    return False


def test_the_upload_hosts_credentials_cannot_publish(server, rgw_user, tmp_path):
    checker_uid, checker_user = rgw_user("checker")
    uploader_uid, uploader_user = rgw_user("uploader")
    owner, uploader = checker_user.client(), uploader_user.client()
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    owner.create_bucket(Bucket=bucket)
    p = Pipeline(server, owner, bucket, tmp_path / "pipeline", passwd(tmp_path, "checker", checker_user))
    p.tmp.mkdir()
    mount = Mount(server, passwd(tmp_path, "uploader", uploader_user), tmp_path)
    try:
        p.fw("repo", "init", "--root-key", str(p.tmp / "root.key"), "--root-out", str(p.tmp / "root.json"),
             "--no-public-read")
        p.fw("model", "add", MODEL, "--hw", "A,B", "--max-payload", "1M")
        p.builder = p.new_key("builder", models=MODEL)
        printed = p.fw("bucket-policy", "--uploader", f"arn:aws:iam:::user/{uploader_uid}",
                       "--checker", f"arn:aws:iam:::user/{checker_uid}").stdout
        assert json.loads(printed) == bucketpolicy.policy(bucket, "", [f"arn:aws:iam:::user/{uploader_uid}"],
                                                          [f"arn:aws:iam:::user/{checker_uid}"])
        owner.put_bucket_policy(Bucket=bucket, Policy=printed)

        # Before the policy the uploader could do nothing at all; now it can use the upload area only.
        mnt = mount.start(bucket)
        checker = p.start(mnt)
        data = os.urandom(2000)
        folder = mnt / "incoming" / MODEL / "1.0.0"
        folder.mkdir(parents=True)
        for name, content in p.package("1.0.0", 1, data).items():
            (folder / name).write_bytes(content)
        assert p.verdict("1.0.0")[:2] == ("accepted", "ok")
        release = next(k for k in p.keys(f"releases/{MODEL}/1.0.0/"))
        _, result, _ = p.device(tmp_path / "device", check=True)
        assert result["installed"]["version"] == "1.0.0"

        # Through the mount: nothing outside incoming/ can be written.
        for path in (mnt / "releases" / "x", mnt / "metadata" / "timestamp.json", mnt / "quarantine" / "x"):
            with pytest.raises(OSError) as info:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"unsigned")
            assert info.value.errno == errno.EACCES, path
        # With the uploader's keys used directly.
        for key in (release, "metadata/timestamp.json", "metadata/2.root.json", "quarantine/x",
                    ".fsgateway/checker/0123", f"releases/{MODEL}/2.0.0/x"):
            assert denied(lambda k=key: uploader.put_object(Bucket=bucket, Key=k, Body=b"unsigned")), key
            assert denied(lambda k=key: uploader.copy_object(Bucket=bucket, Key=k, CopySource={
                "Bucket": bucket, "Key": "metadata/1.root.json"})), key
        assert denied(lambda: uploader.delete_object(Bucket=bucket, Key=release))
        assert denied(lambda: uploader.put_bucket_policy(Bucket=bucket, Policy=json.dumps(
            {"Version": "2012-10-17", "Statement": []})))
        assert p.get(release) == data
        assert checker.proc.poll() is None
    finally:
        for proc in p.processes:
            proc.stop()
        mount.stop()
        owner.delete_bucket_policy(Bucket=bucket)
        remove_bucket(owner, bucket)
