"""Shared fixtures: real SQLite files in a temporary folder, synthesized corpora."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import models
from documents.synth import write

ROOT = Path(__file__).resolve().parents[1]
SEED_DOCUMENT = ROOT / "samples" / "000_08d1a06747f7756e.txt"
OPERATIONS = ROOT / "server" / "operations"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


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
