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


def _loader(db: RequestDb, fn: Callable[[RequestDb, Sequence[K]], Awaitable[list[V]]]) -> DataLoader[K, V]:
    return DataLoader(load_fn=partial(fn, db))


@dataclass(slots=True, frozen=True)
class Loaders:
    """The request's loaders, one per relation."""

    post_by_id: DataLoader[int, Row | None]
    post_by_slug: DataLoader[str, Row | None]
    post_by_reference: DataLoader[str, Row | None]
    post_by_source_id: DataLoader[str, Row | None]
    blocks: DataLoader[int, list[Row]]
    images: DataLoader[int, list[Row]]
    stack: DataLoader[int, list[str]]
    tools: DataLoader[int, list[str]]
    entities: DataLoader[int, list[Row]]
    checklist: DataLoader[int, list[str]]
    notes: DataLoader[int, list[str]]
    similar: DataLoader[int, list[Row]]

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
        )


__all__ = ["Loaders", "ReadPool", "RequestDb", "Row", "batch", "posts", "vocabulary"]
