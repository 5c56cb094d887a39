"""URL slugs for posts."""

from __future__ import annotations

import re
import unicodedata

from ._model import Document

_NON_WORD = re.compile(r"[^a-z0-9]+")
MAX_TITLE_PART = 80


def slugify(text: str) -> str:
    """Lowercase ASCII words joined by hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NON_WORD.sub("-", ascii_text.lower()).strip("-")


def slug_for(document: Document) -> str:
    """The post's slug: its title, then its source id, which keeps slugs unique.

    Titles repeat across synthesized posts, source ids never do, so the source id
    is part of every slug; the same document gets the same slug in every store.
    """
    title = slugify(document.title)[:MAX_TITLE_PART].rstrip("-") or "post"
    return f"{title}-{slugify(document.source_id)}"
