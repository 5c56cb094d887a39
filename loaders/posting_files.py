"""Posting lists in files, mapped by every worker of an instance (SQLite's searches ranked in memory).

Reading a term's posting list from FTS5 (``loaders.postings``) grows with the store: at
1,000,000 posts a word in nine posts of ten took 2.3 s. Kept in each worker's memory, within a
budget, the lists a site's searches need no longer fit at that size, and every eviction meant
reading a list again. So a list read from the store is also written here, once for the
instance, and mapped read-only by the worker that read it and by every other: evicting a
mapped list frees nothing anonymous and costs nothing to map again, and a worker never reads
a list another worker of its instance has read.

A list is the store's at the version it was read at (``read_at``). A reader at version ``w``
whose kept lists are based at ``b`` (``loaders.postings.Text``: the posts changed since ``b``
are overlaid on every list) can use a list read at ``v`` when ``b <= v <= w``: later changes
are in its overlay, and nothing in the list is newer than its snapshot.

Layout, in the instance's folder (``FactFiles.folder / "postings"``): each list is one
``.npy`` file of (post id, weighted frequency) records named by the term's hash and its
version, and a symbolic link named by the hash points at the newest; both are written under
temporary names and renamed into place, so a reader sees a whole list or none. The files
are kept within ``DISK_BUDGET`` bytes, the least recently written removed first; a worker
mapping a removed file keeps its pages until it lets go of the mapping. Any trouble with a
file (removed meanwhile, unreadable, a disk that is full) only means reading the list from
the store, as without files.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import uuid
from pathlib import Path

import numpy as np

log = logging.getLogger("alphanode.search")

# Bytes of posting list files kept per instance. 1,000,000 posts: 7 MiB for a word in 92% of them.
DISK_BUDGET = 2 * 2**30
# A list no link points at is removed once it is this old (seconds): younger, its link may be on its way.
STALE_AFTER = 30.0
RECORD = np.dtype([("id", "<i4"), ("frequency", "<f4")])
SUFFIX = ".npy"


def _name(term: str) -> str:
    return hashlib.blake2b(term.encode(), digest_size=12).hexdigest()


class PostingFiles:
    """The posting lists of one store, shared by the workers of an instance through ``folder``."""

    def __init__(self, folder: Path, budget: int = DISK_BUDGET) -> None:
        self.folder = folder
        self.budget = budget
        self.mapped = 0  # lists mapped from files written by this worker or another (tests, metrics)
        self.written = 0  # lists this worker wrote

    def read(self, term: str, oldest: int, newest: int) -> tuple[np.ndarray, np.ndarray, int] | None:
        """The newest list of ``term`` read at a version in ``oldest..newest``, mapped: (post ids,
        frequencies, its version); None when there is none."""
        link = self.folder / _name(term)
        try:
            target = os.readlink(link)
            version = int(target[len(link.name) + 1 : -len(SUFFIX)])
            if not oldest <= version <= newest:
                return None
            records = np.load(self.folder / target, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return None
        if records.dtype != RECORD or records.ndim != 1:
            return None
        self.mapped += 1
        return records["id"], records["frequency"], version

    def write(self, term: str, ids: np.ndarray, frequency: np.ndarray, version: int) -> tuple[np.ndarray, np.ndarray]:
        """Keep the list of ``term`` read at ``version``; the list mapped from its file (or as given,
        when it cannot be written)."""
        name = _name(term)
        final = f"{name}-{version}{SUFFIX}"
        records = np.empty(len(ids), dtype=RECORD)
        records["id"], records["frequency"] = ids, frequency
        temporary = self.folder / f".{uuid.uuid4().hex}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as out:
                np.save(out, records, allow_pickle=False)
            os.replace(temporary, self.folder / final)
            os.symlink(final, temporary)
            os.replace(temporary, self.folder / name)
            mapped = np.load(self.folder / final, mmap_mode="r", allow_pickle=False)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            log.warning("posting list not written to %s: %s", self.folder, exc.strerror or exc)
            return ids, frequency
        self.written += 1
        self._prune(keep=final)
        return mapped["id"], mapped["frequency"]

    def _prune(self, keep: str) -> None:
        """Remove lists no link points at (and temporary files a killed worker left), then the
        least recently written lists, until within the budget."""
        files: list[tuple[float, int, str]] = []
        current: set[str] = set()
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.folder):
                with contextlib.suppress(OSError):
                    if entry.is_symlink() and not entry.name.startswith("."):
                        current.add(os.readlink(entry.path))
                    else:
                        stat = entry.stat(follow_symlinks=False)
                        files.append((stat.st_mtime, stat.st_size, entry.name))
        total = sum(size for _, size, _ in files)
        settled = time.time() - STALE_AFTER
        for written, size, name in sorted(files):
            stale = name not in current and written < settled
            if name == keep or (not stale and total <= self.budget):
                continue
            with contextlib.suppress(OSError):
                os.unlink(self.folder / name)
                total -= size
                if name in current:
                    os.unlink(self.folder / name.rsplit("-", 1)[0])


__all__ = ["DISK_BUDGET", "PostingFiles"]
