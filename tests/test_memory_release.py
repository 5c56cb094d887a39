"""``loaders.memory``: the C library function the servers rely on to give freed memory back.

``malloc_trim`` is glibc's; this names it, so that a platform (or a C library upgrade) without
it fails here rather than leaving every worker a few hundred megabytes larger unnoticed.
"""

from __future__ import annotations

import gc

import psutil

from loaders.memory import malloc_trim, release_memory


def test_glibcmalloc_trim_is_found() -> None:
    assert malloc_trim() is not None, "no malloc_trim in this process's C library"


def test_memory_freed_inside_the_heap_goes_back_to_the_system() -> None:
    process = psutil.Process()
    # Blocks of 4 KiB (past Python's small-object allocator: from malloc's heap), every tenth
    # kept, so that what is freed lies between kept blocks, where free() alone keeps it.
    blocks = [bytes(4096) for _ in range(40_000)]
    kept = blocks[::10]
    del blocks
    gc.collect()
    before = process.memory_full_info().uss
    assert release_memory()
    after = process.memory_full_info().uss
    assert before - after > 50 * 2**20, (before, after)
    assert len(kept) == 4_000
