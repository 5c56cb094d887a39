"""The typed GraphQL context, built once per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loaders import Loaders, RequestDb

if TYPE_CHECKING:
    import strawberry


@dataclass(slots=True)
class Context:
    """What every resolver may use: the request's database handle and loaders."""

    db: RequestDb
    loaders: Loaders
    request: Any = None

    @classmethod
    def create(cls, db: RequestDb, request: Any = None) -> Context:
        return cls(db=db, loaders=Loaders.create(db), request=request)


if TYPE_CHECKING:
    Info = strawberry.Info[Context, None]
else:
    import strawberry

    Info = strawberry.Info[Context, None]
