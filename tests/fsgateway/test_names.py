"""The name caches (fsgateway/mount/fs/names.py): pure rules with a hand-moved clock, then the
caches inside a Filesystem against the real S3 server, with a second writer (boto3) changing
names behind the mount's back: what the caches hide proves they answered without a request."""

from __future__ import annotations

import errno
import os
import stat

import pytest
import trio

from fsgateway.formats.s3format import Attrs
from fsgateway.mount.fs.context import FsError
from fsgateway.mount.fs.core import Filesystem
from fsgateway.mount.fs.inodes import ROOT_INODE, InodeTable, Node
from fsgateway.mount.fs.names import (
    MAX_KNOWN_NAMES,
    DirNames,
    MetadataCache,
    NameCaches,
    NegativeCache,
    Remote,
    same_etag,
)
from fsgateway.store import metrics as store_metrics
from tests.support.clock import Clock
from tests.support.fs import run_fs

DIR = Attrs(stat.S_IFDIR | 0o755, 0, 0, 0)
FILE = Attrs(stat.S_IFREG | 0o644, 0, 0, 0)


# ---------------------------------------------------------------------- pure rules
def test_negative_entries_expire_at_their_ttl():
    clock = Clock()
    nc = NegativeCache(ttl=2, max_entries=10, clock=clock)
    nc.add(1, "x")
    clock.now += 2
    assert nc.hit(1, "x")
    clock.now += 0.001
    assert not nc.hit(1, "x") and len(nc) == 0  # an expired entry is dropped when asked
    off = NegativeCache(ttl=5, max_entries=0, clock=clock)
    off.add(1, "x")
    assert not off.hit(1, "x")


def test_metadata_cache_matches_etag_and_size_and_keeps_the_most_recent():
    mc = MetadataCache(max_entries=2)
    mc.put("k", Remote(FILE, ""))
    assert len(mc) == 0  # no ETag: nothing a listing could match it against
    mc.put("a", Remote(FILE, '"e1"'))
    mc.put("b", Remote(FILE, '"e2"'))
    assert mc.matching("a", '"e1"', 0) is not None  # `a` is now the most recent
    assert mc.matching("a", '"other"', 0) is None and mc.matching("a", '"e1"', 1) is None
    mc.put("c", Remote(FILE, '"e3"'))
    assert mc.matching("b", '"e2"', 0) is None and mc.matching("a", '"e1"', 0) is not None
    mc.discard("a")
    assert mc.matching("a", '"e1"', 0) is None and len(mc) == 1
    mc.put("copied", Remote(FILE, "e4"))  # a copy's answer: unquoted
    assert mc.matching("copied", '"e4"', 0) is not None  # a listing's: quoted


def test_etags_compare_with_or_without_quotes():
    assert same_etag('"abc"', "abc") and same_etag("abc", "abc") and same_etag("", "")
    assert not same_etag('"abc"', '"abd"') and not same_etag("", '"abc"')


def test_dir_names_answer_misses_only_while_known_and_fresh():
    clock = Clock()
    d = DirNames(clock)
    assert not d.absent("x")  # not known: the bucket must be asked
    d.listed(d.gen, {"a"}, subdirs=0, listed_at=clock.now, ttl=5)
    assert d.absent("x") and not d.absent("a")
    d.added("x")
    assert not d.absent("x")
    d.removed("a")
    assert d.absent("a")
    clock.now += 5
    assert not d.absent("a")  # expired
    d.created_empty(ttl=5)
    assert d.absent("a") and d.subdirs == 0
    d.forgotten()
    assert not d.absent("a")


def test_dir_names_stop_remembering_a_directory_past_the_bound():
    d = DirNames(Clock())
    d.listed(d.gen, {f"n{i}" for i in range(MAX_KNOWN_NAMES)}, subdirs=0, listed_at=1000.0, ttl=5)
    assert d.absent("new")
    d.added("new")
    assert d.names is None and not d.absent("other")


