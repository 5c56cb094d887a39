"""What FTS5's numbers for bm25 cost through its shadow tables and through its public interfaces.

In-memory ranking (``loaders.postings``) needs the search index's number of rows, its
number of tokens and each post's length in tokens. This times, on an existing SQLite
store, every way of reading them and checks that each gives exactly the shadow tables'
values:

- ``Text.load`` and ``Text.delta`` (a few posts read again) as the API runs them;
- the shadow tables' reads alone (averages record, ``post_fts_docsize``, content of a few posts);
- rows by ``SELECT count(*) FROM post_fts``; tokens by summing ``cnt`` of a ``fts5vocab``
  'row' table; each post's length by counting a ``fts5vocab`` 'instance' table grouped by
  document, or by tokenizing every post's text with FTS5 (the cost an ordinary table of
  lengths would add to an import of the whole store), and reading such an ordinary table.

    python -m bench.fts_sizes --database var/fts/store.db [--repeat 3] [--changed 3] [--skip-scans]

The ordinary table lives in ``temp`` on the benchmark's own connection, so the store is
left as it was. ``--api-only`` times ``Text.load`` and ``Text.delta`` alone, with whatever
``loaders`` is on the path (to compare two versions of it). ``Text.delta`` reads the posts
again whether or not they changed: its cost is the same.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from loaders import RequestDb
from loaders.db import ReadPool
from loaders.postings import Text
from models.search import SEARCH_COLUMNS


def best(repeat: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of ``repeat`` runs in ms, and the last run's result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append((time.perf_counter() - start) * 1000)
    return min(times), result


async def through_api(path: str, repeat: int, changed: list[int], api_only: bool) -> dict[str, float]:
    """``Text.load`` and ``Text.delta`` as the API runs them, each on a request's snapshot."""
    pool = await ReadPool.open(f"sqlite:///{path}", 1)
    out: dict[str, float] = {}

    async def timed(name: str, work: Callable[[RequestDb], Any]) -> Any:
        times, result = [], None
        for _ in range(repeat):
            db = RequestDb(pool)
            try:
                start = time.perf_counter()
                result = await work(db)
                times.append((time.perf_counter() - start) * 1000)
            finally:
                await db.close()
        out[name] = min(times)
        return result

    try:
        text = await timed("Text.load", lambda db: Text.load(db, 0))
        await timed(f"Text.delta ({len(changed)} posts)", lambda db: text.delta(db, 1, changed))
        if not api_only:
            from loaders.fts5_internals import post_sizes, totals

            await timed("shadow: rows and tokens, post_fts_data id 1", totals)
            await timed("shadow: sizes, post_fts_docsize", post_sizes)
    finally:
        await pool.close()
    return out


def public_ways(path: str, repeat: int, changed: list[int], skip_scans: bool = False) -> dict[str, float]:
    """Each public way, timed, its values checked against the shadow tables'."""
    from loaders.fts5_internals import varints

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE VIRTUAL TABLE temp.bench_row USING fts5vocab(main, post_fts, row)")
    conn.execute("BEGIN")
    out: dict[str, float] = {}
    # What the shadow tables say (their reads are timed through the API).
    record = varints(conn.execute("SELECT block FROM post_fts_data WHERE id = 1").fetchone()[0])
    rows, tokens = int(record[0]), int(record[1:].sum())
    found = conn.execute("SELECT id, sz FROM post_fts_docsize").fetchall()
    shadow_sizes = {int(i): int(varints(sz).sum()) for i, sz in found}

    out["public: rows, count(*) FROM post_fts"], found = best(
        repeat, lambda: conn.execute("SELECT count(*) FROM post_fts").fetchone()[0]
    )
    assert found == rows, (found, rows)
    out["public: tokens, sum(cnt) FROM fts5vocab row"], found = best(
        repeat, lambda: conn.execute("SELECT sum(cnt) FROM temp.bench_row").fetchone()[0]
    )
    assert found == tokens, (found, tokens)
    out.update(every_length(conn, repeat, shadow_sizes, skip_scans))
    out.update(changed_posts(conn, repeat, changed, shadow_sizes))
    conn.execute("ROLLBACK")
    conn.close()
    return out


