"""Every read of FTS5's shadow tables, in one place (SQLite).

Ranking in memory (``loaders.postings``) needs, for bm25, the search index's number
of rows, its number of tokens and each post's length in tokens. FTS5 keeps them in
*shadow tables*, its internal storage, whose format SQLite does not promise to keep:

- ``post_fts_data``, the row of id 1 (the averages record): varints, the number of
  rows, then the number of tokens in each column (``fts5_index.c``, ``fts5_storage.c``);
- ``post_fts_docsize``: a row per post, ``sz`` the post's number of tokens in each
  column, as varints.

SQLite's varints here are FTS5's: big-endian groups of 7 bits, the high bit set on all
but the last byte (``sqlite3Fts5GetVarint``).

The public ways give exactly the same numbers (that test checks it) but cost far
more. Measured at 100,000 posts (``bench/fts_sizes.py``, figures in
``bench/README.md``), against 0.1 ms for the averages record and about 0.1 s for
``post_fts_docsize``:

- the number of rows, ``count(*)`` of ``post_fts``: 70-145 ms, a scan of its content;
- the number of tokens, the sum of a ``fts5vocab`` 'row' table's ``cnt``: 0.5-1.7 s;
- every post's length, a ``fts5vocab`` 'instance' table counted by post: 15-17 s; or
  every post's text tokenized by FTS5 again: 65-78 s;
- an ordinary table of lengths, written beside ``post_fts``, would read in about
  20 ms (and give the totals as its count and sum), but FTS5 tells no length at
  write time: each post would be tokenized again when written (0.65-0.78 ms a post,
  65-78 s more for an import of 100,000 posts, which takes 45-130 s), and existing
  stores would need a migration to fill it.

So these reads stay, fenced here; ``tests/graph/test_fts5_internals.py`` names each
shadow table and checks every value decoded here against the public interfaces on
a small store: a SQLite that changes the format fails that test, not a page. The
posts a write changed are read through the public ``post_fts`` table and their
lengths counted by FTS5's tokenizer (``loaders.postings``): as fast as the shadow
tables for a few posts.
"""

from __future__ import annotations

import numpy as np

from models.search import SEARCH_COLUMNS

from .db import RequestDb

# The shadow tables read here, by what they hold.
AVERAGES = "post_fts_data"
DOCSIZE = "post_fts_docsize"

_TOTALS = f"SELECT hex(block) FROM {AVERAGES} WHERE id = 1"  # FTS5's averages record
_SIZES = f"SELECT json_group_array(id), group_concat(hex(sz), '') FROM {DOCSIZE}"


def varints(data: bytes) -> np.ndarray:
    """SQLite varints (big-endian groups of 7 bits, the high bit set on all but the last byte), decoded."""
    b = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(b < 0x80)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    lengths = ends - starts + 1
    values = np.zeros(len(ends), dtype=np.int64)
    for k in range(int(lengths.max(initial=0))):
        more = lengths > k
        values[more] = (values[more] << 7) | (b[starts[more] + k] & 0x7F)
    return values


async def totals(db: RequestDb) -> tuple[int, int]:
    """FTS5's count of rows and of tokens in all of them (its averages record)."""
    block = await db.scalar(_TOTALS)
    values = varints(bytes.fromhex(block or ""))
    if not len(values):  # a new store's index has written no totals yet
        return 0, 0
    return int(values[0]), int(values[1:].sum())


async def post_sizes(db: RequestDb) -> np.ndarray:
    """Every post's length in tokens, by post id (0: no row), from ``post_fts_docsize``."""
    ids_text, hexes = (await db.fetch(_SIZES))[0]
    ids = np.fromstring(ids_text.strip()[1:-1], dtype=np.int64, sep=",")
    sizes = np.zeros(int(ids.max(initial=0)) + 1, dtype=np.int64)
    if len(ids):
        sizes[ids] = varints(bytes.fromhex(hexes)).reshape(len(ids), len(SEARCH_COLUMNS)).sum(axis=1)
    return sizes


__all__ = ["AVERAGES", "DOCSIZE", "post_sizes", "totals", "varints"]
