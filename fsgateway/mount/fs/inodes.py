"""The inode table: which inode numbers the kernel holds, and where they sit in the tree.

A node knows its parent and name rather than its key, so renaming a
directory moves every descendant at once and open files follow. Nodes live
while the kernel holds a lookup reference or a file handle is open; the table
is bounded by the kernel's own inode cache, not by bucket or directory size.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from fsgateway.formats.s3format import Attrs

if TYPE_CHECKING:
    from fsgateway.mount.io.writer import DirtyFile

ROOT_INODE = 1


@dataclass(eq=False)
class Node:
    """One inode: identity, tree position and the kernel's references.

    Also the inode's attributes as the kernel sees them (`attrs`, `etag` .. `in_bucket`: they live
    and die with the inode), its pending data (`dirty`, owned by fs/files.py: it pins the node like a
    reference), its write order and content version (`lock`, `version`) and a symlink's target.
    A directory's name state is in fs/names.py (`DirNames`). See fs/README.md.
    """

    ino: int
    parent: Node | None
    name: str
    attrs: Attrs
    # tree position and the kernel's references
    children: dict[str, Node] = field(default_factory=dict)
    detached: bool = False  # unlinked, or replaced by another object
    lookups: int = 0
    open_count: int = 0
    # the rest of the attributes as shown: what the bucket said, and when
    etag: str = ""
    sha256: str | None = None
    expires: float = 0.0  # monotonic time until which attrs are trusted
    remote_at: float = 0.0  # monotonic time the attributes were last taken from the bucket or a commit
    in_bucket: bool = True  # False for a created file not yet uploaded
    # content
    dirty: DirtyFile | None = None
    _lock: trio.Lock | None = field(default=None, repr=False)  # made by `lock` on first use
    version: int = 0  # bumped when this mount commits new content (open readers start over)
    pages_spoiled: bool = False  # a read failed the checksum: the next open must not keep the kernel's cache
    symlink_target: bytes | None = None

    @property
    def lock(self) -> trio.Lock:
        """Orders this file's writes, commits, unlink and rename (fs/README.md).

        Made on first use: a listing creates thousands of nodes that nobody locks, and a
        trio.Lock costs more than the rest of the node. Check and creation run without an
        await between them, so two tasks of the one trio thread always get the same lock.
        """
        if self._lock is None:
            self._lock = trio.Lock()
        return self._lock

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.attrs.mode)

    def path(self) -> str:
        """Path below the mount root, "" for the root, no leading slash."""
        parts: list[str] = []
        node: Node | None = self
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return "/".join(reversed(parts))


class InodeTable:
    def __init__(self, root_attrs: Attrs) -> None:
        self.root = Node(ROOT_INODE, None, "", root_attrs, lookups=1)
        self._by_ino: dict[int, Node] = {ROOT_INODE: self.root}
        self._next = ROOT_INODE + 1

    def __len__(self) -> int:
        return len(self._by_ino)

    def get(self, ino: int) -> Node | None:
        return self._by_ino.get(ino)

    def child(self, parent: Node, name: str) -> Node | None:
        return parent.children.get(name)

    def add(self, parent: Node, name: str, attrs: Attrs) -> Node:
        """A new node at parent/name; a different node there before is detached."""
        old = parent.children.get(name)
        if old is not None:
            self.detach(old)
        node = Node(self._next, parent, name, attrs)
        self._next += 1
        self._by_ino[node.ino] = node
        parent.children[name] = node
        return node

    def detach(self, node: Node) -> None:
        """Take a node out of the tree; it stays addressable by inode until released."""
        if node.parent is not None and node.parent.children.get(node.name) is node:
            del node.parent.children[node.name]
        node.detached = True
        self._maybe_drop(node)

    def move(self, node: Node, new_parent: Node, new_name: str) -> None:
        victim = new_parent.children.get(new_name)
        if victim is not None and victim is not node:
            self.detach(victim)
        if node.parent is not None and node.parent.children.get(node.name) is node:
            del node.parent.children[node.name]
        node.parent, node.name = new_parent, new_name
        new_parent.children[new_name] = node

    def looked_up(self, node: Node) -> None:
        """The kernel took one more reference: an entry in a lookup, create or readdirplus reply."""
        node.lookups += 1

    def forget(self, ino: int, nlookup: int) -> None:
        node = self._by_ino.get(ino)
        if node is None or node is self.root:
            return
        node.lookups = max(0, node.lookups - nlookup)
        self._maybe_drop(node)

    def release(self, node: Node) -> None:
        node.open_count -= 1
        self._maybe_drop(node)

    def drop_if_unused(self, node: Node) -> None:
        """For a node made for a listing entry the kernel then did not take."""
        self._maybe_drop(node)

    def _maybe_drop(self, node: Node) -> None:
        if node.lookups > 0 or node.open_count > 0 or node.dirty is not None or node is self.root:
            return
        if node.children:
            return  # a child still referenced keeps its parent's path alive
        self._by_ino.pop(node.ino, None)
        if node.parent is not None and node.parent.children.get(node.name) is node:
            del node.parent.children[node.name]
            self._maybe_drop(node.parent)
