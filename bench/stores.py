"""The benchmark's corpus and stores: generate once, import into SQLite and PostgreSQL, time the import.

The corpus is ``alphanode generate --count N --seed S`` written once and reused
while its marker file says it is complete. Each import runs the real command
line (``python -m server.cli import``) in a subprocess into an empty store, and
its rate is documents per second of wall-clock time, process start-up and the
similar-posts refresh included; the receipt's own time (the import alone) is
reported beside it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parents[1]

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_DATABASE = "alphanode_bench"


@dataclass(frozen=True, slots=True)
class Store:
    """Where one dialect's store lives."""

    dialect: str  # "sqlite" or "postgresql"
    url: str


@dataclass(slots=True)
class ImportTiming:
    documents: int
    created: int
    rejected: int
    wall_seconds: float
    receipt_seconds: float

    @property
    def docs_per_second(self) -> float:
        return self.created / self.wall_seconds if self.wall_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["docs_per_second"] = round(self.docs_per_second, 1)
        data["docs_per_second_receipt"] = (
            round(self.created / self.receipt_seconds, 1) if self.receipt_seconds else None
        )
        return data


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``alphanode ARGS`` in a subprocess of this interpreter, from the project root."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def ensure_corpus(folder: Path, count: int, seed: int) -> bool:
    """Generate the corpus unless a complete one is there; True when it was generated now."""
    marker = folder / ".complete"
    expected = f"count={count} seed={seed}\n"
    if marker.exists() and marker.read_text() == expected:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    done = run_cli("generate", "--count", str(count), "--seed", str(seed), "--out", str(folder), "--quiet")
    if done.returncode != 0:
        raise RuntimeError(f"alphanode generate failed:\n{done.stdout}{done.stderr}")
    marker.write_text(expected)
    return True


def sqlite_store(path: Path) -> Store:
    return Store("sqlite", f"sqlite:///{path}")


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def postgres_store(database: str = PG_DATABASE) -> Store:
    return Store("postgresql", f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}")


async def _admin(statement: str) -> Any:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=10)
    try:
        return await conn.fetchval(statement)
    finally:
        await conn.close()


def postgres_version() -> str:
    return str(asyncio.run(_admin("SHOW server_version")))


def postgres_database_exists(database: str = PG_DATABASE) -> bool:
    return bool(asyncio.run(_admin(f"SELECT 1 FROM pg_database WHERE datname = '{database}'")))


def create_postgres_database(database: str = PG_DATABASE) -> None:
    """An empty ``alphanode_bench`` or ``database`` (dropped first if a previous run left it)."""
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {database}"))
    asyncio.run(_admin(f"CREATE DATABASE {database}"))


def settle_postgres(database: str = PG_DATABASE) -> float:
    """VACUUM (ANALYZE) the bench database after an import; returns the seconds it took.

    PostgreSQL vacuums a table after enough inserts (autovacuum's insert threshold): after
    importing 100,000 posts that work would otherwise run in the background during the first
    measurements, which are the GraphQL API's, and not the hand-written endpoint's later ones.
    """

    async def vacuum() -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=10)
        try:
            await conn.execute("VACUUM (ANALYZE)")
        finally:
            await conn.close()

    started = time.perf_counter()
    asyncio.run(vacuum())
    return time.perf_counter() - started


def drop_postgres_database(database: str = PG_DATABASE) -> None:
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))


def import_corpus(store: Store, corpus: Path, expected: int) -> ImportTiming:
    """Import the corpus into the (empty) store with the real CLI, timed from outside."""
    started = time.perf_counter()
    done = run_cli("import", "--quiet", "--json", "--database", store.url, str(corpus))
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"alphanode import into {store.url} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    receipt = orjson.loads(done.stdout)
    timing = ImportTiming(
        documents=expected,
        created=int(receipt["created"]),
        rejected=len(receipt["rejected"]),
        wall_seconds=round(wall, 3),
        receipt_seconds=float(receipt["seconds"]),
    )
    if timing.created != expected or timing.rejected:
        raise RuntimeError(f"import into {store.url}: expected {expected} created, got {receipt}")
    return timing


def editor_token(store: Store) -> str:
    """A fresh editor token for the benchmark's writes (a new name each time: names of live tokens are unique)."""
    name = f"bench-{time.time_ns()}"
    done = run_cli("token", "create", "--name", name, "--role", "editor", "--database", store.url)
    if done.returncode != 0:
        raise RuntimeError(f"alphanode token create failed: {done.stderr}")
    return done.stdout.strip().splitlines()[-1]
