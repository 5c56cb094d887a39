"""Similar posts waiting to be computed again: marked in a table of their own, not in the post row.

``post.similar_state`` marked the posts whose similar posts were to be computed again, and
each refresh cleared the marks. On PostgreSQL an update writes a new version of the whole row:
a first import, which marks and then clears every post, left the post table twice its live
size (one dead version of every row until a vacuum). The marks now live in
``similar_pending``, a row per waiting post: clearing a mark deletes a narrow row, and a post
row is written once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

"""

import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "similar_pending",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"], ["post.id"], name=op.f("fk_similar_pending_post_id_post"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("post_id", name=op.f("pk_similar_pending")),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT INTO similar_pending (post_id, state) SELECT id, similar_state FROM post WHERE similar_state > 0"
    )
    op.drop_index("ix_post_similar_state", table_name="post")
    _drop_column("post", "similar_state")


def downgrade() -> None:
    op.add_column("post", sa.Column("similar_state", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE post SET similar_state = (SELECT state FROM similar_pending WHERE post_id = post.id) "
        "WHERE id IN (SELECT post_id FROM similar_pending)"
    )
    op.create_index("ix_post_similar_state", "post", ["similar_state"], unique=False)
    op.drop_table("similar_pending")


def _drop_column(table: str, column: str) -> None:
    """SQLite drops a column in place from 3.35 on; Alembic's batch mode would copy the table
    (and every post) instead."""
    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    else:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
