"""Batch forms of resolvers: one call for all objects of a level, declared with their field.

A field whose resolver loads a relation is marked :func:`batched`, and its batch form
is registered with :meth:`BatchForms.of`, given the resolver itself (``Post.body``
after the class is defined), not names in strings. When an executor is built,
:meth:`BatchForms.bind` checks both ways: a batch form whose field is not in the
schema, or a batched field without its batch form, raises :class:`BatchFormError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from .internals import graphql_name, object_fields, resolver_function

BatchResolver = Callable[..., Awaitable[Sequence[Any]]]
R = TypeVar("R", bound=BatchResolver)  # a batch form keeps its own signature once registered
F = TypeVar("F", bound=Callable[..., Any])

_BATCHED = "__alphanode_batched__"


class BatchFormError(Exception):
    """Batch forms and the schema's fields do not match."""


def batched(resolver: F) -> F:
    """Declare that a field's resolver has a batch form (checked when an executor is built)."""
    setattr(resolver, _BATCHED, True)
    return resolver


class BatchForms:
    """Batch forms by the resolver function of the field they belong to."""

    def __init__(self) -> None:
        self._forms: dict[Callable[..., Any], BatchResolver] = {}

    def of(self, resolver: Callable[..., Any]) -> Callable[[R], R]:
        """Register the batch form of the field that ``resolver`` resolves."""
        if not callable(resolver):
            raise BatchFormError(f"a batch form must name a field's resolver, not {resolver!r}")

        def register(fn: R) -> R:
            if resolver in self._forms:
                raise BatchFormError(f"{_label(resolver)} has two batch forms")
            self._forms[resolver] = fn
            return fn

        return register

    def bind(self, strawberry_schema: Any, type_names: Sequence[str]) -> dict[tuple[str, str], BatchResolver]:
        """The batch forms by (type, field) name of this schema; raises when they do not match it."""
        bound: dict[tuple[str, str], BatchResolver] = {}
        found: set[Callable[..., Any]] = set()
        missing: list[str] = []
        for type_name in type_names:
            for field in object_fields(strawberry_schema, type_name) or ():
                func = resolver_function(field)
                if func is None:
                    continue
                form = self._forms.get(func)
                if form is not None:
                    bound[(type_name, graphql_name(strawberry_schema, field))] = form
                    found.add(func)
                elif getattr(func, _BATCHED, False):
                    missing.append(f"{type_name}.{graphql_name(strawberry_schema, field)}")
        unknown = [_label(f) for f in self._forms if f not in found]
        if unknown:
            raise BatchFormError(f"batch forms for fields not in the schema: {', '.join(sorted(unknown))}")
        if missing:
            raise BatchFormError(f"batched fields without a batch form: {', '.join(sorted(missing))}")
        return bound


def _label(resolver: Callable[..., Any]) -> str:
    return str(getattr(resolver, "__qualname__", resolver))


# The batch forms of the product's schema (graph.post registers them).
BATCH_FORMS = BatchForms()
