"""The ``alphanode`` command line. Each command parses its options and delegates.

Every command reads ALPHANODE_DATABASE_URL (default: ``sqlite:///alphanode.db`` in
the working directory); ``--database`` overrides it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import inspect

from .settings import Settings

if TYPE_CHECKING:
    from models.trouble import StoreTrouble

log = logging.getLogger("alphanode")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "database", None):
        overrides["database_url"] = args.database
    return Settings(**overrides)


def _engine(settings: Settings) -> Any:
    import models

    return models.create_engine(settings.database_url)


_NO_STORE = object()


def _sqlite_file_missing(settings: Settings) -> bool:
    """A SQLite URL naming a file that does not exist (connecting would create an empty one)."""
    from models import normalize_url

    url = normalize_url(settings.database_url)
    return url.get_backend_name() == "sqlite" and not Path(url.database or "").exists()


def _no_store(settings: Settings) -> int:
    print(f"no store at {settings.database_url}: run `alphanode init` or `alphanode import` first", file=sys.stderr)
    return 1


def cmd_init(args: argparse.Namespace) -> int:
    import models

    settings = _settings(args)

    async def run() -> None:
        engine = _engine(settings)
        try:
            await models.create_all(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print(f"store ready at {settings.database_url}")
    return 0


def _progress(total: int, enabled: bool) -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    """A progress bar on standard error when it is a terminal."""
    if not enabled or not sys.stderr.isatty() or total < 2:
        return None, lambda: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
    task = progress.add_task("importing", total=total)
    progress.start()
    return (lambda n: progress.advance(task, n)), progress.stop


def cmd_import(args: argparse.Namespace) -> int:
    import models
    from store.importer import ImportStopped, import_sources
    from store.sources import collect_sources

    settings = _settings(args)
    sources, missing = collect_sources(args.paths)
    advance, stop = _progress(len(sources), not args.quiet)

    async def run() -> Any:
        engine = _engine(settings)
        try:
            await models.create_all(engine)
            return await import_sources(engine, sources, batch_size=args.batch_size, advance=advance)
        finally:
            await engine.dispose()

    stopped: ImportStopped | None = None
    try:
        receipt = asyncio.run(run())
    except ImportStopped as exc:
        stopped, receipt = exc, exc.receipt  # what was written before the store failed
    finally:
        stop()
    receipt.outcomes = missing + receipt.outcomes
    if args.json:
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
        print(f"error: {_store_named(args)}: {stopped.trouble.message}", file=sys.stderr)
        print(
            f"import stopped: {stopped.not_written} document(s) not written; the ones counted above are, each "
            "whole: run the import again once the store is fixed to complete it",
            file=sys.stderr,
        )
        return 1
    return 0 if receipt.ok else 1


def cmd_export(args: argparse.Namespace) -> int:
    from documents import render, to_dict
    from store.export import find_post_id, load_document

    settings = _settings(args)

    if _sqlite_file_missing(settings):
        return _no_store(settings)

    async def run() -> Any:
        engine = _engine(settings)
        try:
            async with engine.connect() as conn:
                if not await conn.run_sync(lambda c: inspect(c).has_table("post")):
                    return _NO_STORE
                post_id = await conn.run_sync(lambda c: find_post_id(c, reference=args.reference, slug=args.slug))
                return None if post_id is None else await conn.run_sync(load_document, post_id)
        finally:
            await engine.dispose()

    document = asyncio.run(run())
    if document is _NO_STORE:
        return _no_store(settings)
    if document is None:
        what = f"reference {args.reference!r}" if args.reference else f"slug {args.slug!r}"
        print(f"no post with {what}", file=sys.stderr)
        return 1
    if args.format == "json":
        sys.stdout.write(orjson.dumps(to_dict(document), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.buffer.write(render(document).encode("utf-8"))
        sys.stdout.flush()
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from documents.synth import write

    advance, stop = _progress(args.count, not args.quiet)
    try:
        written = write(Path(args.out), args.count, args.seed, start=args.start, progress=advance)
    finally:
        stop()
    print(f"wrote {written} document(s) to {args.out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    overrides: dict[str, Any] = {}
    if args.database:
        overrides["database_url"] = args.database
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.workers:
        overrides["workers"] = args.workers
    if args.reuse_port:
        overrides["reuse_port"] = True
    settings = Settings(**overrides)
    from .replica import setting_problem

    problem = setting_problem(settings.database_url, settings.read_database_url)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    _check_store(settings)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,  # always given: uvicorn would otherwise read $WEB_CONCURRENCY
        "log_level": settings.log_level,
        "access_log": False,
    }
    with _index_folder(settings) as index_folder:
        settings = settings.model_copy(update={"index_dir": index_folder})
        overrides["index_dir"] = index_folder
        if settings.workers == 1:
            from .app import create_app

            uvicorn.run(create_app(settings), **options)
            return 0
        _serve_workers(settings, overrides, options)
    return 0


def _serve_workers(settings: Settings, overrides: dict[str, Any], options: dict[str, Any]) -> None:
    # Several workers: uvicorn starts each as a new interpreter that builds its app from the
    # environment (``create_app()`` reads the settings), so this command's options go there too,
    # with the folders where the workers keep their metrics and share the fact index; they log
    # as this process does. With reuse_port each worker listens on a socket of its own
    # (server/supervisor.py), otherwise they share uvicorn's.
    import uvicorn

    from . import supervisor

    with _metrics_folder(settings) as folder:
        environment = {f"ALPHANODE_{name.upper()}": str(value) for name, value in overrides.items()}
        environment[MULTIPROC_ENV] = folder
        with _environment(environment):
            (supervisor.run if settings.reuse_port else uvicorn.run)(
                "server.app:create_app",
                factory=True,
                log_config=_log_config(logging.getLogger().level),
                **options,
            )


@contextlib.contextmanager
def _index_folder(settings: Settings) -> Iterator[str]:
    """The folder where the workers of this instance share the fact index (loaders.fact_files):
    ``ALPHANODE_INDEX_DIR``, or a new temporary folder removed at the end."""
    if settings.index_dir is not None:
        Path(settings.index_dir).mkdir(parents=True, exist_ok=True)
        yield settings.index_dir
        return
    folder = tempfile.mkdtemp(prefix="alphanode-index-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _log_config(level: int) -> dict[str, Any]:
    """uvicorn's logging, and the root logger's as ``main`` sets it: for each worker to apply."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["alphanode"] = {"format": LOG_FORMAT}
    config["handlers"]["alphanode"] = {
        "class": "logging.StreamHandler",
        "formatter": "alphanode",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["alphanode"], "level": logging.getLevelName(level)}
    return config


