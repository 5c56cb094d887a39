"""DataLoaders: one per relation, built per request so nothing is cached across requests.

Batches of one request run on one connection, one at a time (see ``db.py`` for
why); each relation costs one statement whatever the page size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from strawberry.dataloader import DataLoader

from . import batch, posts, vocabulary
from .db import ReadPool, RequestDb, Row

K = TypeVar("K")
V = TypeVar("V")


class Loader(DataLoader[K, V]):
    """A DataLoader that can also load a whole list of keys in one call.

    ``load`` batches keys asked for one at a time in the same tick, with a future
    per key; ``load_all`` is for callers that already hold every key of a level
    (the batched executor): it runs the batch function once for the keys not yet
    cached and caches the results, without a future per key in flight.
    """

    async def load_all(self, keys: Sequence[K]) -> list[V]:
        cache = self.cache_map
        missing = [key for key in dict.fromkeys(keys) if cache.get(key) is None]
        if missing:
            values = await self.load_fn(missing)
            loop = self.loop
            for key, value in zip(missing, values, strict=True):
                future = loop.create_future()
                future.set_result(value)
                cache.set(key, future)
        results = []
        for key in keys:
            found = cache.get(key)
            assert found is not None
            results.append(found.result() if found.done() else await found)
        return results


def _loader(db: RequestDb, fn: Callable[[RequestDb, Sequence[K]], Awaitable[list[V]]]) -> Loader[K, V]:
    return Loader(load_fn=partial(fn, db))


@dataclass(slots=True, frozen=True)
class Loaders:
    """The request's loaders, one per relation."""

    post_by_id: Loader[int, Row | None]
    post_by_slug: Loader[str, Row | None]
    post_by_reference: Loader[str, Row | None]
    post_by_source_id: Loader[str, Row | None]
    blocks: Loader[int, list[Row]]
    images: Loader[int, list[Row]]
    stack: Loader[int, list[str]]
    tools: Loader[int, list[str]]
    entities: Loader[int, list[Row]]
    checklist: Loader[int, list[str]]
    notes: Loader[int, list[str]]
    similar: Loader[int, list[Row]]
    revisions: Loader[int, list[Row]]

    @classmethod
    def create(cls, db: RequestDb) -> Loaders:
        return cls(
            post_by_id=_loader(db, batch.posts_by_id),
            post_by_slug=_loader(db, batch.posts_by_slug),
            post_by_reference=_loader(db, batch.posts_by_reference),
            post_by_source_id=_loader(db, batch.posts_by_source_id),
            blocks=_loader(db, batch.blocks_by_post_id),
            images=_loader(db, batch.images_by_post_id),
            stack=_loader(db, batch.stack_by_post_id),
            tools=_loader(db, batch.tools_by_post_id),
            entities=_loader(db, batch.entities_by_post_id),
            checklist=_loader(db, batch.checklist_by_post_id),
            notes=_loader(db, batch.notes_by_post_id),
            similar=_loader(db, batch.similar_by_post_id),
            revisions=_loader(db, batch.revisions_by_post_id),
        )


__all__ = ["Loader", "Loaders", "ReadPool", "RequestDb", "Row", "batch", "posts", "vocabulary"]
