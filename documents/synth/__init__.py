"""Synthesize alphanode page-text documents for import and load testing.

Document ``i`` of a run depends only on ``(seed, i)``: it draws from its own
:class:`random.Random`, seeded from a hash of the two, so generating 10 or 100,000
documents gives the same first 10, and ``start`` resumes a run anywhere. The
module-level random generator is never used.

The content follows the one real document (``tests/fixtures/000_*.txt``): a
problem solved in a stack, a few sections of prose, one checklist section whose
list is also the meta block's checklist, images at the top and between sections,
and a meta block whose counts agree with the body (``payload paragraphs`` is the
number of body paragraphs, ``has images``/``image heavy`` follow the images).
Every document satisfies ``parse(render(doc)) == doc``.

Identifiers are unique within a run and across seeds: the source id is
``alphanode-{seed}-{i:06d}`` and the reference ``anp-ref-{seed}-{i:06d}-NNNN``.

The parts: ``vocabulary`` (the data posts are made of), ``draw`` (fast draws from a
generator), ``build`` (one document, step by step), and here the runs and their files.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from documents._model import Document
from documents._render import render

from .build import GENERATOR, document

__all__ = ["GENERATOR", "file_name", "synthesize", "write"]


def _check(count: int, seed: int, start: int) -> None:
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more, not {seed}")
    if start < 0:
        raise ValueError(f"start must be 0 or more, not {start}")


def synthesize(count: int, seed: int, start: int = 1) -> Iterator[Document]:
    """Yield ``count`` documents, numbered ``start``, ``start + 1``, ...

    Document ``i`` depends only on ``(seed, i)``: the same arguments always give the
    same documents, and a longer run begins with the documents of a shorter one.
    """
    _check(count, seed, start)
    return (document(seed, index) for index in range(start, start + count))


def _name(text: str, index: int) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return f"{index:06d}_{digest}.txt"


def file_name(document: Document, index: int) -> str:
    """The file name of document ``index``: ``000001_<16 hex digits of sha256 of its text>.txt``."""
    return _name(render(document), index)


def write(
    out_dir: Path,
    count: int,
    seed: int,
    start: int = 1,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``count`` synthesized documents into ``out_dir``; return how many were written.

    Each file holds exactly ``render(document)`` as UTF-8 and is named by
    :func:`file_name`. A file is written under a temporary name (a dot file ending
    in ``.tmp``, in the same directory) and then renamed into place, so a killed run
    never leaves a half-written ``.txt`` document. Running it again with the same
    arguments rewrites the same files with the same bytes. ``progress``, if given,
    is called after each file with the number written so far.
    """
    _check(count, seed, start)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    written = 0
    for index in range(start, start + count):
        text = render(document(seed, index))
        name = _name(text, index)
        temporary = out_dir / f".{name}.{pid}.tmp"
        try:
            temporary.write_bytes(text.encode("utf-8"))
            os.replace(temporary, out_dir / name)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        written += 1
        if progress is not None:
            progress(written)
    return written
