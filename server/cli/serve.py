"""``alphanode serve``: the API over HTTP with uvicorn, in this process or in several workers."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from ..settings import Settings
from .common import LOG_FORMAT, Database, engine_for, overrides

commands = typer.Typer()

# prometheus-client's multiprocess mode (server/observe.py); not imported from there, so that this
# process, which serves nothing, does not load the metrics library.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_FILES = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")


@commands.command("serve", help="serve GraphQL (and GraphiQL) over HTTP with uvicorn")
def serve(
    host: Annotated[str | None, typer.Option("--host", help="interface to listen on (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="port to listen on (default 8000)")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="server processes sharing the port (default $ALPHANODE_WORKERS, or 1)",
        ),
    ] = None,
    reuse_port: Annotated[
        bool | None,
        typer.Option(
            "--reuse-port",
            help="with several workers, a listening socket for each (SO_REUSEPORT): connections spread evenly "
            "(default $ALPHANODE_REUSE_PORT, or off)",
        ),
    ] = None,
    database: Database = None,
) -> int:
    import uvicorn

    given = overrides(database, host=host, port=port, workers=workers, reuse_port=reuse_port or None)
    chosen = Settings(**given)
    from ..replica import setting_problem

    problem = setting_problem(chosen.database_url, chosen.read_database_url)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    _check_store(chosen)
    options: dict[str, Any] = {
        "host": chosen.host,
        "port": chosen.port,
        "workers": chosen.workers,  # always given: uvicorn would otherwise read $WEB_CONCURRENCY
        "log_level": chosen.log_level,
        "access_log": False,
    }
    try:
        with _index_folder(chosen) as index_folder:
            chosen = chosen.model_copy(update={"index_dir": index_folder})
            given["index_dir"] = index_folder
            if chosen.workers == 1:
                from ..app import create_app

                # uvicorn stops gracefully on SIGTERM, then raises the signal again for the
                # handler it found: the default one would end the process before the folder
                # is removed, so the signal is held until then (_Stopped), and raised again.
                signal.signal(signal.SIGTERM, _stop_on_signal)
                uvicorn.run(create_app(chosen), **options)
                return 0
            _serve_workers(chosen, given, options)
    except _Stopped as stopped:
        signal.signal(stopped.signum, signal.SIG_DFL)
        signal.raise_signal(stopped.signum)  # ends the process as the signal does
    return 0


class _Stopped(BaseException):
    """A signal that ends the server, held until its ``finally`` blocks have run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_on_signal(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def _serve_workers(chosen: Settings, given: dict[str, Any], options: dict[str, Any]) -> None:
    # Several workers: uvicorn starts each as a new interpreter that builds its app from the
    # environment (``create_app()`` reads the settings), so this command's options go there too,
    # with the folders where the workers keep their metrics and share the fact index; they log
    # as this process does. With reuse_port each worker listens on a socket of its own
    # (server/supervisor.py), otherwise they share uvicorn's.
    import uvicorn

    from .. import supervisor

    with _metrics_folder(chosen) as folder:
        environment = {f"ALPHANODE_{name.upper()}": str(value) for name, value in given.items()}
        environment[MULTIPROC_ENV] = folder
        with _environment(environment):
            (supervisor.run if chosen.reuse_port else uvicorn.run)(
                "server.app:create_app",
                factory=True,
                log_config=_log_config(logging.getLogger().level),
                **options,
            )


@contextlib.contextmanager
def _instance_folder(configured: str | None, prefix: str) -> Iterator[str]:
    """A folder of this instance: ``configured`` (created if need be, kept), or a new temporary
    folder removed at the end."""
    if configured is not None:
        Path(configured).mkdir(parents=True, exist_ok=True)
        yield configured
        return
    folder = tempfile.mkdtemp(prefix=prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _index_folder(chosen: Settings) -> contextlib.AbstractContextManager[str]:
    """The folder where the workers of this instance share the fact index (loaders.fact_files):
    ``ALPHANODE_INDEX_DIR``, or a new temporary folder removed at the end."""
    return _instance_folder(chosen.index_dir, "alphanode-index-")


def _log_config(level: int) -> dict[str, Any]:
    """uvicorn's logging, and the root logger's as the command line sets it: for each worker to apply."""
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


@contextlib.contextmanager
def _metrics_folder(chosen: Settings) -> Iterator[str]:
    """The folder where the workers of this instance keep their metrics, with none of an earlier
    run's in it: ``ALPHANODE_METRICS_DIR`` (created if need be), or a new temporary folder
    removed at the end."""
    with _instance_folder(chosen.metrics_dir, "alphanode-metrics-") as folder:
        for pattern in METRICS_FILES:  # only the metrics' files: the folder may hold something else
            for stale in Path(folder).glob(pattern):
                stale.unlink(missing_ok=True)
        yield folder


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


def _check_store(chosen: Settings) -> None:
    """Bring the store to the newest schema and read from it, before serving.

    A store in trouble (not a store, damaged, locked, missing its folder) then stops the command
    with one line naming it (``main``) instead of failing the server's start-up with a traceback.
    A read-only store that SQLite can open passes: it is served, and writes answer 503
    ``DATABASE_READ_ONLY``.
    """
    import models

    async def run() -> None:
        async with engine_for(chosen) as engine:
            await models.create_all(engine)
            async with engine.connect() as conn:
                await conn.exec_driver_sql("SELECT count(*) FROM post")

    asyncio.run(run())