# prometheus-client's multiprocess mode (server/observe.py); not imported from there, so that this
# process, which serves nothing, does not load the metrics library.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_FILES = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")


@contextlib.contextmanager
def _metrics_folder(settings: Settings) -> Iterator[str]:
    """The folder where the workers of this instance keep their metrics, with none of an earlier
    run's in it: ``ALPHANODE_METRICS_DIR`` (created if need be), or a new temporary folder
    removed at the end."""
    if settings.metrics_dir is None:
        folder = tempfile.mkdtemp(prefix="alphanode-metrics-")
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    path = Path(settings.metrics_dir)
    path.mkdir(parents=True, exist_ok=True)
    for pattern in METRICS_FILES:  # only the metrics' files: the folder may hold something else
        for stale in path.glob(pattern):
            stale.unlink(missing_ok=True)
    yield str(path)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with these values, as it was again afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _check_store(settings: Settings) -> None:
    """Bring the store to the newest schema and read from it, before serving.

    A store in trouble (not a store, damaged, locked, missing its folder) then stops the command
    with one line naming it (``main``) instead of failing the server's start-up with a traceback.
    A read-only store that SQLite can open passes: it is served, and writes answer 503
    ``DATABASE_READ_ONLY``.
    """
    import models

    async def run() -> None:
        engine = _engine(settings)
        try:
            await models.create_all(engine)
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SELECT count(*) FROM post")
        finally:
            await engine.dispose()

    asyncio.run(run())


