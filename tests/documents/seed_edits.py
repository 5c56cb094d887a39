"""The real seed document and small edits of it by 1-based line number, each checking the line it
changes: the malformed documents of ``test_errors.py`` and the fuzzing of ``test_fuzz_parse.py``."""

import hashlib
from pathlib import Path

from documents import EncodingError, FormatError

FIXTURE = Path(__file__).resolve().parents[2] / "samples" / "000_08d1a06747f7756e.txt"
SEED_BYTES = FIXTURE.read_bytes()
SEED = SEED_BYTES.decode("utf-8")
LINES = SEED.split("\n")  # the seed has LF line endings and no final newline
NAME = "000_08d1a06747f7756e.txt"

# -- edits of the seed, by 1-based line number -----------------------------------


def join(lines: list[str]) -> str:
    return "\n".join(lines)


def line_is(number: int, old: str) -> None:
    assert LINES[number - 1] == old, f"line {number} of the seed is {LINES[number - 1]!r}"


def replace(number: int, old: str, new: str) -> str:
    """The seed with line ``number`` (which must be ``old``) replaced by ``new``."""
    line_is(number, old)
    lines = list(LINES)
    lines[number - 1] = new
    return join(lines)


def delete(first: int, *olds: str) -> str:
    """The seed without lines ``first``, ``first + 1``, ... (which must be ``olds``)."""
    for offset, old in enumerate(olds):
        line_is(first + offset, old)
    return join(LINES[: first - 1] + LINES[first - 1 + len(olds) :])


def insert(number: int, *new: str) -> str:
    """The seed with ``new`` lines inserted before line ``number``."""
    return join(LINES[: number - 1] + list(new) + LINES[number - 1 :])


def keep(count: int) -> str:
    """The seed truncated after its first ``count`` lines, without the line break after them."""
    return join(LINES[:count])


def cut(text: str, after: str) -> str:
    """``text`` truncated right after the first occurrence of ``after``."""
    return text[: text.index(after) + len(after)]


CRLF = SEED.replace("\n", "\r\n")
FIRST_BULLET = SEED_BYTES.index("•".encode())  # on line 20
SCORE_96 = "  • quality: 96"
REVIEWED = "  • last reviewed: 2026-07-02"
CAPTION = "keeping staging close to production with python services visual reference"
RECORD_3 = (
    "    • source: unsplash",
    "    • url: https://images.unsplash.com/photo-1555066931-4365d14bab8c?auto=format&fit=crop&w=1200&q=80",
    f"    • caption: {CAPTION} 3",
)
PAYLOAD = (
    "payload",
    "  • source id: alphanode-001632",
    "  • generator: anp content synthesizer",
    "  • paragraphs: 3",
    "  • scenario: while keeping the admin area responsive",
    "  • seed: 1632",
)
JSON_DOCUMENT = '{\n  "title": "practical guide",\n  "score": {"quality": 96}\n}\n'
HTML_PAGE = (
    "<!DOCTYPE html>\n<html>\n<head><title>practical guide</title></head>\n"
    "<body><p>when a project grows</p></body>\n</html>\n"
)
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x04\xb0"
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
# 4 KiB of arbitrary bytes, the same on every machine and Python version.
RANDOM_BYTES = b"".join(hashlib.sha256(i.to_bytes(2, "big")).digest() for i in range(128))
VIEW_COUNT_AT = SEED_BYTES.index(b"view count")  # line 56

E, F = EncodingError, FormatError
INT_MAX = "2147483647"  # GraphQL Int is a signed 32-bit integer
