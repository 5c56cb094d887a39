"""Read and parse the documents of an import, in this process or in worker processes.

Each document comes back as one of three results, in the order it was given:
unchanged (its bytes hash to a stored post's content hash, so it is not even
parsed), rejected (with the same message whatever the process), or parsed into
the rows the store writes. Workers import this module, ``documents`` and
``store.rows`` only: no database driver, so they start fast.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sys
import threading
import time
from typing import Literal, TypeAlias

from documents import DocumentError, decode, parse

from .rows import PostRows, to_rows

# Timestamps of parsed rows until the writer sets them.
UNSET = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# What a worker is given: a name, and a path to read or the bytes themselves.
Task: TypeAlias = tuple[str, str | None, bytes | None]
Result: TypeAlias = (
    tuple[Literal["unchanged"], str, bytes]
    | tuple[Literal["rejected"], str, str]
    | tuple[Literal["parsed"], str, PostRows]
)

WORKER_NICENESS = 5
# The content hashes (sha256 digests) of the stored posts, in a worker process.
_known: frozenset[bytes] = frozenset()


def workers_can_start() -> bool:
    """Whether worker processes can start here: they run the parent's main module again
    (multiprocessing's "spawn"), which must be a module or a file (not ``python -`` say)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return getattr(main, "__spec__", None) is not None or path is None or os.path.exists(path)


def start_worker(known: frozenset[bytes]) -> None:
    """Initializer of a worker process: the stored content hashes, to skip unchanged documents.

    A worker also ends when its parent does, killed or not: nothing else would end it,
    and it would keep the parent's standard output open.
    """
    global _known
    _known = known
    # The parent writes what workers parse, and is the bottleneck of an import: let it go first.
    os.nice(WORKER_NICENESS)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def prepare_many(tasks: list[Task]) -> list[Result]:
    """Prepare documents in a worker process."""
    return [prepare(name, path, data, _known) for name, path, data in tasks]


def read_file(path: str) -> bytes:
    """A document's bytes (the importer's sources and the workers read files alike)."""
    with open(path, "rb") as file:
        return file.read()


def prepare(name: str, path: str | None, data: bytes | None, known: frozenset[bytes] | set[bytes]) -> Result:
    """Read (when ``data`` is None), hash and parse one document."""
    try:
        if data is None:
            assert path is not None
            data = read_file(path)
    except OSError as exc:
        return ("rejected", name, f"{name}: cannot be read ({exc.strerror or exc.__class__.__name__})")
    digest = hashlib.sha256(data).digest()
    if digest in known:
        return ("unchanged", name, digest)
    try:
        text = decode(data, name)
        document = parse(text, name)
    except DocumentError as exc:
        return ("rejected", name, str(exc))
    return ("parsed", name, to_rows(document, text, UNSET))
