"""Memory the bounds can count: large buffers are mapped memory, returned to the system when freed.

Parts and read chunks are megabytes each. With glibc's defaults, after the
first large buffer is freed its size becomes the mmap threshold, later ones
come from the heap, a growing buffer is copied when it moves, and freed memory
stays with the process (and with each worker thread's arena): the peak
resident size then exceeds what the buffers in use add up to. A fixed
threshold of 2 MiB keeps every part and read chunk in its own mapping (unmapped
on free) while a FUSE request (at most 1 MiB, a new `bytes` each time from
pyfuse3) comes from the heap and reuses the same pages: a fresh mapping per
request cost a page fault per 4 KiB, 0.16 s of the loop thread per 256 MiB
written. The heap keeps up to 8 MiB free at its top instead of trimming and
faulting it back per request; fewer arenas bound the worker threads' heaps.
"""


from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("fsgateway.memory")

M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3
M_TRIM_THRESHOLD = -1
MMAP_THRESHOLD = 2 << 20
TRIM_THRESHOLD = 8 << 20
ARENA_MAX = 2


def tune_allocator() -> bool:
    """Apply the settings above (glibc only); False where the C library has no mallopt."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        log.info("no mallopt in this C library: allocator left as it is")
        return False
    ok = (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
          and mallopt(M_ARENA_MAX, ARENA_MAX) == 1)
    if not ok:
        log.info("mallopt refused the memory settings: allocator left as it is")
    return ok
