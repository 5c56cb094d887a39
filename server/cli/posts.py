"""The commands on the store's posts: init, import, export, generate, similar, rollback."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
import typer
from sqlalchemy import inspect

from .common import Database, Quiet, engine_for, no_store, progress, settings, sqlite_file_missing, store_named

if TYPE_CHECKING:
    from store.importer import ImportStopped, Receipt

commands = typer.Typer()

_NO_STORE = object()


@commands.command("init", help="create the store's tables if they do not exist")
def init(database: Database = None) -> int:
    import models

    chosen = settings(database)

    async def run() -> None:
        async with engine_for(chosen) as engine:
            await models.create_all(engine)

    asyncio.run(run())
    print(f"store ready at {chosen.database_url}")
    return 0


@commands.command("import", help="import page-text documents: files, folders (their *.txt) and - for stdin")
def import_(
    paths: Annotated[list[str], typer.Argument(metavar="PATH", show_default=False)],
    batch_size: Annotated[int, typer.Option("--batch-size", help="documents per transaction (default 2000)")] = 2000,
    json: Annotated[bool, typer.Option("--json", help="print the receipt as JSON")] = False,
    quiet: Quiet = False,
    database: Database = None,
) -> int:
    import models
    from store.importer import ImportStopped, import_sources
    from store.sources import collect_sources

    chosen = settings(database)
    sources, missing = collect_sources(paths)
    advance, stop = progress(len(sources), not quiet)

    async def run() -> Receipt:
        async with engine_for(chosen) as engine:
            await models.create_all(engine)
            return await import_sources(engine, sources, batch_size=batch_size, advance=advance)

    stopped: ImportStopped | None = None
    try:
        receipt = asyncio.run(run())
    except ImportStopped as exc:
        stopped, receipt = exc, exc.receipt  # what was written before the store failed
    finally:
        stop()
    receipt.outcomes = missing + receipt.outcomes
    _report(receipt, stopped, as_json=json)
    if stopped is not None:
        return 1
    return 0 if receipt.ok else 1


def _report(receipt: Receipt, stopped: ImportStopped | None, *, as_json: bool) -> None:
    """The receipt on standard output; why the import stopped, if it did, on standard error."""
    if as_json:
        report = receipt.as_dict()
        if stopped is not None:
            report["stopped"] = {
                "code": stopped.trouble.code,
                "message": stopped.trouble.message,
                "notWritten": stopped.not_written,
            }
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(receipt.summary())
        for outcome in receipt.rejected:
            print(f"rejected: {outcome.error}")
    if stopped is not None:
        print(f"error: {store_named()}: {stopped.trouble.message}", file=sys.stderr)
        print(
            f"import stopped: {stopped.not_written} document(s) not written; the ones counted above are, each "
            "whole: run the import again once the store is fixed to complete it",
            file=sys.stderr,
        )


@commands.command("export", help="print a stored post as page text (or JSON)")
def export(
    ctx: typer.Context,
    reference: Annotated[
        str | None, typer.Option("--reference", help="the post's reference, such as anp-ref-001632-5801")
    ] = None,
    slug: Annotated[str | None, typer.Option("--slug", help="the post's slug")] = None,
    format: Annotated[Literal["text", "json"], typer.Option("--format")] = "text",
    database: Database = None,
) -> int:
    from documents import render, to_dict
    from store.export import find_post_id, load_document

    if reference is None and slug is None:
        ctx.fail("one of the options --reference --slug is required")
    if reference is not None and slug is not None:
        ctx.fail("option --slug: not allowed with option --reference")
    chosen = settings(database)
    if sqlite_file_missing(chosen):
        return no_store(chosen)

    async def run() -> Any:
        async with engine_for(chosen) as engine, engine.connect() as conn:
            if not await conn.run_sync(lambda c: inspect(c).has_table("post")):
                return _NO_STORE
            post_id = await conn.run_sync(lambda c: find_post_id(c, reference=reference, slug=slug))
            return None if post_id is None else await conn.run_sync(load_document, post_id)

    document = asyncio.run(run())
    if document is _NO_STORE:
        return no_store(chosen)
    if document is None:
        what = f"reference {reference!r}" if reference else f"slug {slug!r}"
        print(f"no post with {what}", file=sys.stderr)
        return 1
    if format == "json":
        sys.stdout.write(orjson.dumps(to_dict(document), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.buffer.write(render(document).encode("utf-8"))
        sys.stdout.flush()
    return 0


@commands.command("generate", help="write synthesized documents, deterministic for a seed")
def generate(
    count: Annotated[int, typer.Option("--count", show_default=False)],
    seed: Annotated[int, typer.Option("--seed", show_default=False)],
    out: Annotated[str, typer.Option("--out", help="folder to write to", show_default=False)],
    start: Annotated[int, typer.Option("--start", help="number of the first document (default 1)")] = 1,
    quiet: Quiet = False,
) -> int:
    from documents.synth import write

    advance, stop = progress(count, not quiet)
    try:
        written = write(Path(out), count, seed, start=start, progress=advance)
    finally:
        stop()
    print(f"wrote {written} document(s) to {out}")
    return 0


@commands.command("similar", help="recompute every post's similar posts with the current weights")
def similar(database: Database = None) -> int:
    import models
    from store.similar import rebuild_similar

    chosen = settings(database)

    async def run() -> int:
        async with engine_for(chosen) as engine:
            await models.create_all(engine)
            return await rebuild_similar(engine)

    print(f"similar posts recomputed for {asyncio.run(run())} post(s)")
    return 0


@commands.command("rollback", help="make an earlier revision of a post its text again")
def rollback(
    reference: Annotated[str, typer.Option("--reference", help="the post's reference", show_default=False)],
    to: Annotated[int, typer.Option("--to", metavar="N", help="the revision number to go back to", show_default=False)],
    author: Annotated[
        str, typer.Option("--author", help="who rolls back (kept in the revision history)")
    ] = "command line",
    database: Database = None,
) -> int:
    from store import edit
    from store.export import find_post_id

    chosen = settings(database)
    if sqlite_file_missing(chosen):
        return no_store(chosen)

    async def run() -> Any:
        async with engine_for(chosen) as engine:
            async with engine.connect() as conn:
                post_id = await conn.run_sync(lambda c: find_post_id(c, reference=reference))
            if post_id is None:
                return None
            return await edit.run_edit(engine, edit.rollback, post_id, to, author=author)

    try:
        saved = asyncio.run(run())
    except edit.EditError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    if saved is None:
        print(f"no post with reference {reference!r}", file=sys.stderr)
        return 1
    print(f"{reference}: rolled back to revision {to}, now revision {saved.revision}")
    return 0
