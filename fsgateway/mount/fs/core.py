"""The filesystem: POSIX semantics over an object store, free of FUSE, as one facade over its parts.

Operations take inode numbers and names and raise `FsError(errno)`; the pyfuse3
adapter only translates. Each part owns one kind of state (README.md here):
name resolution and namespace ops, the name caches, listings, open files,
renames, attributes. Caches: node attributes are trusted for `stat_ttl`, a
bounded negative cache remembers recent misses (and a miss lists a small directory
once, so that the next misses there cost nothing), listings are one LIST per page
(no HEAD per entry), and every open of a file not being written revalidates with
one HEAD. Our own changes update the caches directly.
"""

from __future__ import annotations

import trio

from fsgateway.mount.fs.attributes import Attributes
from fsgateway.mount.fs.context import FsContext
from fsgateway.mount.fs.files import OpenFiles
from fsgateway.mount.fs.listing import Listing
from fsgateway.mount.fs.namespace import Namespace
from fsgateway.mount.fs.rename import Renamer
from fsgateway.mount.options import Config
from fsgateway.store.client import ObjectStore


class Filesystem:
    """What the adapter calls: each operation is the method of the part that owns its state."""

    def __init__(self, cfg: Config, store: ObjectStore, nursery: trio.Nursery, host_id: str, run_id: str) -> None:
        self.ctx = ctx = FsContext(cfg, store, nursery, host_id, run_id)
        self.cfg = cfg
        self.files = OpenFiles(ctx, host_id, run_id)
        self.attributes = Attributes(ctx, self.files)
        self.listing = Listing(ctx)
        self.namespace = Namespace(ctx, self.files, self.attributes, self.listing)
        self.renamer = Renamer(ctx, self.namespace, self.files)

        self.visible_attrs, self.nlink = ctx.visible_attrs, ctx.nlink
        ns = self.namespace
        self.lookup, self.forget, self.readlink = ns.lookup, ns.forget, ns.readlink
        self.create, self.mkdir, self.mknod, self.symlink = ns.create, ns.mkdir, ns.mknod, ns.symlink
        self.unlink, self.rmdir = ns.unlink, ns.rmdir
        self.rename = self.renamer.rename
        ls = self.listing
        self.opendir, self.readdir, self.releasedir = ls.opendir, ls.readdir, ls.releasedir
        f = self.files
        self.open, self.read, self.write, self.flush, self.fsync, self.release = (
            f.open, f.read, f.write, f.flush, f.fsync, f.release)
        self.flush_all = f.flush_all
        a = self.attributes
        self.getattr, self.setattr = a.getattr, a.setattr
        self.getxattr, self.listxattr, self.setxattr, self.removexattr = (
            a.getxattr, a.listxattr, a.setxattr, a.removexattr)
