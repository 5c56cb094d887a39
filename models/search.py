"""The full-text search index: SQLite FTS5 or a PostgreSQL tsvector with a GIN index.

Neither fits a SQLModel table (a virtual table; a generated tsvector column), so
the DDL is written here for each dialect. Rows are written by ``store`` in the
same transaction as the post they index.

Columns: title, intro, body (the text of headings, paragraphs and lists),
checklist, summary and topic. SQLite ranks with bm25 weighting the columns
10, 4, 1, 2, 5, 5; PostgreSQL weighs title A, summary and topic B, intro C,
body and checklist D and ranks with ts_rank. PostgreSQL's parser reads ``<word>``
as an XML tag and ``&word;`` as an entity and indexes neither, where FTS5 sees
words: the tsvector reads ``<``, ``>`` and ``&`` as spaces (and ts_headline as
other characters, see ``loaders.posts``).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

SEARCH_COLUMNS = ("title", "intro", "body", "checklist", "summary", "topic")

# FTS5's tokenizer for post_fts (loaders.postings tokenizes words and posts with it too).
SQLITE_TOKENIZE = "porter unicode61 remove_diacritics 2"

# post_fts's vocabulary, occurrence by occurrence (rows in (term, post) order), for ranking in
# memory (loaders.postings): a temp table each read connection makes for itself.
SQLITE_INSTANCES = "temp.post_fts_instance"
SQLITE_INSTANCES_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {SQLITE_INSTANCES} USING fts5vocab(main, post_fts, instance)"
)

SQLITE_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS post_fts USING fts5("
    f"title, intro, body, checklist, summary, topic, tokenize = '{SQLITE_TOKENIZE}')",
)

POSTGRES_DDL = (
    """CREATE TABLE IF NOT EXISTS post_search (
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
    "CREATE INDEX IF NOT EXISTS ix_post_search_document ON post_search USING gin (document)",
    # In the row, where ranking reads it, rather than in the TOAST table (migrations/versions/0006).
    "ALTER TABLE post_search ALTER COLUMN document SET STORAGE MAIN",
)


def create_search_index(conn: Connection) -> None:
    """Create the search index if it does not exist."""
    for statement in SQLITE_DDL if conn.dialect.name == "sqlite" else POSTGRES_DDL:
        conn.execute(text(statement))


def drop_search_index(conn: Connection) -> None:
    conn.execute(
        text("DROP TABLE IF EXISTS post_fts" if conn.dialect.name == "sqlite" else "DROP TABLE IF EXISTS post_search")
    )


# Tables the search index is made of (FTS5's own shadow tables start with post_fts_).
SEARCH_TABLES = frozenset({"post_fts", "post_search"})
