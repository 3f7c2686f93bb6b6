"""Directory listings (fsgateway/mount/fs/listing.py) against the real S3 server, through the reply
callback the adapter hands down: only the entries the kernel takes hold a lookup reference."""

from __future__ import annotations

import os

from fsgateway.mount.fs.core import Filesystem
from fsgateway.mount.fs.inodes import ROOT_INODE, Node
from tests.support.fs import run_fs


def test_only_entries_the_kernel_takes_are_counted(server, bucket, s3, tmp_path):
    for name in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=name, Body=name.encode())

    async def body(fs: Filesystem):
        fh = await fs.opendir(ROOT_INODE)
        taken: list[tuple[str, Node, int]] = []

        def full_after_two(name: str, node: Node, next_id: int) -> bool:
            if len(taken) == 2:
                return False  # the kernel's buffer is full: this entry is not sent
            taken.append((name, node, next_id))
            return True

        await fs.readdir(fh, 0, full_after_two)
        assert [(n, i) for n, _, i in taken] == [("a", 1), ("b", 2)]
        assert all(node.lookups == 1 for _, node, _ in taken)
        assert fs.ctx.table.child(fs.ctx.table.root, "c") is None  # made for the reply, then dropped

        rest: list[tuple[str, Node]] = []
        await fs.readdir(fh, 2, lambda name, node, next_id: rest.append((name, node)) is None)
        assert [n for n, _ in rest] == ["c"] and rest[0][1].lookups == 1
        fs.releasedir(fh)

        fs.forget([(node.ino, 1) for _, node, _ in taken])
        assert all(fs.ctx.table.get(node.ino) is None for _, node, _ in taken)

    run_fs(server, bucket, tmp_path, body)


def test_a_rewind_lists_again_and_counts_again(server, bucket, s3, tmp_path):
    s3.put_object(Bucket=bucket, Key="x", Body=b"x")

    async def body(fs: Filesystem):
        fh = await fs.opendir(ROOT_INODE)
        seen: list[Node] = []
        for _ in range(2):
            await fs.readdir(fh, 0, lambda name, node, next_id: seen.append(node) is None)
        assert len(seen) == 2 and seen[0] is seen[1] and seen[0].lookups == 2
        fs.releasedir(fh)

    run_fs(server, bucket, tmp_path, body)


def test_a_file_committed_while_the_list_is_answered_is_still_listed(server, bucket, s3, tmp_path):
    """The LIST answers from before our commit of `f` lands: the listing shows `f` all the same (it is
    ours, committed after the listing began), as it does while `f` is not uploaded yet."""
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")

    async def body(fs: Filesystem):
        fh, node = await fs.create(ROOT_INODE, "f", 0o644, os.O_WRONLY, 0, 0)
        store = fs.ctx.store
        real_list_page = store.list_page

        async def list_then_commit(*args, **kwargs):
            page = await real_list_page(*args, **kwargs)  # the bucket's answer, without f
            await fs.release(fh)  # f is committed before the answer is used
            return page

        store.list_page = list_then_commit  # type: ignore[method-assign]
        dfh = await fs.opendir(ROOT_INODE)
        names: list[str] = []
        await fs.readdir(dfh, 0, lambda name, node, next_id: names.append(name) is None)
        fs.releasedir(dfh)
        store.list_page = real_list_page  # type: ignore[method-assign]
        assert node.in_bucket
        assert sorted(names) == ["a", "f"]
        assert s3.head_object(Bucket=bucket, Key="f")["ContentLength"] == 0

    run_fs(server, bucket, tmp_path, body)
