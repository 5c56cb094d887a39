"""The full-text search index: SQLite FTS5 or a PostgreSQL tsvector with a GIN index.

Neither fits a SQLModel table (a virtual table; a generated tsvector column), so
the migrations write their DDL for each dialect (``migrations/versions/0001`` makes
them; ``0006`` keeps PostgreSQL's tsvector in its row). Rows are written by
``store`` in the same transaction as the post they index.

Columns: title, intro, body (the text of headings, paragraphs and lists),
checklist, summary and topic. SQLite ranks with bm25 weighting the columns
10, 4, 1, 2, 5, 5; PostgreSQL weighs title A, summary and topic B, intro C,
body and checklist D and ranks with ts_rank. PostgreSQL's parser reads ``<word>``
as an XML tag and ``&word;`` as an entity and indexes neither, where FTS5 sees
words: the tsvector reads ``<``, ``>`` and ``&`` as spaces (and ts_headline as
other characters, see ``loaders.posts``).
"""

from __future__ import annotations

SEARCH_COLUMNS = ("title", "intro", "body", "checklist", "summary", "topic")

# FTS5's tokenizer for post_fts (loaders.postings tokenizes words and posts with it too).
SQLITE_TOKENIZE = "porter unicode61 remove_diacritics 2"

# post_fts's vocabulary, occurrence by occurrence (rows in (term, post) order), for ranking in
# memory (loaders.postings): a temp table each read connection makes for itself.
SQLITE_INSTANCES = "temp.post_fts_instance"
SQLITE_INSTANCES_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {SQLITE_INSTANCES} USING fts5vocab(main, post_fts, instance)"
)

# Tables the search index is made of (FTS5's own shadow tables start with post_fts_).
SEARCH_TABLES = frozenset({"post_fts", "post_search"})
