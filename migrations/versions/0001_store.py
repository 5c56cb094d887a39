"""The store: posts, their parts and vocabulary, similar posts, the search index and sort indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The search index and the expression indexes of two orderings are written per dialect:
# SQLModel describes neither (see models/search.py and loaders/posts.py).
SQLITE_DDL = (
    "CREATE VIRTUAL TABLE post_fts USING fts5("
    "title, intro, body, checklist, summary, topic, tokenize = 'porter unicode61 remove_diacritics 2')",
    "CREATE INDEX ix_post_title_order ON post (title, id)",
    "CREATE INDEX ix_post_reviewed_order ON post (COALESCE(last_reviewed, '0001-01-01'), id)",
)
POSTGRES_DDL = (
    """CREATE TABLE post_search (
        post_id integer PRIMARY KEY REFERENCES post (id) ON DELETE CASCADE,
        title text NOT NULL,
        intro text NOT NULL,
        body text NOT NULL,
        checklist text NOT NULL,
        summary text NOT NULL,
        topic text NOT NULL,
        document tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('english', translate(title, '<>&', '   ')), 'A')
            || setweight(to_tsvector('english', translate(summary || ' ' || topic, '<>&', '   ')), 'B')
            || setweight(to_tsvector('english', translate(intro, '<>&', '   ')), 'C')
            || setweight(to_tsvector('english', translate(body || ' ' || checklist, '<>&', '   ')), 'D')
        ) STORED
    )""",
    "CREATE INDEX ix_post_search_document ON post_search USING gin (document)",
    'CREATE INDEX ix_post_title_order ON post ((title COLLATE "C"), id)',
    "CREATE INDEX ix_post_reviewed_order ON post ((COALESCE(last_reviewed, DATE '-infinity')), id)",
)


def upgrade() -> None:
    op.create_table(
        "entity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entity")),
        sa.UniqueConstraint("name", "type", name="uq_entity_name_type"),
    )

    with op.batch_alter_table("entity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entity_type"), ["type"], unique=False)

    op.create_table(
        "post",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("slug", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("intro", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("topic", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("summary", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("outline_context", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("outline_problem", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("outline_stack", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("outline_action", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("ai_brief", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("code_language", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("difficulty", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("reading_time", sa.Integer(), nullable=False),
        sa.Column("view_count", sa.BigInteger(), nullable=False),
        sa.Column("quality", sa.Integer(), nullable=False),
        sa.Column("freshness", sa.Integer(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("clarity", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("last_reviewed", sa.Date(), nullable=True),
        sa.Column("meta_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("ai_generated_style", sa.Boolean(), nullable=False),
        sa.Column("has_images", sa.Boolean(), nullable=False),
        sa.Column("image_heavy", sa.Boolean(), nullable=False),
        sa.Column("needs_human_review", sa.Boolean(), nullable=False),
        sa.Column("generator", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("paragraphs", sa.Integer(), nullable=False),
        sa.Column("scenario", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("header", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("newline", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("final_newline", sa.Boolean(), nullable=False),
        sa.Column("trailer", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("similar_state", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post")),
        sa.UniqueConstraint("reference", name=op.f("uq_post_reference")),
        sa.UniqueConstraint("slug", name=op.f("uq_post_slug")),
        sa.UniqueConstraint("source_id", name=op.f("uq_post_source_id")),
    )

    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.create_index("ix_post_clarity_id", ["clarity", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_post_code_language"), ["code_language"], unique=False)
        batch_op.create_index("ix_post_depth_id", ["depth", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_post_difficulty"), ["difficulty"], unique=False)
        batch_op.create_index("ix_post_freshness_id", ["freshness", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_post_last_reviewed"), ["last_reviewed"], unique=False)
        batch_op.create_index("ix_post_quality_id", ["quality", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_post_similar_state"), ["similar_state"], unique=False)
        batch_op.create_index(batch_op.f("ix_post_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_post_topic"), ["topic"], unique=False)
        batch_op.create_index("ix_post_view_count_id", ["view_count", "id"], unique=False)

    op.create_table(
        "stack_term",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stack_term")),
        sa.UniqueConstraint("name", name=op.f("uq_stack_term_name")),
    )

    op.create_table(
        "tool",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tool")),
        sa.UniqueConstraint("name", name=op.f("uq_tool_name")),
    )

    op.create_table(
        "checklist_item",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"], ["post.id"], name=op.f("fk_checklist_item_post_id_post"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("post_id", "position", name=op.f("pk_checklist_item")),
        sqlite_with_rowid=False,
    )

    op.create_table(
        "post_block",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("image", sa.Integer(), nullable=True),
        sa.Column("gap", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["post.id"], name=op.f("fk_post_block_post_id_post"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("post_id", "position", name=op.f("pk_post_block")),
        sqlite_with_rowid=False,
    )

    op.create_table(
        "post_entity",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["entity_id"], ["entity.id"], name=op.f("fk_post_entity_entity_id_entity")),
        sa.ForeignKeyConstraint(["post_id"], ["post.id"], name=op.f("fk_post_entity_post_id_post"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("post_id", "entity_id", name=op.f("pk_post_entity")),
        sqlite_with_rowid=False,
    )

    with op.batch_alter_table("post_entity", schema=None) as batch_op:
        batch_op.create_index("ix_post_entity_entity", ["entity_id", "post_id"], unique=False)

    op.create_table(
        "post_image",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("caption", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["post.id"], name=op.f("fk_post_image_post_id_post"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("post_id", "position", name=op.f("pk_post_image")),
        sqlite_with_rowid=False,
    )

    op.create_table(
        "post_note",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["post.id"], name=op.f("fk_post_note_post_id_post"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("post_id", "position", name=op.f("pk_post_note")),
        sqlite_with_rowid=False,
    )

    op.create_table(
        "post_stack",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("term_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["post.id"], name=op.f("fk_post_stack_post_id_post"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["term_id"], ["stack_term.id"], name=op.f("fk_post_stack_term_id_stack_term")),
        sa.PrimaryKeyConstraint("post_id", "term_id", name=op.f("pk_post_stack")),
        sqlite_with_rowid=False,
    )

    with op.batch_alter_table("post_stack", schema=None) as batch_op:
        batch_op.create_index("ix_post_stack_term", ["term_id", "post_id"], unique=False)

    op.create_table(
        "post_tool",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("tool_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["post.id"], name=op.f("fk_post_tool_post_id_post"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tool_id"], ["tool.id"], name=op.f("fk_post_tool_tool_id_tool")),
        sa.PrimaryKeyConstraint("post_id", "tool_id", name=op.f("pk_post_tool")),
        sqlite_with_rowid=False,
    )

    with op.batch_alter_table("post_tool", schema=None) as batch_op:
        batch_op.create_index("ix_post_tool_tool", ["tool_id", "post_id"], unique=False)

    op.create_table(
        "similar_post",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("similar_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reasons", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"], ["post.id"], name=op.f("fk_similar_post_post_id_post"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["similar_id"], ["post.id"], name=op.f("fk_similar_post_similar_id_post"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("post_id", "rank", name=op.f("pk_similar_post")),
        sqlite_with_rowid=False,
    )

    with op.batch_alter_table("similar_post", schema=None) as batch_op:
        batch_op.create_index("ix_similar_post_similar", ["similar_id"], unique=False)

    for statement in SQLITE_DDL if op.get_bind().dialect.name == "sqlite" else POSTGRES_DDL:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute("DROP INDEX ix_post_reviewed_order")
    op.execute("DROP INDEX ix_post_title_order")
    op.execute("DROP TABLE post_fts" if sqlite else "DROP TABLE post_search")
    with op.batch_alter_table("similar_post", schema=None) as batch_op:
        batch_op.drop_index("ix_similar_post_similar")

    op.drop_table("similar_post")

    with op.batch_alter_table("post_tool", schema=None) as batch_op:
        batch_op.drop_index("ix_post_tool_tool")

    op.drop_table("post_tool")

    with op.batch_alter_table("post_stack", schema=None) as batch_op:
        batch_op.drop_index("ix_post_stack_term")

    op.drop_table("post_stack")

    op.drop_table("post_note")

    op.drop_table("post_image")

    with op.batch_alter_table("post_entity", schema=None) as batch_op:
        batch_op.drop_index("ix_post_entity_entity")

    op.drop_table("post_entity")

    op.drop_table("post_block")

    op.drop_table("checklist_item")

    op.drop_table("tool")

    op.drop_table("stack_term")

    with op.batch_alter_table("post", schema=None) as batch_op:
        batch_op.drop_index("ix_post_view_count_id")
        batch_op.drop_index(batch_op.f("ix_post_topic"))
        batch_op.drop_index(batch_op.f("ix_post_status"))
        batch_op.drop_index(batch_op.f("ix_post_similar_state"))
        batch_op.drop_index("ix_post_quality_id")
        batch_op.drop_index(batch_op.f("ix_post_last_reviewed"))
        batch_op.drop_index("ix_post_freshness_id")
        batch_op.drop_index(batch_op.f("ix_post_difficulty"))
        batch_op.drop_index("ix_post_depth_id")
        batch_op.drop_index(batch_op.f("ix_post_code_language"))
        batch_op.drop_index("ix_post_clarity_id")

    op.drop_table("post")

    with op.batch_alter_table("entity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entity_type"))

    op.drop_table("entity")
