"""Shared fixtures: every test of a store runs twice, on SQLite and on PostgreSQL.

The ``dialect`` fixture is parametrized over ``sqlite`` and ``postgresql`` (module
scope, so module-scoped stores are built once per database); ``database_url``,
``engine`` and ``new_store_url`` follow it. SQLite stores are files in a temporary
folder. PostgreSQL stores are databases on the server at 127.0.0.1:5432 (user
``postgres``; ``ALPHANODE_TEST_POSTGRES=host:port`` names another), created for
this test session with a unique name (``alphanode_test_<pid>_<random>_<n>``) and
dropped when the session ends, also when tests fail. ``database_url`` gives
each test the session's database emptied (every table truncated, ids restarting
at 1), which is what a new SQLite file is and much faster than a new database;
``new_store_url`` gives a database of its own (module-scoped stores, stores a
test needs to be empty of tables).

When no PostgreSQL server answers, every postgresql test is skipped with the
reason below; the header of the run says which it is. ``-m "not postgres"`` runs
the SQLite half only.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from functools import cache
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import models
from documents.synth import write

ROOT = Path(__file__).resolve().parents[1]
SEED_DOCUMENT = ROOT / "samples" / "000_08d1a06747f7756e.txt"
OPERATIONS = ROOT / "server" / "operations"

POSTGRES_HOST, _, _port = os.environ.get("ALPHANODE_TEST_POSTGRES", "127.0.0.1:5432").rpartition(":")
POSTGRES_PORT = int(_port)
POSTGRES_USER = "postgres"
# Databases to connect to for CREATE and DROP DATABASE, the first that answers.
MAINTENANCE_DATABASES = ("postgres", "test")
POSTGRES_UNREACHABLE = f"PostgreSQL not reachable at {POSTGRES_HOST}:{POSTGRES_PORT}"
CONNECT_TIMEOUT = 2.0

DIALECTS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


# -- PostgreSQL --------------------------------------------------------------


async def _connect(database: str) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=POSTGRES_HOST, port=POSTGRES_PORT, user=POSTGRES_USER, database=database, timeout=CONNECT_TIMEOUT
    )


@cache
def postgres_probe() -> tuple[str, str] | None:
    """(maintenance database, server version) of the PostgreSQL server, or None when none answers; asked once."""

    async def probe() -> tuple[str, str] | None:
        for database in MAINTENANCE_DATABASES:
            try:
                conn = await _connect(database)
            except (TimeoutError, OSError):
                return None  # no server: the next database would not answer either
            except asyncpg.PostgresError:
                continue  # no such database, say: try the next
            try:
                return database, str(await conn.fetchval("SHOW server_version"))
            finally:
                await conn.close()
        return None

    return asyncio.run(probe())


class PostgresServer:
    """The PostgreSQL server of the test session: the databases it created, to drop at the end."""

    def __init__(self, maintenance_database: str) -> None:
        self.maintenance_database = maintenance_database
        self.prefix = f"alphanode_test_{os.getpid()}_{secrets.token_hex(4)}"
        self.created: list[str] = []

    @staticmethod
    def url(database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"

    def create_database(self, driver: str = "postgresql") -> str:
        """A new, empty database; its URL (``postgresql://`` or, say, ``postgresql+asyncpg://``)."""
        name = f"{self.prefix}_{len(self.created) + 1}"

        async def create() -> None:
            conn = await _connect(self.maintenance_database)
            try:
                # A linguistic collation (ICU en-US, as on a typical production server) where the
                # server has one, so that ordering text is tested where it differs from code point
                # order; template0 has no other sessions to get in the way of copying it.
                for options in (
                    "TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'",
                    "TEMPLATE template0 ENCODING 'UTF8'",
                    "",
                ):
                    try:
                        await conn.execute(f'CREATE DATABASE "{name}" {options}')
                        return
                    except asyncpg.PostgresError:
                        if not options:
                            raise
            finally:
                await conn.close()

        asyncio.run(create())
        self.created.append(name)
        return self.url(name, driver)

    def drop_database(self, *names: str) -> None:
        """Drop databases this session created, ending their sessions (a failed test may leave some open)."""

        async def drop() -> None:
            conn = await _connect(self.maintenance_database)
            try:
                for name in names:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        assert set(names) <= set(self.created), "only databases of this session are dropped"
        asyncio.run(drop())

    def drop_databases(self) -> None:
        self.drop_database(*self.created)
        self.created.clear()

    @staticmethod
    def empty(url: str) -> None:
        """Empty every table of the database, ids restarting at 1: a clean slate for the next test."""
        database = url.rsplit("/", 1)[1]

        async def truncate() -> None:
            conn = await _connect(database)
            try:
                # The schema's revision stays: the tables are there, only their rows go.
                rows = await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
                tables = [f'public."{row[0]}"' for row in rows]
                if tables:
                    # A session a previous test left in a transaction would block TRUNCATE: fail instead.
                    await conn.execute("SET lock_timeout = '20s'")
                    await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
            finally:
                await conn.close()

        asyncio.run(truncate())


def pytest_report_header(config: pytest.Config) -> str:
    found = postgres_probe()
    if found is None:
        return f"databases: sqlite; postgresql SKIPPED: {POSTGRES_UNREACHABLE}"
    return f"databases: sqlite, postgresql {found[1]} at {POSTGRES_HOST}:{POSTGRES_PORT}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    found = postgres_probe()
    if found is None:
        pytest.skip(POSTGRES_UNREACHABLE)
    server = PostgresServer(found[0])
    try:
        yield server
    finally:
        server.drop_databases()


@pytest.fixture(scope="session")
def postgres_database(postgres_server: PostgresServer) -> str:
    """The session's database for function-scoped stores (emptied before each test by ``database_url``)."""
    return postgres_server.create_database()


# -- stores on either database -----------------------------------------------


@pytest.fixture(scope="module", params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    """The database the module's tests run on: ``sqlite`` or ``postgresql``."""
    name: str = request.param
    if name == "postgresql":
        request.getfixturevalue("postgres_server")  # skips when no server answers
    return name


@pytest.fixture(scope="module")
def new_store_url(
    dialect: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], str]:
    """A function giving the URL of a new store with no tables yet: a new file or a new database."""
    if dialect == "sqlite":
        return lambda label: f"sqlite:///{tmp_path_factory.mktemp(label) / 'store.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    # The URL with the driver named, as it may be given too (database_url leaves it out).
    return lambda label: server.create_database("postgresql+asyncpg")


@pytest.fixture
def database_url(dialect: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store for this test."""
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_database")
    PostgresServer.empty(url)
    return url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = models.create_engine(database_url)
    await models.create_all(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 80 synthesized documents and the real seed document."""
    folder = tmp_path_factory.mktemp("corpus")
    write(folder, 80, seed=11)
    shutil.copy(SEED_DOCUMENT, folder / SEED_DOCUMENT.name)
    return folder
