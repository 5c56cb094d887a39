"""PostgreSQL: each post's tsvector kept in its row, where ranking reads it.

A row of ``post_search`` (the post's text and its tsvector, about 1.6 kB of it)
is over PostgreSQL's 2 kB TOAST threshold, and the tsvector, its largest value,
went out of line into the TOAST table. Ranking a search reads the tsvector of
every post it matches: for a word in 87% of 100,000 posts that was half a
million buffer reads through the TOAST index and 206 to 230 ms; with the tsvector in
the row (storage MAIN: the text columns go out of line instead) it is 43 ms.
Existing rows are rewritten into the new layout by ``CLUSTER`` on the primary key
(about 5 s at 100,000 posts, under an exclusive lock on the search table only).
SQLite: nothing to do.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _storage(kind: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE post_search ALTER COLUMN document SET STORAGE {kind}")
    # A rewrite stores every row anew under the column's storage (CLUSTER on a named table,
    # unlike VACUUM FULL, runs inside the migration's transaction).
    op.execute("CLUSTER post_search USING post_search_pkey")


def upgrade() -> None:
    _storage("MAIN")


def downgrade() -> None:
    _storage("EXTENDED")
