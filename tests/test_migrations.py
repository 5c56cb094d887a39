"""Schema migrations: the models and the migrations agree, and downgrades and upgrades keep every post.

On both databases: the schema the migrations build is the schema the models
describe (Alembic's autogenerate comparison, with the filter of
``migrations/env.py`` for what SQLModel does not describe); a store with posts
goes down to ``0001`` and back up to head without losing a byte of any post,
the editors' tables starting empty; ``base`` leaves no table behind.
"""

from __future__ import annotations

import ast
import asyncio
import re
import sqlite3
import warnings
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import SAWarning
from sqlmodel import SQLModel

from graph.node import encode_id
from models import migrate
from tests.conftest import DIALECTS, ROOT, SEED_DOCUMENT
from tests.editing import (
    ARCHIVE_POST,
    EDITOR_VIEW,
    SEED_BYTES,
    SEED_REFERENCE,
    UPDATE_POST,
    cli,
    cli_export,
    cli_import,
    export_all,
    graphql,
    issue_tokens,
    on_store,
    post_graphql,
    saved,
    serve,
    sha256,
    small_corpus,
    table_names,
)

MIGRATIONS = ROOT / "migrations"
# A test of what migrations do on PostgreSQL alone: not run (rather than skipped) on SQLite.
POSTGRES_ONLY = pytest.mark.parametrize("dialect", [p for p in DIALECTS if p.id == "postgresql"], indirect=True)
SEED_SOURCE_ID = "alphanode-001632"


def _kept(node: ast.stmt) -> bool:
    """An import, a constant (an upper-case name) or ``include_object``."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        return True
    if isinstance(node, ast.Assign):
        return all(isinstance(target, ast.Name) and target.id.isupper() for target in node.targets)
    return isinstance(node, ast.FunctionDef) and node.name == "include_object"


def include_object_of_env() -> Callable[..., bool]:
    """``include_object`` of migrations/env.py, with the names it uses (the module itself runs migrations
    when imported, so only its imports, constants and that function are taken)."""
    path = MIGRATIONS / "env.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = ast.Module(body=[node for node in tree.body if _kept(node)], type_ignores=[])
    namespace: dict[str, Any] = {}
    exec(compile(module, str(path), "exec"), namespace)
    include: Callable[..., bool] = namespace["include_object"]
    return include


def head_revision() -> str:
    """The newest revision of migrations/versions: the one no other revises."""
    revisions, revised = set(), set()
    for path in (MIGRATIONS / "versions").glob("[0-9]*.py"):
        source = path.read_text(encoding="utf-8")
        revisions.add(re.search(r'^revision: str = "(\w+)"', source, re.M).group(1))  # type: ignore[union-attr]
        down = re.search(r'^down_revision: .* = "(\w+)"', source, re.M)
        if down:
            revised.add(down.group(1))
    (head,) = revisions - revised
    return head


def schema_diff(url: str, include_object: Callable[..., bool] | None) -> list[Any]:
    def compare(conn: Connection) -> list[Any]:
        opts: dict[str, Any] = {"compare_type": True}
        if include_object is not None:
            opts["include_object"] = include_object
        with warnings.catch_warnings():
            # SQLAlchemy cannot reflect SQLite's expression indexes (the two orderings'); env.py leaves
            # them out of the comparison, and SQLAlchemy says it skipped them.
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index", SAWarning)
            diff: list[Any] = compare_metadata(MigrationContext.configure(conn, opts=opts), SQLModel.metadata)
        return diff

    result: list[Any] = on_store(url, compare)
    return result


def row_counts(url: str, tables: set[str]) -> dict[str, int]:
    return on_store(
        url, lambda conn: {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in sorted(tables)}
    )


def leftovers(conn: Connection) -> list[str]:
    """Every schema object of the store but the migration bookkeeping."""
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
        found = [f"{kind} {name}" for kind, name in rows]
    else:
        rows = conn.execute(
            text(
                "SELECT c.relkind, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public'"
            )
        )
        found = [f"{kind} {name}" for kind, name in rows]
        types = conn.execute(
            text(
                "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd') "
            )
        )
        found += [f"type {name}" for (name,) in types]
        functions = conn.execute(
            text(
                "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public'"
            )
        )
        found += [f"function {name}" for (name,) in functions]
    return sorted(item for item in found if "alembic_version" not in item)


# -- the models and the migrations ----------------------------------------------------


def test_the_migrations_build_the_schema_the_models_describe(database_url: str) -> None:
    asyncio.run(migrate.upgrade(database_url))
    include_object = include_object_of_env()
    assert schema_diff(database_url, include_object) == []
    # The comparison sees the store: without env.py's filter, the search index (which SQLModel does not
    # describe) is reported as a table the models lack.
    unfiltered = schema_diff(database_url, None)
    removed = {d[1].name for d in unfiltered if d[0] == "remove_table"}
    assert removed & {"post_fts", "post_search"}, unfiltered


@POSTGRES_ONLY  # SQLite's FTS5 always finds matches through its own index
def test_on_postgresql_searches_match_through_a_function_that_keeps_the_gin_plan(database_url: str) -> None:
    asyncio.run(migrate.upgrade(database_url))
    settings = on_store(
        database_url,
        lambda conn: conn.execute(
            text("SELECT proconfig FROM pg_proc WHERE proname = 'alphanode_search_ids'")
        ).scalar_one(),
    )
    assert settings == ["enable_seqscan=off"]


@POSTGRES_ONLY  # SQLite's FTS5 keeps its own index
def test_on_postgresql_each_tsvector_is_kept_in_its_row(database_url: str) -> None:
    """Ranking reads every match's tsvector: storage MAIN keeps it out of the TOAST table (0006)."""
    storage = text(
        "SELECT attstorage::text FROM pg_attribute WHERE attrelid = 'post_search'::regclass AND attname = 'document'"
    )
    found = text("SELECT count(*) FROM post_search WHERE document @@ plainto_tsquery('english', 'staging')")
    cli_import(database_url, SEED_DOCUMENT)
    assert on_store(database_url, lambda conn: conn.execute(storage).scalar_one()) == "m"
    matches = on_store(database_url, lambda conn: conn.execute(found).scalar_one())
    assert matches == 1
    asyncio.run(migrate.downgrade(database_url, "0005"))
    assert on_store(database_url, lambda conn: conn.execute(storage).scalar_one()) == "x"
    asyncio.run(migrate.upgrade(database_url))
    assert on_store(database_url, lambda conn: conn.execute(storage).scalar_one()) == "m"
    assert on_store(database_url, lambda conn: conn.execute(found).scalar_one()) == matches


