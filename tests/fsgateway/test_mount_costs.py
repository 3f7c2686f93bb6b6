"""What the mount's caches promise in requests ("Caching" in fsgateway/mount/CONTRACT.md), counted
on the mount's own `fsgateway_s3_requests_total` while a real mount works against a real server.

`stat_ttl` and `negative_ttl` are long here so that no cache entry expires during the test on a slow machine:
the counts are what the caches save while they are valid, not a timing.
"""

from __future__ import annotations

import itertools
import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.mount import Mount
from tests.support.process import metric_value, wait_for

PAGE = 1000  # S3's page size: one LIST per 1,000 entries


def requests(m: Mount) -> dict[str, float]:
    """The mount's S3 requests so far, by kind."""
    text = m.metrics()
    kinds = set(re.findall(r'^fsgateway_s3_requests_total\{[^}]*kind="([^"]+)"', text, re.M))
    return {k: metric_value(text, "fsgateway_s3_requests_total", kind=k) for k in kinds}


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Requests made between two readings, by kind (kinds with none left out)."""
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)
            if after.get(k, 0) != before.get(k, 0)}


@pytest.fixture
def quiet(mounter, bucket) -> Mount:
    """A mount whose caches outlive the test, with no change feed (its journal PUTs would count)."""
    m = mounter()
    m.start(bucket, "stat_ttl=600", "negative_ttl=600", "feed=off")
    m.bucket = bucket
    # the start-up clean-up of the staging area (housekeeping.clean_staging) runs beside the first
    # calls: its multipart listing, then its one LIST; wait for that so that it is no test's cost
    wait_for(lambda: requests(m).get("list", 0) >= 1, 60, "the start-up clean-up of the staging area")
    return m


def test_a_listing_costs_one_list_per_page_and_no_head_per_entry(quiet, s3):
    names = [f"f{i:05d}" for i in range(PAGE + 1)]  # two pages: the second one through the continuation
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: s3.put_object(Bucket=quiet.bucket, Key=f"many/{n}", Body=b"x"), names))
    os.stat(quiet.path / "many")  # the directory's own lookup is not the listing's cost
    before = requests(quiet)
    assert sorted(os.listdir(quiet.path / "many")) == names
    for n in names[:50]:  # what the listing said is trusted for stat_ttl: no HEAD per entry
        assert os.stat(quiet.path / "many" / n).st_size == 1
    assert spent(before, requests(quiet)) == {"list": 2}


def test_new_files_in_a_new_directory_cost_one_put_each(quiet, s3):
    (quiet.path / "new").mkdir()
    before = requests(quiet)
    for i in range(100):  # the names are known to be free: no HEAD or LIST to look for them
        (quiet.path / "new" / f"n{i}").write_bytes(b"abcd")
    assert spent(before, requests(quiet)) == {"put": 100}
    assert s3.list_objects_v2(Bucket=quiet.bucket, Prefix="new/n")["KeyCount"] == 100


def test_every_open_revalidates_with_one_head(quiet, s3):
    s3.put_object(Bucket=quiet.bucket, Key="fw.bin", Body=b"v1")
    assert (quiet.path / "fw.bin").read_bytes() == b"v1"
    before = requests(quiet)
    for _ in range(20):
        with open(quiet.path / "fw.bin", "rb"):
            pass
    assert spent(before, requests(quiet)) == {"head": 20}


def test_new_files_in_an_existing_directory_cost_one_list_and_one_put_each(quiet, s3):
    for n in ("a", "b", "sub/c"):  # made by another tool: this mount does not know its names
        s3.put_object(Bucket=quiet.bucket, Key=f"old/{n}", Body=b"x")
    os.stat(quiet.path / "old")  # the directory's own lookup is not the new files' cost
    before = requests(quiet)
    for i in range(100):  # the first miss probes, then lists old/ once: that listing answers every later miss
        (quiet.path / "old" / f"n{i}").write_bytes(b"abcd")
    # HEAD n0, HEAD n0/, LIST n0/; LIST old/; then one PUT per file
    assert spent(before, requests(quiet)) == {"head": 2, "list": 2, "put": 100}
    assert s3.list_objects_v2(Bucket=quiet.bucket, Prefix="old/n")["KeyCount"] == 100
    with pytest.raises(FileExistsError):  # the listing knew the names that were there
        os.open(quiet.path / "old" / "a", os.O_CREAT | os.O_EXCL | os.O_WRONLY)


def test_a_miss_in_a_directory_over_one_page_falls_back_to_probes(quiet, s3):
    names = [f"f{i:05d}" for i in range(PAGE + 1)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: s3.put_object(Bucket=quiet.bucket, Key=f"big/{n}", Body=b"x"), names))
    os.stat(quiet.path / "big")
    before = requests(quiet)
    for n in ("x1", "x2"):  # after the first miss one LIST page finds the directory too big: not listed again
        assert not (quiet.path / "big" / n).exists()
    # for each miss HEAD name, HEAD name/, LIST name/; and the one page
    assert spent(before, requests(quiet)) == {"list": 3, "head": 4}


def test_names_another_host_creates_in_a_listed_directory_show_after_stat_ttl(mounter, bucket, s3):
    m = mounter()
    m.start(bucket, "stat_ttl=1", "negative_ttl=1", "feed=off")
    s3.put_object(Bucket=bucket, Key="shared/a", Body=b"x")
    (m.path / "shared" / "mine").write_bytes(b"m")  # its miss listed shared/: names known for stat_ttl
    s3.put_object(Bucket=bucket, Key="shared/theirs", Body=b"theirs")
    wait_for(lambda: (m.path / "shared" / "theirs").exists(), 30, "another host's new name through the mount")
    assert (m.path / "shared" / "theirs").read_bytes() == b"theirs"
    with pytest.raises(FileExistsError):
        os.open(m.path / "shared" / "theirs", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    assert s3.get_object(Bucket=bucket, Key="shared/theirs")["Body"].read() == b"theirs"


def test_a_miss_after_the_listing_expired_lists_again_without_probing(mounter, bucket, s3):
    """The directory keeps getting new files: once its listing expires, the next miss costs one LIST."""
    m = mounter()
    m.start(bucket, "stat_ttl=600", "negative_ttl=1", "feed=off")  # a miss's listing is trusted for 1 s
    wait_for(lambda: requests(m).get("list", 0) >= 1, 60, "the start-up clean-up of the staging area")
    s3.put_object(Bucket=bucket, Key="up/old", Body=b"x")
    (m.path / "up" / "first").write_bytes(b"1")  # its miss probed, then listed up/
    before = requests(m)
    absent = (m.path / "up" / f"absent{i}" for i in itertools.count())
    wait_for(lambda: next(absent).exists() or spent(before, requests(m)), 30,
             "a miss after the listing of up/ expired")  # misses answered by the listing cost nothing
    assert spent(before, requests(m)) == {"list": 1}
    s3.put_object(Bucket=bucket, Key="up/theirs", Body=b"theirs")  # another host's name: found, then probed
    wait_for(lambda: (m.path / "up" / "theirs").exists(), 30, "another host's new name through the mount")
    assert (m.path / "up" / "theirs").read_bytes() == b"theirs"
