"""Batch forms are declared with their field and checked against the schema when an executor is built."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry

from graph.executor import BATCH_FORMS, BatchFormError, BatchForms, Executor, batched
from graph.post import Post
from graph.schema import executor, schema


@strawberry.type
class Shelf:
    name: str

    @strawberry.field
    @batched
    async def books(self, info: strawberry.Info) -> list[str]:
        return []

    @strawberry.field
    async def loose(self, info: strawberry.Info) -> list[str]:
        return []


@strawberry.type
class Query:
    @strawberry.field
    def shelf(self) -> Shelf:
        return Shelf(name="a")


shelf_schema = strawberry.Schema(query=Query)


async def books(shelves: list[Shelf], info: Any) -> list[list[str]]:
    return [[] for _ in shelves]


def test_the_products_batch_forms_match_its_schema() -> None:
    assert set(executor.batch) == {
        ("Post", "body"),
        ("Post", "images"),
        ("Post", "entities"),
        ("Post", "similarPosts"),
        ("PostMeta", "stack"),
        ("PostMeta", "tools"),
        ("PostMeta", "checklist"),
        ("PostMeta", "notes"),
    }


def test_a_batch_form_for_a_misspelled_field_raises_when_the_executor_is_built() -> None:
    forms = BatchForms()

    async def bokos(self: Shelf, info: Any) -> list[str]:  # not a field of the schema
        return []

    forms.of(Shelf.books)(books)
    forms.of(bokos)(books)
    with pytest.raises(BatchFormError, match=r"not in the schema: .*bokos"):
        Executor(shelf_schema, batch_forms=forms)


def test_a_misspelled_field_name_does_not_even_register() -> None:
    with pytest.raises(AttributeError):
        BATCH_FORMS.of(Post.bdy)  # type: ignore[attr-defined]


def test_a_batched_field_without_its_batch_form_raises_when_the_executor_is_built() -> None:
    with pytest.raises(BatchFormError, match=r"without a batch form: Shelf\.books"):
        Executor(shelf_schema)
    # The product's schema too, given no batch forms.
    with pytest.raises(BatchFormError, match=r"Post\.body"):
        Executor(schema, batch_forms=BatchForms())


def test_a_field_with_a_batch_form_not_declared_batched_is_accepted() -> None:
    forms = BatchForms()
    forms.of(Shelf.books)(books)
    forms.of(Shelf.loose)(books)
    built = Executor(shelf_schema, batch_forms=forms)
    assert set(built.batch) == {("Shelf", "books"), ("Shelf", "loose")}


def test_two_batch_forms_for_one_field_raise() -> None:
    forms = BatchForms()
    forms.of(Shelf.books)(books)
    with pytest.raises(BatchFormError, match="two batch forms"):
        forms.of(Shelf.books)(books)