def test_db_current_prints_the_revision_and_head(database_url: str) -> None:
    head = head_revision()
    run = cli("db", "upgrade", "--database", database_url)
    assert (run.code, run.text) == (0, f"store at {head} (head {head})\n"), run.err
    run = cli("db", "current", "--database", database_url)
    assert (run.code, run.text) == (0, f"{head} (head)\n"), run.err
    assert migrate.head() == head


# -- down and up -------------------------------------------------------------------------


def test_downgrade_to_0001_and_upgrade_keep_every_post_and_empty_the_editors_tables(
    new_store_url: Callable[[str], str], tmp_path: Path
) -> None:
    # Given a store at head with posts, tokens, revisions, receipts, an edit and an archived post.
    url = new_store_url("down-up")
    cli_import(url, small_corpus(tmp_path / "corpus"))
    token = issue_tokens(url, ("alice", "editor"))["alice"]
    seed = encode_id("Post", SEED_SOURCE_ID)
    with serve(url) as client:
        saved(graphql(client, ARCHIVE_POST, {"id": seed}, token))
        variables = {"id": seed, "input": {"title": "edited before the downgrade"}, "expectedHash": sha256(SEED_BYTES)}
        saved(graphql(client, UPDATE_POST, variables, token))
    before = export_all(url)
    assert len(before) == 21
    at_head = table_names(url)
    counts = row_counts(url, {"api_token", "post_revision", "import_receipt", "store_version"})
    assert all(count > 0 for count in counts.values()), f"the editors' tables held rows: {counts}"
    marks = row_counts(url, {"similar_pending"})  # posts waiting for their similar posts

    # When the store goes down to 0001.
    run = cli("db", "downgrade", "0001", "--database", url)
    assert (run.code, run.text) == (0, "store at 0001\n"), run.err
    assert cli("db", "current", "--database", url).text == "0001\n"
    # Then the editors' tables and the archive column are gone, the posts are not.
    editors = at_head - table_names(url)
    assert {"api_token", "post_revision", "import_receipt", "store_version"} <= editors
    assert "archived_at" not in {c["name"] for c in on_store(url, lambda c: inspect(c).get_columns("post"))}
    assert row_counts(url, {"post"}) == {"post": 21}

    # When it comes back up to head.
    head = head_revision()
    run = cli("db", "upgrade", "--database", url)
    assert (run.code, run.text) == (0, f"store at {head} (head {head})\n"), run.err
    # Then every post is exported byte for byte as before, and the editors' tables start empty.
    assert export_all(url) == before
    assert cli_export(url, SEED_REFERENCE) == before[SEED_REFERENCE]  # export_all prints what export prints
    assert table_names(url) == at_head
    counts = row_counts(url, editors)
    assert counts.pop("store_version") == 1  # its one row, as a new store has
    # The posts that waited for their similar posts still wait (kept in post.similar_state below 0007).
    assert {"similar_pending": counts.pop("similar_pending")} == marks
    assert counts == dict.fromkeys(counts, 0)
    archived = on_store(url, lambda c: c.execute(text("SELECT count(*) FROM post WHERE archived_at IS NOT NULL")))
    assert archived.scalar_one() == 0
    # The token is gone with its table: it is refused; the store serves as before.
    with serve(url) as client:
        assert post_graphql(client, EDITOR_VIEW, {"reference": SEED_REFERENCE}, token).status_code == 401
        found = graphql(client, "query P($r: String!) { post(reference: $r) { title } }", {"r": SEED_REFERENCE})
        assert found == {"data": {"post": {"title": "edited before the downgrade"}}}


