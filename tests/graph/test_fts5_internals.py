"""FTS5's shadow tables as loaders/fts5_internals.py reads them, checked against SQLite's public interfaces.

loaders/fts5_internals.py holds every read of FTS5's internal storage. One test per
shadow table: when a SQLite upgrade changes its format, the test names it, and each
decoded value must equal what the public interfaces say (``count(*)`` of
``post_fts``, the ``fts5vocab`` tables, the posts' text tokenized by FTS5 itself).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from documents.synth import write
from loaders import RequestDb
from loaders.fts5_internals import AVERAGES, DOCSIZE, post_sizes, totals, varints
from loaders.postings import tokenizer
from models.search import SEARCH_COLUMNS

from .finding import OpenPool, import_folder

POSTS = 40
SEED = 5207


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fts5-internals") / "store.db"
    folder = tmp_path_factory.mktemp("fts5-internals-documents")
    write(folder, POSTS, seed=SEED)
    assert asyncio.run(import_folder(f"sqlite:///{path}", folder)).created == POSTS
    conn = sqlite3.connect(path)
    # A post with no row, and one whose row is empty: both must read as FTS5 counts them.
    conn.execute("DELETE FROM post_fts WHERE rowid = 3")
    conn.execute(
        "UPDATE post_fts SET title = '', intro = '', body = '', checklist = '', summary = '', topic = '' "
        "WHERE rowid = 5"
    )
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def public(store: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(store)
    for kind in ("row", "col", "instance"):
        conn.execute(f"CREATE VIRTUAL TABLE temp.v_{kind} USING fts5vocab(main, post_fts, {kind})")
    yield conn
    conn.close()


def read(store: Path, work: Callable[[RequestDb], Awaitable[Any]]) -> Any:
    pool = OpenPool(f"sqlite:///{store}")

    async def in_request() -> Any:
        db = RequestDb(pool.pool)
        try:
            return await work(db)
        finally:
            await db.close()

    try:
        return pool.loop.run_until_complete(in_request())
    finally:
        pool.close()


def test_the_shadow_tables_read_are_fts5s_own(public: sqlite3.Connection) -> None:
    names = {row[0] for row in public.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {AVERAGES, DOCSIZE} <= names
    assert (AVERAGES, DOCSIZE) == ("post_fts_data", "post_fts_docsize")


def test_post_fts_data_averages_record(store: Path, public: sqlite3.Connection) -> None:
    """``post_fts_data`` id 1: varints, rows then tokens per column."""
    (block,) = public.execute(f"SELECT block FROM {AVERAGES} WHERE id = 1").fetchone()
    record = varints(block).tolist()
    (rows,) = public.execute("SELECT count(*) FROM post_fts").fetchone()
    by_column = dict(public.execute("SELECT col, sum(cnt) FROM temp.v_col GROUP BY col").fetchall())
    assert record == [rows, *(by_column.get(c, 0) for c in SEARCH_COLUMNS)]
    (tokens,) = public.execute("SELECT sum(cnt) FROM temp.v_row").fetchone()
    assert rows == POSTS - 1
    assert read(store, totals) == (rows, tokens)


def test_post_fts_docsize_lengths(store: Path, public: sqlite3.Connection) -> None:
    """``post_fts_docsize``: a row per post of the index, each column's tokens as varints."""
    by_column: dict[int, dict[str, int]] = {}
    for doc, col, n in public.execute("SELECT doc, col, count(*) FROM temp.v_instance GROUP BY doc, col"):
        by_column.setdefault(doc, {})[col] = n
    for post_id, sz in public.execute(f"SELECT id, sz FROM {DOCSIZE}"):
        assert varints(sz).tolist() == [by_column.get(post_id, {}).get(c, 0) for c in SEARCH_COLUMNS], post_id
    content = public.execute(f"SELECT rowid, {', '.join(SEARCH_COLUMNS)} FROM post_fts").fetchall()
    lengths = tokenizer().sizes(content)
    sizes = read(store, post_sizes)
    assert {post_id: int(sizes[post_id]) for post_id in lengths} == lengths
    assert sizes[3] == 0 and lengths[5] == 0
    assert len(sizes) == POSTS + 1 and int(sizes.sum()) == read(store, totals)[1]


def test_a_new_index_has_no_averages_record_yet(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE VIRTUAL TABLE post_fts USING fts5({', '.join(SEARCH_COLUMNS)})")
    conn.close()
    assert read(path, totals) == (0, 0)
    assert read(path, post_sizes).tolist() == [0]
