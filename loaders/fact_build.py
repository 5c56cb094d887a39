"""Build a store's fact index in a process of its own and publish it to the shared folder.

``python -m loaders.fact_build FOLDER`` with the store's URL on standard input (not on
the command line, where other users of the machine could read a password in it).

A full load of the index reads every post's facts as a few large JSON texts and parses
them: at 100,000 posts about 220 MB passes through the heap for an index of 24 MB. A
worker that did it kept 40 MiB more than the workers that only mapped its files, even
after giving back what the C heap could (``loaders.memory``): the Python heap's arenas and
the C heap stay fragmented. Built here, all of that goes when this process exits; the
worker that asked maps the files like the others (``FactIndex._advance``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from .db import ReadPool
from .fact_files import FactFiles, Snapshot
from .facts import FactIndex


async def build(url: str, folder: Path) -> Snapshot | None:
    """Load the index of the store at ``url`` and publish it in ``folder``."""
    pool = await ReadPool.open(url, 1)
    try:
        facts = await FactIndex().load(pool)
    finally:
        await pool.close()
    return FactFiles(folder).write(facts)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m loaders.fact_build FOLDER  (the store's URL on standard input)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    url = sys.stdin.readline().strip()
    snapshot = asyncio.run(build(url, Path(args[0])))
    return 0 if snapshot is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