def test_downgrade_to_base_leaves_no_table_and_upgrade_then_works(new_store_url: Callable[[str], str]) -> None:
    # Given a store at head with a post and a token.
    url = new_store_url("base")
    cli_import(url, SEED_DOCUMENT)
    issue_tokens(url, ("alice", "editor"))
    assert on_store(url, leftovers), "the store has tables to drop"
    # When it goes down to base.
    run = cli("db", "downgrade", "base", "--database", url)
    assert (run.code, run.text) == (0, "store at base\n"), run.err
    # Then nothing of the application is left: no table, index, search table, sequence or type.
    assert on_store(url, leftovers) == []
    assert table_names(url) <= {"alembic_version"}
    assert cli("db", "current", "--database", url).text == "base (empty store)\n"
    # And upgrading the empty store works: it takes posts again and gives them back byte for byte.
    head = head_revision()
    run = cli("db", "upgrade", "head", "--database", url)
    assert (run.code, run.text) == (0, f"store at {head} (head {head})\n"), run.err
    cli_import(url, SEED_DOCUMENT)
    assert cli_export(url, SEED_REFERENCE) == SEED_BYTES
    assert cli("db", "current", "--database", url).text == f"{head} (head)\n"


def test_references_are_checked_when_a_migration_runs_and_only_then(tmp_path: Path) -> None:
    """SQLite: a migration that leaves a broken reference fails; an upgrade with nothing to run reads nothing."""
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"

    def break_a_reference() -> None:
        # A stack link to a post that does not exist, as a faulty migration would leave it.
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute("INSERT OR IGNORE INTO stack_term (id, name) VALUES (1, 'python')")
            conn.execute("INSERT INTO post_stack (post_id, term_id, position) VALUES (999, 1, 1)")

    def mend() -> None:
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("DELETE FROM post_stack WHERE post_id = 999")

    asyncio.run(migrate.upgrade(url, "0004"))
    break_a_reference()
    with pytest.raises(migrate.MigrationError, match="1 row"):
        asyncio.run(migrate.upgrade(url))
    assert asyncio.run(migrate.current(url)) == "0004"  # the failed upgrade was not kept
    mend()
    asyncio.run(migrate.upgrade(url))
    assert asyncio.run(migrate.current(url)) == migrate.head()
    # At head nothing runs, and the references (every row of a large store) are not read again.
    break_a_reference()
    asyncio.run(migrate.upgrade(url))
    assert asyncio.run(migrate.current(url)) == migrate.head()
