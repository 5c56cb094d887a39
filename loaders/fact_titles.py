"""Post titles in the fact index: one UTF-8 buffer shareable between processes, and the title order."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("alphanode.facts")

TITLE_ORDER_FILE = "title-order.npy"


def save_array(path: Path, array: np.ndarray) -> bool:
    """Write ``array`` to ``path`` (NumPy's ``.npy`` format) whole or not at all: a new file renamed
    into place. False when it could not be written (the folder is gone, the disk full)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as out:
            np.save(out, array, allow_pickle=False)
        os.replace(partial, path)
    except OSError as exc:
        log.warning("%s not written: %s", path, exc)
        partial.unlink(missing_ok=True)
        return False
    return True


class Titles:
    """Post titles by id: UTF-8 in one buffer with each title's offset (shareable, never
    changed), and the titles set since in a dict beside it.

    One buffer is a twentieth of the objects 100,000 Python strings take, and can be mapped
    from a file by every worker of an instance (``loaders.fact_files``).
    """

    __slots__ = ("blob", "changed", "offsets")

    def __init__(self, blob: np.ndarray, offsets: np.ndarray, changed: dict[int, str] | None = None) -> None:
        self.blob = blob  # uint8: every title, one after another
        self.offsets = offsets  # int64, one more than titles: title i is blob[offsets[i]:offsets[i + 1]]
        self.changed = changed if changed is not None else {}

    @classmethod
    def packed(cls, titles: dict[int, str], size: int) -> Titles:
        """``titles`` (post id -> title) in one buffer, for ids below ``size``."""
        encoded = [b""] * size
        for post_id, title in titles.items():
            encoded[post_id] = title.encode()
        offsets = np.zeros(size + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)

    def __getitem__(self, post_id: int) -> str:
        found = self.changed.get(post_id)
        if found is not None:
            return found
        if post_id + 1 >= len(self.offsets):
            return ""
        return bytes(self.blob[self.offsets[post_id] : self.offsets[post_id + 1]]).decode()

    def set(self, post_ids: Sequence[int], titles: Sequence[str]) -> None:
        self.changed.update(zip(post_ids, titles, strict=True))

    def copy(self) -> Titles:
        return Titles(self.blob, self.offsets, dict(self.changed))

    def compacted(self, present: np.ndarray) -> Titles:
        """The titles of the posts ``present`` holds, all in one buffer."""
        return Titles.packed({int(i): self[int(i)] for i in np.flatnonzero(present)}, len(present))

    @property
    def nbytes(self) -> int:
        return int(self.blob.nbytes + self.offsets.nbytes) + sum(len(t) + 50 for t in self.changed.values())


@dataclass(slots=True)
class TitleOrder:
    """Public posts in title order (by code point, then id): for TITLE pages."""

    order: np.ndarray  # post ids (int32) in title order
    rank: np.ndarray | None = None  # by post id: the post's place in ``order``, made when first needed


__all__ = ["TITLE_ORDER_FILE", "TitleOrder", "Titles", "save_array"]
