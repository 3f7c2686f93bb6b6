"""Unit tests of the inode table: lifetimes follow the kernel's references."""

from __future__ import annotations

import stat

from fsgateway.formats.s3format import Attrs
from fsgateway.mount.fs.inodes import ROOT_INODE, InodeTable

DIR = Attrs(stat.S_IFDIR | 0o755, 0, 0, 0)
FILE = Attrs(stat.S_IFREG | 0o644, 0, 0, 0)


def test_paths_follow_renames_of_ancestors():
    t = InodeTable(DIR)
    a = t.add(t.root, "a", DIR)
    f = t.add(a, "f", FILE)
    b = t.add(t.root, "b", DIR)
    for n in (a, f, b):
        n.lookups = 1
    assert f.path() == "a/f"
    t.move(a, b, "renamed")
    assert f.path() == "b/renamed/f"
    assert t.child(t.root, "a") is None


def test_nodes_live_while_referenced_and_parents_while_children_do():
    t = InodeTable(DIR)
    d = t.add(t.root, "d", DIR)
    f = t.add(d, "f", FILE)
    d.lookups, f.lookups = 1, 2
    t.forget(d.ino, 1)
    assert t.get(d.ino) is d  # its child still needs its path
    t.forget(f.ino, 1)
    assert t.get(f.ino) is f
    f.open_count = 1
    t.forget(f.ino, 1)
    assert t.get(f.ino) is f  # open: stays
    t.release(f)
    assert t.get(f.ino) is None and t.get(d.ino) is None
    assert t.get(ROOT_INODE) is t.root and len(t) == 1


def test_replacing_a_name_detaches_the_old_node():
    t = InodeTable(DIR)
    old = t.add(t.root, "x", FILE)
    old.lookups = 1
    new = t.add(t.root, "x", DIR)
    assert old.detached and t.child(t.root, "x") is new
    assert t.get(old.ino) is old  # the kernel still holds it
    t.forget(old.ino, 1)
    assert t.get(old.ino) is None


def test_unreferenced_listing_node_can_be_dropped():
    t = InodeTable(DIR)
    n = t.add(t.root, "listed", FILE)
    t.drop_if_unused(n)
    assert t.get(n.ino) is None and t.child(t.root, "listed") is None
