"""Import page-text documents: idempotent, all or nothing per document, with a receipt.

Documents are parsed first; a rejected document never reaches a transaction.
The good ones are written in batches, one transaction each. When a batch fails
in the database (a unique key taken by a concurrent writer, say), it is rolled
back and its documents are written one by one, so that one bad document never
stops the good ones and never leaves a partial post. Similar posts of what
changed are refreshed at the end; posts waiting for that refresh are marked in
the same transaction that wrote them, so an interrupted import is finished by
the next one.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from documents import DocumentError, decode, parse

from .similar import refresh_similar
from .write import Incoming, Outcome, VocabularyCache, write_batch

log = logging.getLogger("alphanode.import")

BATCH_SIZE = 500
# Files a folder contributes: the synthesizer writes *.txt.
DOCUMENT_GLOB = "*.txt"


@dataclass(frozen=True, slots=True)
class Source:
    """A document to read: a file, standard input, or text handed over directly."""

    name: str
    read: Callable[[], bytes]


def file_source(path: Path) -> Source:
    return Source(str(path), path.read_bytes)


def text_source(name: str, text: str | bytes) -> Source:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return Source(name, lambda: data)


def collect_sources(paths: Sequence[str], stdin: Any = None) -> tuple[list[Source], list[Outcome]]:
    """Sources for the command line: files, folders (their ``*.txt``, recursively) and ``-``.

    Paths that do not exist come back as rejections rather than exceptions.
    """
    sources: list[Source] = []
    missing: list[Outcome] = []
    for raw in paths:
        if raw == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            data = stream.read()
            sources.append(text_source("<stdin>", data))
            continue
        path = Path(raw)
        if path.is_dir():
            sources += [
                file_source(p)
                for p in sorted(path.rglob(DOCUMENT_GLOB))
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            ]
        elif path.is_file():
            sources.append(file_source(path))
        else:
            missing.append(Outcome(raw, "", "rejected", error=f"{raw}: no such file or folder"))
    return sources, missing


@dataclass(slots=True)
class Receipt:
    """What an import did: counts, every rejected document with its error, and what changed."""

    outcomes: list[Outcome] = field(default_factory=list)
    similar_refreshed: int = 0
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def created(self) -> int:
        return self.count("created")

    @property
    def updated(self) -> int:
        return self.count("updated")

    @property
    def unchanged(self) -> int:
        return self.count("unchanged")

    @property
    def rejected(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "rejected"]

    @property
    def changed_post_ids(self) -> list[int]:
        return [o.post_id for o in self.outcomes if o.status in ("created", "updated") and o.post_id is not None]

    @property
    def ok(self) -> bool:
        return not self.rejected

    def summary(self) -> str:
        total = len(self.outcomes)
        rate = f", {total / self.seconds:,.0f} documents/s" if self.seconds > 0 and total else ""
        line = (
            f"{total} document(s): {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {len(self.rejected)} rejected"
            f" in {self.seconds:.2f}s{rate}; similar posts refreshed for {self.similar_refreshed} post(s)"
        )
        if total and self.created == self.updated == 0 and not self.rejected:
            line += "; nothing changed"
        return line

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": [{"document": o.name, "error": o.error} for o in self.rejected],
            "similarRefreshed": self.similar_refreshed,
            "seconds": round(self.seconds, 3),
        }


Progress = Callable[[int], None]


def _parse_all(sources: Iterable[Source], receipt: Receipt, advance: Progress | None) -> Iterator[Incoming]:
    for source in sources:
        try:
            data = source.read()
            text = decode(data, source.name)
            document = parse(text, source.name)
        except DocumentError as exc:
            log.info("rejected %s", exc)
            receipt.outcomes.append(Outcome(source.name, "", "rejected", error=str(exc)))
            if advance:
                advance(1)
            continue
        except OSError as exc:
            message = f"{source.name}: cannot be read ({exc.strerror or exc.__class__.__name__})"
            log.info("rejected %s", message)
            receipt.outcomes.append(Outcome(source.name, "", "rejected", error=message))
            if advance:
                advance(1)
            continue
        yield Incoming(source.name, text, document)


def _batches(incoming: Iterable[Incoming], size: int) -> Iterator[list[Incoming]]:
    """Batches in order, each holding a source id at most once (a repeat starts a new batch)."""
    batch: list[Incoming] = []
    seen: set[str] = set()
    for item in incoming:
        if len(batch) >= size or item.document.source_id in seen:
            yield batch
            batch, seen = [], set()
        batch.append(item)
        seen.add(item.document.source_id)
    if batch:
        yield batch


async def import_sources(
    engine: AsyncEngine,
    sources: Sequence[Source],
    *,
    batch_size: int = BATCH_SIZE,
    advance: Progress | None = None,
    refresh: bool = True,
) -> Receipt:
    """Import documents and refresh similar posts; returns the receipt."""
    started = time.perf_counter()
    receipt = Receipt()
    vocabulary = VocabularyCache()
    for batch in _batches(_parse_all(sources, receipt, advance), batch_size):
        receipt.outcomes += await _write(engine, batch, vocabulary)
        if advance:
            advance(len(batch))
    if refresh:
        receipt.similar_refreshed = await refresh_similar(engine)
    receipt.seconds = time.perf_counter() - started
    log.info("import: %s", receipt.summary())
    return receipt


async def _write(engine: AsyncEngine, batch: list[Incoming], vocabulary: VocabularyCache) -> list[Outcome]:
    try:
        return await _write_in_transaction(engine, batch, vocabulary)
    except DBAPIError:
        if len(batch) == 1:
            item = batch[0]
            log.exception("could not store %s", item.name)
            return [
                Outcome(
                    item.name,
                    item.document.source_id,
                    "rejected",
                    error=f"{item.name}: could not be stored: it conflicts with a post written at the same time",
                )
            ]
        log.warning("a batch of %d failed in the database; writing its documents one by one", len(batch))
        outcomes = []
        for item in batch:
            outcomes += await _write(engine, [item], vocabulary)
        return outcomes


async def _write_in_transaction(
    engine: AsyncEngine, batch: list[Incoming], vocabulary: VocabularyCache
) -> list[Outcome]:
    pending = vocabulary.copy()
    async with engine.connect() as conn:
        conn = await conn.execution_options(sqlite_immediate=True)
        async with conn.begin():
            outcomes = await conn.run_sync(write_batch, batch, pending)
    vocabulary.merge(pending)
    for outcome in outcomes:
        if outcome.status == "rejected":
            log.info("rejected %s", outcome.error)
    return outcomes
