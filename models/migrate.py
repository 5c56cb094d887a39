"""Schema migrations with Alembic: upgrade, downgrade, current.

Every schema change ships a migration in ``migrations/versions``; a test fails
when the models and the migrations differ. On SQLite, Alembic alters a table
by copying it; foreign keys are switched off on the migration's connection so
that copying ``post`` does not cascade into its children, and checked after.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from .engine import create_engine, normalize_url

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


class MigrationError(RuntimeError):
    """The store is not at the schema this code needs, or a migration left it inconsistent."""


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_url(url).render_as_string(hide_password=False))
    return config


def migration_engine(url: str) -> AsyncEngine:
    return create_engine(url, foreign_keys=False)


async def _run(url: str, action: Any) -> Any:
    engine = migration_engine(url)
    config = alembic_config(url)
    try:
        async with engine.connect() as conn:

            def run(sync: Connection) -> Any:
                config.attributes["connection"] = sync
                before = MigrationContext.configure(sync).get_current_revision()
                result = action(config, sync)
                # Checked only when a migration ran: the check reads every reference of the store
                # (3.5 s at 100,000 posts), and every command and server start upgrades to head.
                moved = MigrationContext.configure(sync).get_current_revision() != before
                if sync.dialect.name == "sqlite" and moved:
                    broken = sync.execute(text("PRAGMA foreign_key_check")).all()
                    if broken:
                        raise MigrationError(f"the migration left {len(broken)} row(s) with broken references")
                return result

            result = await conn.run_sync(run)
            await conn.commit()
            return result
    finally:
        await engine.dispose()


async def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the store to ``revision`` (the newest by default)."""
    await _run(url, lambda config, _: command.upgrade(config, revision))


async def downgrade(url: str, revision: str) -> None:
    """Downgrade the store to ``revision`` (``base`` for an empty store)."""
    await _run(url, lambda config, _: command.downgrade(config, revision))


async def current(url: str) -> str | None:
    """The store's revision; None for a store without one."""
    return await _run(url, lambda _, sync: MigrationContext.configure(sync).get_current_revision())


def head() -> str | None:
    """The newest revision this code ships."""
    return ScriptDirectory.from_config(alembic_config("sqlite:///unused.db")).get_current_head()


def upgrade_sync(url: str, revision: str = "head") -> None:
    asyncio.run(upgrade(url, revision))