def every_length(
    conn: sqlite3.Connection, repeat: int, shadow_sizes: dict[int, int], skip_scans: bool
) -> dict[str, float]:
    """Every post's length, each public way (the two scans unless ``skip_scans``), timed and checked."""
    from loaders.postings import tokenizer

    out: dict[str, float] = {}
    columns = ", ".join(SEARCH_COLUMNS)

    def by_instance() -> dict[int, int]:
        conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.bench_instance USING fts5vocab(main, post_fts, instance)")
        return dict(conn.execute("SELECT doc, count(*) FROM temp.bench_instance GROUP BY doc").fetchall())

    def by_tokenizer() -> dict[int, int]:
        content = conn.execute(f"SELECT rowid, {columns} FROM post_fts").fetchall()
        sizes = {int(row[0]): 0 for row in content}
        for start in range(0, len(content), 2_000):
            sizes.update(tokenizer().sizes(content[start : start + 2_000]))
        return sizes

    if not skip_scans:
        out["public: sizes, fts5vocab instance GROUP BY doc"], found = best(repeat, by_instance)
        assert found == {k: v for k, v in shadow_sizes.items() if v}, "instance counts differ from docsize"
        out["public: sizes, every post tokenized by FTS5"], found = best(1, by_tokenizer)
        assert found == shadow_sizes, "tokenized sizes differ from docsize"

    conn.execute("CREATE TABLE temp.bench_size (post_id INTEGER PRIMARY KEY, tokens INTEGER NOT NULL)")
    conn.executemany("INSERT INTO temp.bench_size VALUES (?, ?)", shadow_sizes.items())

    def ordinary() -> np.ndarray:
        ids_text, sizes_text = conn.execute(
            "SELECT json_group_array(post_id), json_group_array(tokens) FROM temp.bench_size"
        ).fetchone()
        got = np.fromstring(ids_text[1:-1], dtype=np.int64, sep=",")
        sizes = np.zeros(int(got.max(initial=0)) + 1, dtype=np.int64)
        sizes[got] = np.fromstring(sizes_text[1:-1], dtype=np.int64, sep=",")
        return sizes

    out["public: sizes, an ordinary table of lengths"], found = best(repeat, ordinary)
    assert {k: int(found[k]) for k in shadow_sizes} == shadow_sizes
    return out


def changed_posts(
    conn: sqlite3.Connection, repeat: int, changed: list[int], shadow_sizes: dict[int, int]
) -> dict[str, float]:
    """A few posts' text and lengths, as a write's are read: through the shadow tables and publicly."""
    from loaders.fts5_internals import varints
    from loaders.postings import tokenizer

    out: dict[str, float] = {}
    listed = [orjson.dumps(changed).decode()]

    def changed_shadow() -> dict[int, int]:
        found = conn.execute(
            f"SELECT c.id, {', '.join(f'c.c{k}' for k in range(len(SEARCH_COLUMNS)))}, d.sz FROM post_fts_content c "
            "JOIN post_fts_docsize d ON d.id = c.id WHERE c.id IN (SELECT value FROM json_each(?))",
            listed,
        ).fetchall()
        tokenizer().frequencies([row[:-1] for row in found])
        return {int(row[0]): int(varints(row[-1]).sum()) for row in found}

    def changed_public() -> dict[int, int]:
        content = conn.execute(
            f"SELECT rowid, {', '.join(SEARCH_COLUMNS)} FROM post_fts WHERE rowid IN (SELECT value FROM json_each(?))",
            listed,
        ).fetchall()
        return tokenizer().tokenize(content)[1]

    out[f"shadow: {len(changed)} posts, content + docsize, tokenized"], found = best(repeat, changed_shadow)
    assert found == {k: shadow_sizes[k] for k in changed}
    out[f"public: {len(changed)} posts, post_fts by rowid, tokenized"], found = best(repeat, changed_public)
    assert found == {k: shadow_sizes[k] for k in changed}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="path of a SQLite store")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--changed", type=int, default=3, help="posts the write changes")
    parser.add_argument("--api-only", action="store_true", help="time Text.load and Text.delta only")
    parser.add_argument("--skip-scans", action="store_true", help="leave out the two ways that take seconds")
    args = parser.parse_args()
    conn = sqlite3.connect(args.database)
    (posts,) = conn.execute("SELECT count(*) FROM post").fetchone()
    top = conn.execute("SELECT max(id) FROM post").fetchone()[0]
    conn.close()
    changed = [top - 10 * k for k in range(args.changed)]
    print(
        f"{platform.node()} {platform.processor() or platform.machine()} {os.cpu_count()} cores, "
        f"SQLite {sqlite3.sqlite_version}, {posts} posts, load average {os.getloadavg()[0]:.2f}"
    )
    results = asyncio.run(through_api(args.database, args.repeat, changed, args.api_only))
    if not args.api_only:
        results.update(public_ways(args.database, args.repeat, changed, args.skip_scans))
    for name, ms in results.items():
        print(f"{ms:10.1f} ms  {name}")


if __name__ == "__main__":
    main()
