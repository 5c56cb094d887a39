"""What a write costs at full size: time and SQL statements of editors' edits, in-process.

Each edit is ``store.edit.run_edit`` as the ``setStatus`` and ``updatePost``
mutations run it in a server: one write transaction (what the change moved of the post,
its revision, the store version, the purge log); the refresh of similar posts it
touched, which a server runs in the background (``store.refresher``), is timed apart after
each edit. Statements are counted with an SQLAlchemy ``before_cursor_execute``
listener on the engine (the write path is SQLAlchemy Core).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

from sqlalchemy import event, select

import models
from documents import Document
from models.engine import is_sqlite, sync_twin
from store import edit
from store.similar import refresh_similar


async def measure(url: str, edits: int = 30) -> dict[str, Any]:
    """Time ``edits`` setStatus edits and as many title updates on distinct posts; statements per edit."""
    engine = models.create_engine(url)
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    if is_sqlite(engine):  # an edit's transaction runs on the store's synchronous twin (store.edit.run_edit)
        event.listen(sync_twin(engine), "before_cursor_execute", count)
    post = models.table(models.Post)
    try:
        async with engine.connect() as conn:
            ids = list((await conn.execute(select(post.c.id).order_by(post.c.id).limit(edits * 2))).scalars())
        figures: dict[str, Any] = {}
        status = f"benchmarked-{time.time_ns()}"  # a status the posts do not have yet: each edit changes one
        for name, chosen in (("setStatus", ids[:edits]), ("updatePost (title)", ids[edits:])):
            times, counts, refreshes = [], [], []
            for post_id in chosen:
                statements = 0
                started = time.perf_counter()
                if name == "setStatus":
                    await edit.run_edit(engine, edit.set_status, post_id, status, author="bench", refresh=False)
                else:
                    await edit.run_edit(
                        engine,
                        edit.change_document,
                        post_id,
                        _retitle,
                        author="bench",
                        reason="benchmark",
                        refresh=False,
                    )
                times.append((time.perf_counter() - started) * 1000)
                counts.append(statements)
                started = time.perf_counter()
                await refresh_similar(engine)
                refreshes.append((time.perf_counter() - started) * 1000)
            figures[name] = {
                "refresh_mean_ms": round(statistics.fmean(refreshes), 1),
                "refresh_p50_ms": round(statistics.median(refreshes), 1),
                "edits": len(times),
                "mean_ms": round(statistics.fmean(times), 1),
                "p50_ms": round(statistics.median(times), 1),
                "max_ms": round(max(times), 1),
                "statements_mean": round(statistics.fmean(counts), 1),
                "statements_min": min(counts),
                "statements_max": max(counts),
            }
        return figures
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
        await engine.dispose()


def _retitle(document: Document) -> Document:
    return dataclasses.replace(document, title=document.title + " revised")
