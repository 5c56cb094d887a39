"""Giving memory freed by a large load back to the system: glibc's ``malloc_trim``.

Loading the fact index at 100,000 posts reads every post's facts as a few large JSON
texts and parses them: about 220 MB passes through the heap, of which the index keeps
about 40 MB. glibc keeps what was freed in the process's heap for later allocations,
and SQLite's page cache keeps the pages the load scanned (``PRAGMA shrink_memory``
gives those back to the heap): measured on a 100,000-post store, a process held 283 MB
after the load and 169 MB after both (``bench/memory.py``). Each worker would
otherwise hold that much more for nothing.

``malloc_trim`` is a glibc function, not a C standard one: where the C library has none
(musl, macOS), nothing is released and the process holds the freed memory for reuse.
``tests/test_memory_release.py`` names it, so that a platform without it is told.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_memory() -> bool:
    """Return the free memory of the C heap to the system; True when the C library could."""
    trim = malloc_trim()
    if trim is None:
        return False
    return bool(trim(0))


__all__ = ["release_memory"]
