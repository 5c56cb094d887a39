"""Constants of the page-text format, shared by the parser and the renderer.

The format is the text of a rendered post page: a row of cells, the title, the
intro, the body (headings, paragraphs, bulleted lists and images, each image as a
caption line followed by ``<caption>. image source: <source>``), then the
``alphanode post meta`` block and a closing ``Similar Posts`` heading.

In the meta block a scalar field is its label immediately followed by its value
(``reading time5``); a list field is its label on a line of its own followed by
``  • item`` lines; a keyed field has ``  • key: value`` lines; a list of records
(entities, image sources) has ``    • key: value`` lines, one record after another.
"""

from __future__ import annotations

BULLET = "  • "
RECORD_BULLET = "    • "
IMAGE_SOURCE_MARK = ". image source: "
META_HEADING = "alphanode post meta"
SIMILAR_HEADING = "Similar Posts"

OUTLINE_KEYS = ("context", "problem", "stack", "recommended action")
SCORE_KEYS = ("quality", "freshness", "depth", "clarity")
REVISION_KEYS = ("status", "version", "last reviewed")
FLAG_KEYS = ("ai generated style", "has images", "image heavy", "needs human review")
ENTITY_KEYS = ("name", "type")
IMAGE_SOURCE_KEYS = ("source", "url", "caption")
PAYLOAD_KEYS = ("source id", "generator", "paragraphs", "scenario", "seed")

# The meta fields in the order they appear.
META_FIELDS = (
    "topic",
    "summary",
    "ai outline",
    "ai brief",
    "stack",
    "tools",
    "code language",
    "difficulty",
    "reading time",
    "view count",
    "score",
    "revision",
    "reference",
    "hash",
    "flags",
    "checklist",
    "entities",
    "image sources",
    "payload",
    "notes",
)

SCORE_MIN, SCORE_MAX = 0, 100
# Counts and seeds are GraphQL `Int`s, which are signed 32-bit integers.
INT_MAX = 2**31 - 1
