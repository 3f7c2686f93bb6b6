"""What is released is byte for byte what was judged: pinned reads, verified copies, reserved keys.

Against the real S3 server (and a real mount for the reserved folder); the
checker's own functions are driven directly where a race would otherwise be
needed to reach them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import uuid

import pytest
import trio
from prometheus_client import generate_latest

from checker import metrics as checker_metrics
from checker import signing, tufrepo
from checker.db import Database
from checker.judge import staging_key
from checker.landing import Part
from checker.publisher import Publisher, ReleaseError, RepoPolicy
from checker.rules import Release
from fsgateway.store.client import ObjectStore, StoreError, StoreSettings
from fsgateway.store.credentials import Keys
from fsgateway.store.hashing import sha256_of
from tests.support.checker import MODEL, metric
from tests.support.process import wait_for


def store_for(server, bucket: str) -> ObjectStore:
    return ObjectStore(StoreSettings(bucket=bucket, endpoint=server.endpoint, region="us-east-1", path_style=True,
                                     keys=Keys(server.access_key, server.secret_key), profile=None,
                                     verify=server.ca_bundle or True, max_connections=4, connect_timeout=10,
                                     read_timeout=30, retry_deadline=10))


def test_hashing_refuses_an_object_that_is_not_exactly_the_expected_size(server, s3, bucket):
    """Signed bytes plus appended junk are never hashed as "exactly `length` bytes"."""
    signed = os.urandom(1000)
    s3.put_object(Bucket=bucket, Key="staged", Body=signed + b"junk appended by a mount user")
    store = store_for(server, bucket)
    with pytest.raises(StoreError) as info:
        trio.run(sha256_of, store, "staged", len(signed))
    assert info.value.errno == errno.ESTALE
    s3.put_object(Bucket=bucket, Key="staged", Body=signed)
    assert trio.run(sha256_of, store, "staged", len(signed))[0] == hashlib.sha256(signed).hexdigest()


def test_hashing_is_pinned_to_one_version(server, s3, bucket):
    data = os.urandom(100)
    etag = s3.put_object(Bucket=bucket, Key="staged", Body=data)["ETag"]
    s3.put_object(Bucket=bucket, Key="staged", Body=os.urandom(100))  # same size, other bytes
    with pytest.raises(StoreError) as info:
        trio.run(sha256_of, store_for(server, bucket), "staged", 100, etag)
    assert info.value.errno == errno.ESTALE


@pytest.fixture
def publisher(server, bucket, tmp_path):
    db = Database(f"sqlite://{tmp_path / 'versions.db'}")
    db.migrate()
    signing.generate(str(tmp_path / "online.key"), str(tmp_path / "online.pub"))
    store = store_for(server, bucket)
    p = Publisher(store, db, "", signing.OnlineKey(str(tmp_path / "online.key")),
                  RepoPolicy(86400, 86400, 60), "testhost")
    yield p
    db.close()


def _released(p: Publisher, data: bytes, version: str, counter: int = 1) -> Release:
    r = Release(MODEL, "stable", version, counter, hashlib.sha256(data).hexdigest(), len(data), "fw.bin", ("A",))
    with p.db.transaction() as tx:
        p.db.record_release(tx, r, "{}", tufrepo.release_key(r), uuid.uuid4().hex, "k")
    return r


def _stored(p: Publisher, r: Release) -> bool:
    return bool(p.db.query("SELECT stored FROM releases WHERE model = ? AND version = ?", (r.model, r.version))[0][0])


def _tampered_staged() -> float:
    return metric(generate_latest(checker_metrics.REGISTRY).decode(), "fsgateway_checker_tampered_objects_total",
                  where="staged")


def test_a_staged_copy_changed_after_hashing_is_not_released(publisher, s3, bucket):
    """The staged copy swapped for signed bytes + junk: the release comes from the upload, verified."""
    data = os.urandom(5000)
    r = _released(publisher, data, "1.0.0")
    staged = staging_key("", "p1")
    s3.put_object(Bucket=bucket, Key=staged, Body=data + b"junk")
    upload = "incoming/sensor-x/1.0.0/fw.bin"
    etag = s3.put_object(Bucket=bucket, Key=upload, Body=data)["ETag"]
    before = _tampered_staged()
    trio.run(publisher.release, r, staged, Part(upload, len(data), etag, 0.0))
    key = tufrepo.release_key(r)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    assert _stored(publisher, r)
    assert _tampered_staged() == before + 1
    # Same size, other bytes: copied, hashed, removed; the upload is used instead.
    r2 = _released(publisher, data, "1.0.1", 2)
    s3.put_object(Bucket=bucket, Key=staged, Body=data[:-1] + b"X")
    trio.run(publisher.release, r2, staged, Part(upload, len(data), etag, 0.0))
    assert s3.get_object(Bucket=bucket, Key=tufrepo.release_key(r2))["Body"].read() == data


def test_no_release_when_no_source_holds_the_judged_bytes(publisher, s3, bucket):
    data = os.urandom(5000)
    r = _released(publisher, data, "2.0.0")
    staged = staging_key("", "p2")
    s3.put_object(Bucket=bucket, Key=staged, Body=data[:-1] + b"X")  # same size, other bytes
    upload = "incoming/sensor-x/2.0.0/fw.bin"
    etag = s3.put_object(Bucket=bucket, Key=upload, Body=data)["ETag"]
    s3.put_object(Bucket=bucket, Key=upload, Body=b"replaced after the verdict")  # the judged ETag is gone
    with pytest.raises(ReleaseError):
        trio.run(publisher.release, r, staged, Part(upload, len(data), etag, 0.0))
    assert s3.list_objects_v2(Bucket=bucket, Prefix="releases/").get("KeyCount", 0) == 0
    assert not _stored(publisher, r)
    assert s3.list_objects_v2(Bucket=bucket, Prefix="metadata/").get("KeyCount", 0) == 0  # nothing published


def test_a_planted_release_object_is_replaced_and_counted(pipeline, tmp_path):
    """An object put at the release key before the package lands is never what devices get."""
    data = os.urandom(4096)
    files = pipeline.package("1.0.0", 1, data)
    sha = hashlib.sha256(data).hexdigest()
    key = f"releases/{MODEL}/1.0.0/{sha}.fw.bin"
    pipeline.s3.put_object(Bucket=pipeline.bucket, Key=key, Body=b"planted by a mount user")
    checker = pipeline.start()
    pipeline.put(files, "1.0.0")
    assert pipeline.verdict("1.0.0")[:2] == ("accepted", "ok")
    assert pipeline.get(key) == data
    assert metric(checker.metrics(), "fsgateway_checker_tampered_objects_total", where="release") == 1
    assert "that are not the release's" in checker.log.read_text()
    _, result, _ = pipeline.device(tmp_path / "device", check=True)
    assert result["installed"]["sha256"] == sha


def test_the_reserved_folder_is_unreachable_through_a_mount_whatever_its_prefix(mounter, server, s3, bucket):
    """A checker with prefix fw/ stages at fw/.fsgateway/checker/; no mount of the bucket may touch it."""
    staged = "fw/" + staging_key("", "0123")
    s3.put_object(Bucket=bucket, Key=staged, Body=b"the checker's copy")
    s3.put_object(Bucket=bucket, Key="fw/incoming/x", Body=b"upload")
    for source, top in ((f"{bucket}:/fw", ""), (bucket, "fw")):
        m = mounter()
        root = m.start(source) / top
        assert sorted(os.listdir(root)) == ["incoming"]
        res = root / ".fsgateway"
        attempts = [(open, (res / "checker" / "0123", "wb")), (open, (res / "checker" / "new", "wb")),
                    (os.mkdir, (res,)), (os.unlink, (res / "checker" / "0123",)),
                    (os.rename, (root / "incoming" / "x", res)), (os.rename, (root / "incoming", res)),
                    (os.stat, (res,))]
        for fn, args in attempts:
            with pytest.raises(OSError) as info:
                fn(*args)
            assert info.value.errno in (errno.EPERM, errno.EACCES), info.value
        if top:  # renaming the folder that holds it would move the checker's copy
            with pytest.raises(OSError) as info:
                os.rename(root, root.parent / "moved")
            assert info.value.errno == errno.EPERM
        m.stop()
    assert s3.get_object(Bucket=bucket, Key=staged)["Body"].read() == b"the checker's copy"
    assert s3.get_object(Bucket=bucket, Key="fw/incoming/x")["Body"].read() == b"upload"


def test_the_checkers_state_files_are_owner_only_in_a_state_dir_that_is_not(server, s3, passwd_file, public_tmp):
    from tests.support.checker import Pipeline
    from tests.support.process import readable_by_nobody
    from tests.support.s3 import remove_bucket

    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    p = Pipeline(server, s3, bucket, public_tmp / "pipeline", passwd_file)
    p.tmp.mkdir(mode=0o755)
    p.state_dir.mkdir(mode=0o755)  # made beforehand by a package or an operator
    os.chmod(p.state_dir, 0o755)
    try:
        p.init()
        data = os.urandom(100)
        p.start()
        p.put(p.package("1.0.0", 1, data), "1.0.0")
        assert p.verdict("1.0.0")[:2] == ("accepted", "ok")
        control = p.state_dir / "control"
        control.write_bytes(b"x")
        control.chmod(0o644)
        assert readable_by_nobody(control)  # the test can see a readable file
        files = [f for f in p.state_dir.iterdir() if f != control]
        assert {f.name for f in files} >= {"versions.db", "online.key"}
        for f in files:
            if f.suffix != ".pub":  # the online key's public half is public
                assert not readable_by_nobody(f), f.name
                assert f.stat().st_mode & 0o077 == 0, (f.name, oct(f.stat().st_mode))
    finally:
        for proc in p.processes:
            proc.stop()
        remove_bucket(s3, bucket)


def test_a_flood_of_folders_in_one_model_neither_jams_the_checker_nor_starves_another_model(pipeline):
    """Cheap one-byte folders queued ahead of a real package: it is looked at in the next turn, not after them."""
    from concurrent.futures import ThreadPoolExecutor

    flood = 300
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: pipeline.s3.put_object(Bucket=pipeline.bucket, Key=f"incoming/other-flood/{i}/x",
                                                       Body=b"x"), range(flood)))
    data = os.urandom(1000)
    pipeline.put(pipeline.package("1.0.0", 1, data), "1.0.0")  # listed after the flood (other-flood < sensor-x)
    checker = pipeline.start(concurrency="1", pending_deadline="600")
    assert pipeline.verdict("1.0.0")[:2] == ("accepted", "ok")
    lines = checker.log.read_text().splitlines()
    verdict_at = next(i for i, line in enumerate(lines) if f"accepted incoming/{MODEL}/1.0.0/" in line)
    looked_before = sum("pending incoming/other-flood/" in line for line in lines[:verdict_at])
    assert looked_before < 10, looked_before
    # Nothing was lost: every folder of the flood is looked at (and stays pending until its deadline).
    wait_for(lambda: metric(checker.metrics(), "fsgateway_checker_pending_packages") == flood, 120,
             "every flood folder to be looked at")


def test_a_checker_with_a_prefix_works_through_a_mount_of_that_prefix_and_leaves_no_reserved_key(pipelines, mounter):
    p = pipelines()
    p.prefix = "fw/"
    p.init()
    mnt = mounter().start(f"{p.bucket}:/fw")
    p.start(mnt)
    data = os.urandom(3000)
    folder = mnt / "incoming" / MODEL / "1.0.0"
    folder.mkdir(parents=True)
    for name, content in p.package("1.0.0", 1, data).items():
        (folder / name).write_bytes(content)

    def done() -> bool:
        db = p.db()
        try:
            return bool(db.query("SELECT 1 FROM verdicts WHERE package = ? AND outcome = 'accepted' AND done = 1",
                                 (f"fw/incoming/{MODEL}/1.0.0/",)))
        finally:
            db.close()

    wait_for(done, 60, "the package to be accepted and released")
    (release,) = p.keys(f"fw/releases/{MODEL}/1.0.0/")
    assert p.get(release) == data
    assert p.keys("fw/.fsgateway/") == []  # the staged copy is gone
    assert ".fsgateway" not in os.listdir(mnt)


def test_listings_read_back_keys_with_spaces_plus_and_percent(server, s3, bucket):
    """A key misread from a listing is judged, quarantined and removed under a name that does not exist."""
    keys = ["incoming/a b+c%20d/fw ?#&.bin", "incoming/x+y/ z +"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    page = trio.run(lambda: store_for(server, bucket).list_page("incoming/", None, delimiter=""))
    assert sorted(e.key for e in page.entries) == sorted(keys)