def cmd_export_schema(args: argparse.Namespace) -> int:
    from graph import schema_sdl

    sdl = schema_sdl()
    if args.check:
        current = Path(args.out).read_text(encoding="utf-8") if Path(args.out).exists() else ""
        if current != sdl:
            print(f"{args.out} is stale: run `alphanode export-schema`", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    if args.out == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.out).write_text(sdl, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    import models
    from store.similar import rebuild_similar

    settings = _settings(args)

    async def run() -> int:
        engine = _engine(settings)
        try:
            await models.create_all(engine)
            return await rebuild_similar(engine)
        finally:
            await engine.dispose()

    print(f"similar posts recomputed for {asyncio.run(run())} post(s)")
    return 0


def _run_sync(settings: Settings, fn: Callable[..., Any], *args: Any, write: bool = False) -> Any:
    """Run ``fn(connection, *args)`` in one transaction on the store."""

    async def run() -> Any:
        engine = _engine(settings)
        try:
            async with engine.connect() as conn:
                if write:
                    conn = await conn.execution_options(sqlite_immediate=True)
                async with conn.begin():
                    return await conn.run_sync(fn, *args)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cmd_token(args: argparse.Namespace) -> int:
    from store.tokens import TokenError, create_token, list_tokens, revoke_token

    settings = _settings(args)
    if _sqlite_file_missing(settings):
        return _no_store(settings)
    if args.action == "create":
        try:
            token = _run_sync(settings, create_token, args.name, args.role, write=True)
        except TokenError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"created {args.role} token {args.name!r}; it is shown once, keep it safe:", file=sys.stderr)
        print(token)
        return 0
    if args.action == "list":
        for info in _run_sync(settings, list_tokens):
            state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
            print(f"{info.name}\t{info.role}\t{info.prefix}…\tcreated {info.created_at:%Y-%m-%d %H:%M}\t{state}")
        return 0
    if _run_sync(settings, revoke_token, args.name, write=True):
        print(f"revoked the token {args.name!r}")
        return 0
    print(f"error: no active token named {args.name!r}", file=sys.stderr)
    return 1