def test_a_listing_that_raced_a_change_teaches_nothing():
    clock = Clock()
    d = DirNames(clock)
    gen = d.gen  # the listing starts
    d.added("made-meanwhile")
    d.listed(gen, {"a"}, subdirs=3, listed_at=clock.now, ttl=5)
    assert d.names is None and d.subdirs is None and not d.absent("made-meanwhile")
    d.listed(d.gen, None, subdirs=3, listed_at=clock.now, ttl=5)  # too many names to keep: the count still is
    assert d.names is None and d.subdirs == 3


def test_entry_changes_move_the_subdirectory_count_only_when_known():
    d = DirNames(Clock())
    d.entries_changed(+1)
    assert d.subdirs is None and d.changed_ns > 0
    d.created_empty(ttl=5)
    d.entries_changed(+1)
    d.entries_changed(-1)
    d.entries_changed(-1)
    assert d.subdirs == 0


def test_name_caches_keep_the_negative_cache_and_dir_names_consistent():
    clock = Clock()
    caches = NameCaches(negative_ttl=2, negative_entries=10, metadata_entries=10, clock=clock)
    table = InodeTable(DIR)
    parent = table.add(table.root, "d", DIR)
    caches.removed(parent, "x")
    assert caches.known_absent(parent, "x")  # negative cache
    caches.added(parent, "x")
    assert not caches.known_absent(parent, "x")
    caches.dir(parent).created_empty(ttl=60)
    caches.added(parent, "y")
    caches.forgotten(parent, "y")
    assert not caches.known_absent(parent, "z")  # nothing known any more
    caches.dir(parent).created_empty(ttl=60)
    assert caches.known_absent(parent, "z")


def test_each_directory_node_has_its_own_names():
    caches = NameCaches(negative_ttl=0, negative_entries=10, metadata_entries=10, clock=Clock())
    table = InodeTable(DIR)
    old = table.add(table.root, "d", DIR)
    caches.dir(old).created_empty(ttl=60)
    new = table.add(table.root, "d", DIR)  # the same path, a new directory
    assert caches.known_absent(old, "x") and not caches.known_absent(new, "x")


# ---------------------------------------------------------------------- against the server
async def list_dir(fs: Filesystem, ino: int) -> dict[str, Node]:
    """The whole directory through readdir, page after page, as the kernel reads it."""
    fh = await fs.opendir(ino)
    out: dict[str, Node] = {}
    start = 0
    try:
        while True:
            before = len(out)

            def reply(name: str, node: Node, next_id: int) -> bool:
                nonlocal start
                out[name], start = node, next_id
                return True

            await fs.readdir(fh, start, reply)
            if len(out) == before:
                return out
    finally:
        fs.releasedir(fh)


async def enoent(fs: Filesystem, parent: int, name: str) -> bool:
    try:
        await fs.lookup(parent, name)
    except FsError as exc:
        assert exc.errno == errno.ENOENT
        return True
    return False


async def write_file(fs: Filesystem, parent: int, name: str, data: bytes) -> Node:
    fh, node = await fs.create(parent, name, 0o644, os.O_WRONLY, 0, 0)
    assert await fs.write(fh, 0, data) == len(data)
    await fs.flush(fh)
    await fs.release(fh)
    return node


def test_a_miss_is_remembered_until_this_mount_creates_the_name(server, bucket, s3, tmp_path):
    async def body(fs: Filesystem):
        assert await enoent(fs, ROOT_INODE, "n")
        s3.put_object(Bucket=bucket, Key="n", Body=b"theirs")  # a second writer, meanwhile
        assert await enoent(fs, ROOT_INODE, "n")  # answered by the negative cache: no request
        await write_file(fs, ROOT_INODE, "n", b"ours")  # the cache said vacant: no EEXIST
        assert (await fs.lookup(ROOT_INODE, "n")).attrs.size == 4
        assert s3.get_object(Bucket=bucket, Key="n")["Body"].read() == b"ours"

    run_fs(server, bucket, tmp_path, body, negative_ttl=60)


