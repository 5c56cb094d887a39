"""Purge log: the cache keys each write changed, for every server process and the CDN.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "purge_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("keys", sa.Text(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purge_log")),
    )
    op.create_index(op.f("ix_purge_log_created_at"), "purge_log", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_purge_log_created_at"), table_name="purge_log")
    op.drop_table("purge_log")
