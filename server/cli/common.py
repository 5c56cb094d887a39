"""What the commands share: their settings, the store's engine, progress bars and how a store is named."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from models.trouble import StoreTrouble

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

Database = Annotated[
    str | None,
    typer.Option("--database", help="database URL (default: $ALPHANODE_DATABASE_URL)", show_default=False),
]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="no progress bar")]

# The --database of the command running, for the messages that name its store.
_database: ContextVar[str | None] = ContextVar("database", default=None)


def overrides(database: str | None, **options: Any) -> dict[str, Any]:
    """The settings the command line gives: ``--database`` and each other option given (an option left out,
    or empty, keeps what the environment says)."""
    _database.set(database)
    given = {"database_url": database, **options}
    return {name: value for name, value in given.items() if value}


def settings(database: str | None) -> Settings:
    """The settings from the environment, with ``--database`` over ``ALPHANODE_DATABASE_URL``."""
    return Settings(**overrides(database))


def forget_database() -> None:
    """No command has named its store yet."""
    _database.set(None)


@contextlib.asynccontextmanager
async def engine_for(chosen: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the store, disposed of (its connections closed) when the block ends, however it ends."""
    import models

    engine = models.create_engine(chosen.database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def sqlite_file_missing(chosen: Settings) -> bool:
    """A SQLite URL naming a file that does not exist (connecting would create an empty one)."""
    from models import normalize_url

    url = normalize_url(chosen.database_url)
    return url.get_backend_name() == "sqlite" and not Path(url.database or "").exists()


def no_store(chosen: Settings) -> int:
    print(f"no store at {chosen.database_url}: run `alphanode init` or `alphanode import` first", file=sys.stderr)
    return 1


def progress(total: int, enabled: bool) -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    """A progress bar on standard error when it is a terminal: the function that advances it, and the one
    that takes it away."""
    if not enabled or not sys.stderr.isatty() or total < 2:
        return None, lambda: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
    task = bar.add_task("importing", total=total)
    bar.start()
    return (lambda n: bar.advance(task, n)), bar.stop


def store_named() -> str:
    """The store as messages name it: a SQLite store's file, a PostgreSQL URL without its password."""
    from models import normalize_url

    try:
        url = normalize_url(_database.get() or Settings().database_url)
    except Exception:
        return "the store"
    if url.get_backend_name() == "sqlite":
        return url.database or "the store"
    return url.set(drivername="postgresql").render_as_string(hide_password=True)


def sqlite_hint(trouble: StoreTrouble) -> str:
    """What the file system says about a SQLite store that cannot be opened, when it says something."""
    from models import normalize_url
    from models.trouble import READ_ONLY, UNAVAILABLE, sqlite_write_trouble

    url = normalize_url(_database.get() or Settings().database_url)
    if trouble.code != UNAVAILABLE or url.get_backend_name() != "sqlite":
        return ""
    found = sqlite_write_trouble(url.database or "")
    if found is None or found.code != READ_ONLY:
        return ""
    # SQLite opens a store in WAL mode on a read-only file system only while its -wal and -shm files exist.
    return f"; {found.message.removeprefix('the store is ')}"
