"""The commands that keep the service: bearer tokens, the store's schema migrations, the GraphQL schema file."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ..settings import Settings
from .common import Database, engine_for, no_store, settings, sqlite_file_missing

commands = typer.Typer()
token = typer.Typer()
db = typer.Typer()
commands.add_typer(token, name="token", help="manage the bearer tokens of editors and admins")
commands.add_typer(db, name="db", help="migrate the store's schema (Alembic)")


@commands.command("export-schema", help="write the GraphQL schema in SDL")
def export_schema(
    out: Annotated[
        str, typer.Option("--out", help="file to write, - for stdout (default schema.graphql)", show_default=False)
    ] = "schema.graphql",
    check: Annotated[bool, typer.Option("--check", help="fail if the file differs from the code's schema")] = False,
) -> int:
    from graph import schema_sdl

    sdl = schema_sdl()
    if check:
        current = Path(out).read_text(encoding="utf-8") if Path(out).exists() else ""
        if current != sdl:
            print(f"{out} is stale: run `alphanode export-schema`", file=sys.stderr)
            return 1
        print(f"{out} is up to date")
        return 0
    if out == "-":
        sys.stdout.write(sdl)
    else:
        Path(out).write_text(sdl, encoding="utf-8")
        print(f"wrote {out}")
    return 0


def _run_sync(chosen: Settings, fn: Callable[..., Any], *args: Any, write: bool = False) -> Any:
    """Run ``fn(connection, *args)`` in one transaction on the store."""

    async def run() -> Any:
        async with engine_for(chosen) as engine, engine.connect() as conn:
            if write:
                conn = await conn.execution_options(sqlite_immediate=True)
            async with conn.begin():
                return await conn.run_sync(fn, *args)

    return asyncio.run(run())


@token.command("create", help="create a token and print it once")
def token_create(
    name: Annotated[str, typer.Option("--name", help="who holds it", show_default=False)],
    role: Annotated[Literal["editor", "admin"], typer.Option("--role", show_default=False)],
    database: Database = None,
) -> int:
    from store.tokens import TokenError, create_token

    chosen = settings(database)
    if sqlite_file_missing(chosen):
        return no_store(chosen)
    try:
        made = _run_sync(chosen, create_token, name, role, write=True)
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"created {role} token {name!r}; it is shown once, keep it safe:", file=sys.stderr)
    print(made)
    return 0


@token.command("list", help="list tokens (never the tokens themselves)")
def token_list(database: Database = None) -> int:
    from store.tokens import list_tokens

    chosen = settings(database)
    if sqlite_file_missing(chosen):
        return no_store(chosen)
    for info in _run_sync(chosen, list_tokens):
        state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
        print(f"{info.name}\t{info.role}\t{info.prefix}…\tcreated {info.created_at:%Y-%m-%d %H:%M}\t{state}")
    return 0


@token.command("revoke", help="revoke a token: requests with it get 401 from now on")
def token_revoke(
    name: Annotated[str, typer.Argument(help="the token's name", show_default=False)],
    database: Database = None,
) -> int:
    from store.tokens import revoke_token

    chosen = settings(database)
    if sqlite_file_missing(chosen):
        return no_store(chosen)
    if _run_sync(chosen, revoke_token, name, write=True):
        print(f"revoked the token {name!r}")
        return 0
    print(f"error: no active token named {name!r}", file=sys.stderr)
    return 1


@db.command("upgrade", help="upgrade to REVISION (default: the newest)")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head", database: Database = None) -> int:
    from models import migrate

    url = settings(database).database_url
    asyncio.run(migrate.upgrade(url, revision or "head"))
    print(f"store at {asyncio.run(migrate.current(url))} (head {migrate.head()})")
    return 0


@db.command("downgrade", help="downgrade to REVISION (base: an empty store)")
def db_downgrade(revision: Annotated[str, typer.Argument(show_default=False)], database: Database = None) -> int:
    from models import migrate

    url = settings(database).database_url
    asyncio.run(migrate.downgrade(url, revision))
    print(f"store at {asyncio.run(migrate.current(url)) or 'base'}")
    return 0


@db.command("current", help="print the store's revision")
def db_current(database: Database = None) -> int:
    from models import migrate

    revision = asyncio.run(migrate.current(settings(database).database_url))
    print(f"{revision or 'base (empty store)'}{' (head)' if revision == migrate.head() else ''}")
    return 0