def cmd_db(args: argparse.Namespace) -> int:
    from models import migrate

    settings = _settings(args)
    if args.action == "upgrade":
        asyncio.run(migrate.upgrade(settings.database_url, args.revision or "head"))
        print(f"store at {asyncio.run(migrate.current(settings.database_url))} (head {migrate.head()})")
    elif args.action == "downgrade":
        asyncio.run(migrate.downgrade(settings.database_url, args.revision))
        print(f"store at {asyncio.run(migrate.current(settings.database_url)) or 'base'}")
    else:
        revision = asyncio.run(migrate.current(settings.database_url))
        print(f"{revision or 'base (empty store)'}{' (head)' if revision == migrate.head() else ''}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from store import edit
    from store.export import find_post_id

    settings = _settings(args)
    if _sqlite_file_missing(settings):
        return _no_store(settings)

    async def run() -> Any:
        engine = _engine(settings)
        try:
            async with engine.connect() as conn:
                post_id = await conn.run_sync(lambda c: find_post_id(c, reference=args.reference))
            if post_id is None:
                return None
            return await edit.run_edit(engine, edit.rollback, post_id, args.to, author=args.author)
        finally:
            await engine.dispose()

    try:
        saved = asyncio.run(run())
    except edit.EditError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    if saved is None:
        print(f"no post with reference {args.reference!r}", file=sys.stderr)
        return 1
    print(f"{args.reference}: rolled back to revision {args.to}, now revision {saved.revision}")
    return 0


def _at_least_one(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alphanode", description="alphanode content API: import, export, serve.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and decisions")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(fn=fn)
        if name not in ("generate", "export-schema", "token", "db"):  # token and db: on each action
            p.add_argument("--database", help="database URL (default: $ALPHANODE_DATABASE_URL)")
        return p

    command("init", cmd_init, "create the store's tables if they do not exist")

    p = command("import", cmd_import, "import page-text documents: files, folders (their *.txt) and - for stdin")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--batch-size", type=int, default=2000, help="documents per transaction (default 2000)")
    p.add_argument("--json", action="store_true", help="print the receipt as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = command("export", cmd_export, "print a stored post as page text (or JSON)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--reference", help="the post's reference, such as anp-ref-001632-5801")
    which.add_argument("--slug", help="the post's slug")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = command("generate", cmd_generate, "write synthesized documents, deterministic for a seed")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True, help="folder to write to")
    p.add_argument("--start", type=int, default=1, help="number of the first document (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = command("serve", cmd_serve, "serve GraphQL (and GraphiQL) over HTTP with uvicorn")
    p.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default 8000)")
    p.add_argument(
        "--workers",
        type=_at_least_one,
        help="server processes sharing the port (default $ALPHANODE_WORKERS, or 1)",
    )
    p.add_argument(
        "--reuse-port",
        action="store_true",
        default=None,
        help="with several workers, a listening socket for each (SO_REUSEPORT): connections spread evenly "
        "(default $ALPHANODE_REUSE_PORT, or off)",
    )

    p = command("export-schema", cmd_export_schema, "write the GraphQL schema in SDL")
    p.add_argument("--out", default="schema.graphql", help="file to write, - for stdout (default schema.graphql)")
    p.add_argument("--check", action="store_true", help="fail if the file differs from the code's schema")

    command("similar", cmd_similar, "recompute every post's similar posts with the current weights")

    p = command("token", cmd_token, "manage the bearer tokens of editors and admins")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a token and print it once")
    create.add_argument("--name", required=True, help="who holds it")
    create.add_argument("--role", required=True, choices=("editor", "admin"))
    actions.add_parser("list", help="list tokens (never the tokens themselves)")
    revoke = actions.add_parser("revoke", help="revoke a token: requests with it get 401 from now on")
    revoke.add_argument("name", help="the token's name")
    for sub_parser in (create, revoke, actions.choices["list"]):
        sub_parser.add_argument("--database", help="database URL (default: $ALPHANODE_DATABASE_URL)")

    p = command("db", cmd_db, "migrate the store's schema (Alembic)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("upgrade", help="upgrade to REVISION (default: the newest)")
    up.add_argument("revision", nargs="?", default="head")
    down = actions.add_parser("downgrade", help="downgrade to REVISION (base: an empty store)")
    down.add_argument("revision")
    actions.add_parser("current", help="print the store's revision")
    for sub_parser in (up, down, actions.choices["current"]):
        sub_parser.add_argument("--database", help="database URL (default: $ALPHANODE_DATABASE_URL)")

    p = command("rollback", cmd_rollback, "make an earlier revision of a post its text again")
    p.add_argument("--reference", required=True, help="the post's reference")
    p.add_argument("--to", type=int, required=True, metavar="N", help="the revision number to go back to")
    p.add_argument("--author", default="command line", help="who rolls back (kept in the revision history)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format=LOG_FORMAT,
        stream=sys.stderr,
    )
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from models.trouble import diagnose

        trouble = diagnose(exc)
        if trouble is None:
            raise
        # The store's trouble (a full disk, a read-only or locked file, a file that is not a store, a
        # database that does not answer): one line naming the store and the cause, not a traceback.
        print(f"error: {_store_named(args)}: {trouble.message}{_sqlite_hint(args, trouble)}", file=sys.stderr)
        return 1


def _sqlite_hint(args: argparse.Namespace, trouble: StoreTrouble) -> str:
    """What the file system says about a SQLite store that cannot be opened, when it says something."""
    from models import normalize_url
    from models.trouble import READ_ONLY, UNAVAILABLE, sqlite_write_trouble

    url = normalize_url(getattr(args, "database", None) or Settings().database_url)
    if trouble.code != UNAVAILABLE or url.get_backend_name() != "sqlite":
        return ""
    found = sqlite_write_trouble(url.database or "")
    if found is None or found.code != READ_ONLY:
        return ""
    # SQLite opens a store in WAL mode on a read-only file system only while its -wal and -shm files exist.
    return f"; {found.message.removeprefix('the store is ')}"


def _store_named(args: argparse.Namespace) -> str:
    """The store as messages name it: a SQLite store's file, a PostgreSQL URL without its password."""
    from models import normalize_url

    try:
        url = normalize_url(getattr(args, "database", None) or Settings().database_url)
    except Exception:
        return "the store"
    if url.get_backend_name() == "sqlite":
        return url.database or "the store"
    return url.set(drivername="postgresql").render_as_string(hide_password=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
