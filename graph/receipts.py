"""Import receipts kept for editors: what each import did, newest first."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import strawberry

from loaders.sql import sql

from .auth import require_editor
from .context import Info
from .errors import BadUserInput
from .post import _datetime

MAX_RECEIPTS = 100
_RECEIPTS = sql(
    "SELECT author, finished_at, seconds, created, updated, unchanged, rejected, rejections "
    "FROM import_receipt ORDER BY id DESC LIMIT ?"
)


@strawberry.type(description="A document an import refused.")
class ReceiptRejection:
    document: str = strawberry.field(description="The document's name (its file, or the mutation).")
    error: str = strawberry.field(description="The document, line and what was expected there.")


@strawberry.type(description="What one import did (command line or importDocument).")
class ImportReceiptEntry:
    author: str = strawberry.field(description="Who imported: `import` for the command line, or the token's name.")
    finished_at: dt.datetime = strawberry.field(description="When the import ended (UTC).")
    seconds: float = strawberry.field(description="How long it took.")
    created: int = strawberry.field(description="Posts created.")
    updated: int = strawberry.field(description="Posts updated.")
    unchanged: int = strawberry.field(description="Documents identical to their stored post.")
    rejected: int = strawberry.field(description="Documents refused.")
    rejections: list[ReceiptRejection] = strawberry.field(
        description="The refused documents with why (the first 200 of them)."
    )

    @classmethod
    def from_row(cls, row: Any) -> ImportReceiptEntry:
        finished = _datetime(row["finished_at"])
        assert finished is not None
        return cls(
            author=row["author"],
            finished_at=finished,
            seconds=float(row["seconds"]),
            created=row["created"],
            updated=row["updated"],
            unchanged=row["unchanged"],
            rejected=row["rejected"],
            rejections=[
                ReceiptRejection(document=r["document"], error=r["error"] or "")
                for r in orjson.loads(row["rejections"])
            ],
        )


async def import_receipts(info: Info, first: int) -> list[ImportReceiptEntry]:
    require_editor(info.context.viewer, "importReceipts")
    if not 1 <= first <= MAX_RECEIPTS:
        raise BadUserInput(f"first must be between 1 and {MAX_RECEIPTS}, not {first}", argument="first")
    rows = await info.context.db.fetch(_RECEIPTS, (first,))
    return [ImportReceiptEntry.from_row(row) for row in rows]