def test_a_remembered_miss_expires_after_negative_ttl(server, bucket, s3, tmp_path):
    async def body(fs: Filesystem):
        assert await enoent(fs, ROOT_INODE, "n")
        s3.put_object(Bucket=bucket, Key="n", Body=b"theirs")
        with trio.fail_after(30):  # polled: the miss is forgotten once negative_ttl has passed
            while await enoent(fs, ROOT_INODE, "n"):
                await trio.sleep(0.05)
        assert (await fs.lookup(ROOT_INODE, "n")).attrs.size == 6

    run_fs(server, bucket, tmp_path, body, negative_ttl=0.5)


def test_without_a_negative_cache_a_second_writer_is_seen_at_once(server, bucket, s3, tmp_path):
    async def body(fs: Filesystem):
        assert await enoent(fs, ROOT_INODE, "n")
        s3.put_object(Bucket=bucket, Key="n", Body=b"theirs")
        assert (await fs.lookup(ROOT_INODE, "n")).attrs.size == 6
        with pytest.raises(FsError) as e:
            await fs.create(ROOT_INODE, "n", 0o644, os.O_WRONLY, 0, 0)
        assert e.value.errno == errno.EEXIST

    run_fs(server, bucket, tmp_path, body, negative_ttl=0)


def test_a_whole_listing_answers_misses_and_learns_our_changes(server, bucket, s3, tmp_path):
    s3.put_object(Bucket=bucket, Key="d/a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="d/b", Body=b"b")

    async def body(fs: Filesystem):
        d = await fs.lookup(ROOT_INODE, "d")
        assert sorted(await list_dir(fs, d.ino)) == ["a", "b"]
        assert fs.nlink(d) == 2  # a whole listing counted its subdirectories: none
        s3.put_object(Bucket=bucket, Key="d/late", Body=b"x")  # a second writer, after the listing
        assert await enoent(fs, d.ino, "late")  # the listing knows every name: no request
        await write_file(fs, d.ino, "mine", b"1")
        await fs.mkdir(d.ino, "sub", 0o755, 0, 0)
        assert fs.nlink(d) == 3
        await fs.unlink(d.ino, "a")
        s3.put_object(Bucket=bucket, Key="d/a", Body=b"again")  # re-created behind our back
        assert await enoent(fs, d.ino, "a")
        assert (await fs.lookup(d.ino, "mine")).attrs.size == 1
        sub = await fs.lookup(d.ino, "sub")
        s3.put_object(Bucket=bucket, Key="d/sub/x", Body=b"x")
        assert await enoent(fs, sub.ino, "x")  # made here: known empty

    run_fs(server, bucket, tmp_path, body, negative_ttl=60, stat_ttl=60)


def test_a_listing_is_trusted_only_for_stat_ttl(server, bucket, s3, tmp_path):
    async def body(fs: Filesystem):
        assert await list_dir(fs, ROOT_INODE) == {}
        s3.put_object(Bucket=bucket, Key="late", Body=b"x")
        assert (await fs.lookup(ROOT_INODE, "late")).attrs.size == 1  # stat_ttl 0: the bucket is asked

    run_fs(server, bucket, tmp_path, body, negative_ttl=0, stat_ttl=0)


def test_rename_moves_the_names_and_the_stored_metadata(server, bucket, s3, tmp_path):
    s3.put_object(Bucket=bucket, Key="a", Body=b"abc", Metadata={"mode": str(stat.S_IFREG | 0o600)})

    async def body(fs: Filesystem):
        a = await fs.lookup(ROOT_INODE, "a")  # one HEAD: the metadata cache learns the stored mode
        assert stat.S_IMODE(a.attrs.mode) == 0o600
        await fs.rename(ROOT_INODE, "a", ROOT_INODE, "b", noreplace=False)
        s3.put_object(Bucket=bucket, Key="a", Body=b"theirs")  # a second writer takes the old name
        assert await enoent(fs, ROOT_INODE, "a")  # the rename told the caches: no request
        fs.forget([(a.ino, a.lookups)])  # the kernel lets go: the next listing makes a new node
        listed = await list_dir(fs, ROOT_INODE)
        assert listed["b"] is not a
        assert stat.S_IMODE(listed["b"].attrs.mode) == 0o600  # from the metadata cache, under the new key

        s3.put_object(Bucket=bucket, Key="b", Body=b"changed")  # a new ETag: the cached metadata no longer fits
        fs.forget([(listed["b"].ino, listed["b"].lookups)])
        relisted = await list_dir(fs, ROOT_INODE)
        assert stat.S_IMODE(relisted["b"].attrs.mode) == 0o644 and relisted["b"].attrs.size == 7

    run_fs(server, bucket, tmp_path, body, negative_ttl=60, stat_ttl=60)


def test_a_local_file_not_yet_uploaded_wins_over_a_second_writer(server, bucket, s3, tmp_path):
    async def body(fs: Filesystem):
        fh, node = await fs.create(ROOT_INODE, "f", 0o644, os.O_WRONLY, 0, 0)
        s3.put_object(Bucket=bucket, Key="f", Body=b"theirs")
        assert await fs.lookup(ROOT_INODE, "f") is node  # ours, still being written
        assert "f" in await list_dir(fs, ROOT_INODE)
        assert await fs.write(fh, 0, b"ours") == 4
        await fs.release(fh)
        assert s3.get_object(Bucket=bucket, Key="f")["Body"].read() == b"ours"

    run_fs(server, bucket, tmp_path, body, negative_ttl=60, stat_ttl=60)


def test_a_listing_shows_the_mode_a_chmod_stored(server, bucket, s3, tmp_path):
    s3.put_object(Bucket=bucket, Key="f", Body=b"abc")

    async def body(fs: Filesystem):
        f = await fs.lookup(ROOT_INODE, "f")
        await fs.setattr(f.ino, mode=0o640)  # a self-copy: RGW answers it with an unquoted ETag
        fs.forget([(f.ino, f.lookups)])
        listed = await list_dir(fs, ROOT_INODE)
        assert listed["f"] is not f and stat.S_IMODE(listed["f"].attrs.mode) == 0o640  # no HEAD: the cache

    run_fs(server, bucket, tmp_path, body, stat_ttl=60)


def test_a_directory_is_listed_for_a_miss_only_while_its_names_are_unknown():
    now = [100.0]
    d = DirNames(lambda: now[0])
    assert d.worth_listing()  # never listed
    d.listed(d.gen, {"a"}, 0, now[0], ttl=2)
    assert not d.worth_listing() and d.absent("b") and not d.absent("a")
    now[0] += 3  # the listing's trust ran out
    assert d.worth_listing() and not d.absent("b")
    d.too_large(ttl=2)  # over the pages a miss may list: probed name by name for the TTL
    assert not d.worth_listing()
    now[0] += 3
    assert d.worth_listing()


def s3_requests(kind: str) -> float:
    """This process's S3 requests of one kind so far (every role and outcome)."""
    return sum(s.value for metric in store_metrics.REGISTRY.collect() for s in metric.samples
               if s.name == "fsgateway_s3_requests_total" and s.labels["kind"] == kind)


def test_concurrent_misses_in_an_unknown_directory_share_one_listing(server, bucket, s3, tmp_path):
    s3.put_object(Bucket=bucket, Key="d/a", Body=b"a")

    async def body(fs: Filesystem):
        d = await fs.lookup(ROOT_INODE, "d")
        lists = s3_requests("list")
        async with trio.open_nursery() as nursery:
            for i in range(5):  # each probes (its LIST name/); then one of them lists d/, the others wait for it
                nursery.start_soon(enoent, fs, d.ino, f"new{i}")
        assert s3_requests("list") - lists == 5 + 1
        before = {k: s3_requests(k) for k in ("list", "head")}
        assert await enoent(fs, d.ino, "later")  # the listing answers: no request
        assert {k: s3_requests(k) for k in ("list", "head")} == before
        assert not await enoent(fs, d.ino, "a")  # a name that is there is still asked for its attributes

    run_fs(server, bucket, tmp_path, body)
