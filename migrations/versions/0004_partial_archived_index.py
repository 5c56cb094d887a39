"""Only archived posts in the archived_at index, so that readers' queries use the selective ones.

Readers' queries all say ``archived_at IS NULL``, true of nearly every post; with a
full index on the column SQLite's planner took it for a slug lookup and scanned the
whole table (90 ms at 100,000 posts instead of 0.1 ms). The partial index still
serves editors' lists of archived posts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ARCHIVED = sa.text("archived_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_post_archived_at", table_name="post")
    op.create_index("ix_post_archived_at", "post", ["archived_at"], sqlite_where=_ARCHIVED, postgresql_where=_ARCHIVED)


def downgrade() -> None:
    op.drop_index("ix_post_archived_at", table_name="post")
    op.create_index("ix_post_archived_at", "post", ["archived_at"])
