"""The FUSE-free core driven directly (no kernel), against the real S3 server."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from fsgateway.mount.fs.context import FsError
from fsgateway.mount.fs.core import Filesystem
from fsgateway.mount.fs.inodes import ROOT_INODE
from fsgateway.mount.fs.names import NegativeCache
from tests.support.fs import run_fs
from tests.support.s3 import user_keys


@pytest.mark.tls
def test_create_write_commit_list_rename_unlink(server, bucket, s3, tmp_path):
    async def body(fs: Filesystem):
        fh, node = await fs.create(ROOT_INODE, "a.bin", 0o644, os.O_WRONLY, 0, 0)
        data = os.urandom(12 << 20)  # three 5 MiB parts: streams through the staging key
        for off in range(0, len(data), 1 << 20):
            await fs.write(fh, off, data[off : off + (1 << 20)])
        assert fs.visible_attrs(node).size == len(data)
        await fs.flush(fh)
        await fs.release(fh)
        assert s3.get_object(Bucket=bucket, Key="a.bin")["Body"].read() == data

        dh = await fs.opendir(ROOT_INODE)
        names: list[str] = []
        await fs.readdir(dh, 0, lambda name, node, next_id: names.append(name) is None)
        fs.releasedir(dh)
        assert names == ["a.bin"]

        await fs.rename(ROOT_INODE, "a.bin", ROOT_INODE, "b.bin", noreplace=False)
        assert user_keys(s3, bucket) == ["b.bin"]
        await fs.unlink(ROOT_INODE, "b.bin")
        with pytest.raises(FsError) as e:
            await fs.lookup(ROOT_INODE, "b.bin")
        assert e.value.errno == errno.ENOENT

    run_fs(server, bucket, tmp_path, body)


def test_lookup_types_and_errors(server, bucket, s3, tmp_path):
    s3.put_object(Bucket=bucket, Key="d/f", Body=b"1")
    s3.put_object(Bucket=bucket, Key="l", Body=b"d/f", Metadata={"mode": str(stat.S_IFLNK | 0o777)})

    async def body(fs: Filesystem):
        d = await fs.lookup(ROOT_INODE, "d")
        assert d.is_dir
        link = await fs.lookup(ROOT_INODE, "l")
        assert await fs.readlink(link.ino) == b"d/f"
        with pytest.raises(FsError) as e:
            await fs.rmdir(ROOT_INODE, "d")
        assert e.value.errno == errno.ENOTEMPTY
        with pytest.raises(FsError) as e:
            await fs.lookup(ROOT_INODE, "x" * 300)
        assert e.value.errno == errno.ENAMETOOLONG
        with pytest.raises(FsError) as e:
            await fs.rename(ROOT_INODE, "l", ROOT_INODE, "d", noreplace=True)
        assert e.value.errno == errno.EEXIST

    run_fs(server, bucket, tmp_path, body)


def test_read_only_refuses_writes(server, bucket, tmp_path):
    async def body(fs: Filesystem):
        with pytest.raises(FsError) as e:
            await fs.create(ROOT_INODE, "x", 0o644, os.O_WRONLY, 0, 0)
        assert e.value.errno == errno.EROFS

    run_fs(server, bucket, tmp_path, body, ro=True)


def test_negative_cache_is_bounded_and_expires():
    nc = NegativeCache(ttl=60, max_entries=3)
    for i in range(5):
        nc.add(1, f"n{i}")
    assert [nc.hit(1, f"n{i}") for i in range(5)] == [False, False, True, True, True]
    nc.discard(1, "n4")
    assert not nc.hit(1, "n4")
    expired = NegativeCache(ttl=0, max_entries=3)
    expired.add(1, "x")
    assert not expired.hit(1, "x")
