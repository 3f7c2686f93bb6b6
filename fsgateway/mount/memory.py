"""Memory the bounds can count: large buffers are mapped memory, returned to the system when freed.

Parts and read chunks are megabytes each. With glibc's defaults, after the
first large buffer is freed its size becomes the mmap threshold, later ones
come from the heap, a growing buffer is copied when it moves, and freed memory
stays with the process (and with each worker thread's arena): the peak
resident size then exceeds what the buffers in use add up to. A fixed
threshold keeps every buffer of 128 KiB or more (a FUSE write, a part, a chunk) in its own mapping (grown with
mremap, unmapped on free); fewer arenas bound the small-object heaps of the
worker threads.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("fsgateway.memory")

M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 << 10
ARENA_MAX = 2


def tune_allocator() -> bool:
    """Apply the settings above (glibc only); False where the C library has no mallopt."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        log.info("no mallopt in this C library: allocator left as it is")
        return False
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_ARENA_MAX, ARENA_MAX) == 1
    if not ok:
        log.info("mallopt refused the memory settings: allocator left as it is")
    return ok
