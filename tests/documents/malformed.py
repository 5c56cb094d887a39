"""Malformed documents, each an edit of the seed: (text, error type, 1-based line, what was expected)."""

from __future__ import annotations

import pytest

from tests.documents.seed_edits import (
    CAPTION,
    CRLF,
    FIRST_BULLET,
    GZIP_HEADER,
    HTML_PAGE,
    INT_MAX,
    JSON_DOCUMENT,
    LINES,
    PAYLOAD,
    PNG_HEADER,
    RANDOM_BYTES,
    RECORD_3,
    REVIEWED,
    SCORE_96,
    SEED,
    SEED_BYTES,
    VIEW_COUNT_AT,
    E,
    F,
    cut,
    delete,
    insert,
    join,
    keep,
    replace,
)

CASES = [
    # -- not a document at all ----------------------------------------------------
    pytest.param("", F, None, "empty", id="empty-text"),
    pytest.param(b"", F, None, "empty", id="empty-bytes"),
    pytest.param(" \n\t\n  \n", F, None, "empty", id="whitespace-only"),
    pytest.param(b"\r\n\r\n", F, None, "empty", id="blank-lines-only"),
    pytest.param(JSON_DOCUMENT, F, 2, "one blank line before the intro", id="json-document"),
    pytest.param('{"title": "x"}', F, 2, "the document ends here", id="json-one-line"),
    pytest.param(HTML_PAGE, F, 1, "not HTML markup", id="html-page"),
    pytest.param(PNG_HEADER, E, 1, "byte 0x89 at offset 0 is not valid UTF-8", id="png-bytes"),
    pytest.param(GZIP_HEADER, E, 1, "byte 0x8b at offset 1", id="gzip-bytes"),
    pytest.param(RANDOM_BYTES, E, 1, "byte 0x96 at offset 0 is not valid UTF-8", id="random-bytes"),
    pytest.param(
        SEED_BYTES[:VIEW_COUNT_AT] + RANDOM_BYTES[:64] + SEED_BYTES[VIEW_COUNT_AT:],
        E,
        56,
        f"byte 0x96 at offset {VIEW_COUNT_AT} is not valid UTF-8",
        id="random-bytes-spliced-in",
    ),
    pytest.param(b"\x00" * 64, E, 1, "character U+0000", id="nul-bytes-only"),
    # -- encoding -------------------------------------------------------------------
    pytest.param("\ufeff" + SEED, E, 1, "byte order mark", id="bom"),
    pytest.param(b"\xef\xbb\xbf" + SEED_BYTES, E, 1, "byte order mark", id="bom-bytes"),
    pytest.param(SEED_BYTES.replace(b"name the rule", b"name\x00the rule"), E, 14, "U+0000", id="nul-in-paragraph"),
    pytest.param(SEED.replace("hash6b3e", "hash\x006b3e"), E, 67, "U+0000", id="nul-in-meta-str"),
    pytest.param(SEED.replace("when a project", "\x1b[1mwhen a project"), E, 5, "U+001B", id="escape-code"),
    pytest.param(SEED_BYTES.replace(b"final notes", b"final \xff notes"), E, 28, "byte 0xff", id="invalid-utf8"),
    pytest.param(SEED_BYTES.replace(b"cleaner", b"clean\xc3"), E, 30, "not valid UTF-8", id="truncated-utf8-sequence"),
    pytest.param(SEED_BYTES[: FIRST_BULLET + 1], E, 20, "UTF-8", id="cut-inside-bullet-char"),
    pytest.param(SEED.replace("backend\n", "back\udcffend\n", 1), E, 44, "U+DCFF", id="lone-surrogate"),
    pytest.param(SEED.replace("git\n", "g\ufffdt\n"), E, 51, "U+FFFD", id="replacement-char"),
    # -- line endings ---------------------------------------------------------------
    pytest.param(
        join(LINES[:39]) + "\n" + LINES[39] + "\r\n" + join(LINES[40:]),
        E,
        40,
        "mixed line endings",
        id="lf-document-with-one-crlf",
    ),
    pytest.param(CRLF.replace("ruff\r\n", "ruff\n"), E, 50, "a line break other than '\\r\\n'", id="crlf-with-one-lf"),
    pytest.param(CRLF + "\n", E, 107, "mixed line endings", id="crlf-with-lf-at-end"),
    pytest.param(SEED.replace("reading time5", "reading time5\r"), E, 55, "mixed", id="stray-carriage-return"),
    # -- truncated ------------------------------------------------------------------
    pytest.param(keep(1), F, 2, "one blank line before the title; the document ends here", id="cut-after-1"),
    pytest.param(keep(3), F, 4, "one blank line before the intro; the document ends here", id="cut-after-3"),
    pytest.param(keep(5), F, 6, "'alphanode post meta' heading; the document ends here", id="cut-after-5"),
    pytest.param(keep(30), F, 31, "'alphanode post meta' heading; the document ends here", id="cut-in-body"),
    pytest.param(keep(32), F, 33, "one blank line before the first meta field", id="cut-after-meta-heading"),
    pytest.param(keep(56), F, 57, "the 'score' field", id="cut-before-score"),
    pytest.param(keep(59), F, 60, "score: the 'depth' line", id="cut-inside-score"),
    pytest.param(keep(88), F, 89, "image sources: the 'caption' line", id="cut-inside-record"),
    pytest.param(keep(105), F, 106, "before the 'Similar Posts' heading; the document", id="cut-after-notes"),
    pytest.param(keep(106), F, 106, "before the 'Similar Posts' heading; the document", id="cut-at-blank"),
    pytest.param(cut(SEED, "reading ti"), F, 55, "the 'reading time' field", id="cut-mid-label"),
    pytest.param(cut(SEED, "Similar Po"), F, 107, "the 'Similar Posts' heading", id="cut-mid-last-line"),
    pytest.param(cut(SEED, "  • quality: 9"), F, 59, "score: the 'freshness' line", id="cut-mid-value"),
    pytest.param(
        cut(SEED, "keeping staging close to production with python services visual reference 1."),
        F,
        9,
        "'alphanode post meta' heading; the document ends here",
        id="cut-mid-image-source",
    ),
    # -- HTML -----------------------------------------------------------------------
    pytest.param(insert(14, "<p>", "cache rules</p>"), F, 14, "not HTML markup ('<p>')", id="html-paragraph"),
    pytest.param(SEED.replace("final notes", 'final <a href="x">notes</a>'), F, 28, "HTML", id="html-link-in-heading"),
    pytest.param(insert(40, "<!-- hidden -->"), F, 40, "'<!--'", id="html-comment"),
    pytest.param(SEED.replace("summarythis", "summary<script>alert(1)</script>this"), F, 35, "HTML", id="html-script"),
    # -- header, title, intro and body ------------------------------------------------
    pytest.param(delete(2, ""), F, 2, "one blank line before the title", id="no-blank-after-header"),
    pytest.param(delete(4, ""), F, 4, "one blank line before the intro", id="no-blank-after-title"),
    pytest.param(replace(3, LINES[2], "   "), F, 3, "the title", id="blank-title"),
    pytest.param(delete(31, ""), F, 31, "one blank line before the 'alphanode post meta'", id="no-blank-before-meta"),
    pytest.param(
        insert(31, ""),
        F,
        31,
        "one blank line before the 'alphanode post meta' heading, not 2",
        id="two-blanks-before-meta",
    ),
    pytest.param(
        replace(32, "alphanode post meta", "Alphanode Post Meta"),
        F,
        108,
        "'alphanode post meta' heading",
        id="meta-heading-misspelled",
    ),
    pytest.param(
        replace(22, "  • purge only the affected route", " • purge only the affected route"),
        F,
        22,
        "a list item indented as '  • '",
        id="body-bullet-misindented",
    ),
    pytest.param(replace(20, "  • inspect cache headers", "  • "), F, 20, "a list item", id="body-empty-bullet"),
    pytest.param(
        replace(7, f"{CAPTION} 1", "a picture"), F, 8, "an image caption line followed by", id="caption-line-missing"
    ),
    pytest.param(
        replace(10, f"{CAPTION} 2. image source: unsplash", f"{CAPTION} 2. image source:  "),
        F,
        9,
        "an image caption and its source",
        id="image-source-blank",
    ),
    # -- a meta field missing, misplaced or doubled ---------------------------------------
    pytest.param(delete(34, LINES[33]), F, 34, "the 'topic' field", id="missing-topic"),
    pytest.param(delete(35, LINES[34]), F, 35, "the 'summary' field", id="missing-summary"),
    pytest.param(
        delete(38, "  • problem: keeping staging close to production"),
        F,
        38,
        "the 'problem' line",
        id="missing-outline-key",
    ),
    pytest.param(delete(54, "difficultyintermediate"), F, 54, "the 'difficulty' field", id="missing-difficulty"),
    pytest.param(
        replace(54, "difficultyintermediate", "difficulty"), F, 54, "followed by its value", id="difficulty-no-value"
    ),
    pytest.param(delete(67, "hash6b3e02d5b09c4776ea6816ea"), F, 67, "the 'hash' field", id="missing-hash"),
    pytest.param(delete(96, *PAYLOAD), F, 96, "the 'payload' field", id="missing-payload-block"),
    pytest.param(delete(96, "payload"), F, 96, "'payload' on a line of its own", id="missing-payload-label"),
    pytest.param(delete(101, "  • seed: 1632"), F, 101, "payload: the 'seed' line", id="missing-payload-seed"),
    pytest.param(delete(65, REVIEWED), F, 65, "revision: the 'last reviewed' line", id="missing-reviewed-line"),
    pytest.param(delete(102, "notes", *LINES[102:105]), F, 102, "the 'notes' field", id="missing-notes-block"),
    pytest.param(
        delete(43, "  • python services", "  • backend", "  • python"), F, 43, "stack: at least one", id="empty-stack"
    ),
    pytest.param(insert(56, "reading time5"), F, 56, "the 'view count' field", id="duplicated-line"),
    pytest.param(
        join([*LINES[:54], LINES[55], LINES[54], *LINES[56:]]), F, 55, "the 'reading time' field", id="swapped-lines"
    ),
    pytest.param(replace(57, "score", "score96"), F, 57, "'score' on a line of its own", id="score-label-value"),
    pytest.param(
        replace(43, "  • python services", "  •python services"),
        F,
        43,
        "stack: at least one",
        id="stack-bullet-no-space",
    ),
    pytest.param(replace(44, "  • backend", "  - backend"), F, 44, "the 'tools' field", id="stack-wrong-bullet"),
    pytest.param(replace(44, "  • backend", "  •  "), F, 44, "stack: a value after the bullet", id="stack-empty-item"),
    pytest.param(
        replace(37, LINES[36], "  • context: "), F, 37, "ai outline: a value for 'context'", id="outline-empty-value"
    ),
    pytest.param(
        replace(80, "    • name: python services", "  • name: python services"),
        F,
        80,
        "the 'image sources' field",
        id="entity-misindented",
    ),
    pytest.param(
        replace(88, LINES[87], "    • url:  "), F, 88, "image sources: a value for 'url'", id="record-empty-url"
    ),
    pytest.param(
        replace(107, "Similar Posts", "Related Posts"),
        F,
        107,
        "the 'Similar Posts' heading",
        id="wrong-closing-heading",
    ),
    # -- numbers ------------------------------------------------------------------
    pytest.param(
        replace(58, SCORE_96, "  • quality: 101"),
        F,
        58,
        "score quality: a number from 0 to 100, not 101",
        id="score-101",
    ),
    pytest.param(
        replace(59, "  • freshness: 92", "  • freshness: -1"),
        F,
        59,
        "score freshness: a whole number",
        id="score-minus-1",
    ),
    pytest.param(
        replace(60, "  • depth: 79", "  • depth: 9x"),
        F,
        60,
        "score depth: a whole number (digits only), not '9x'",
        id="score-9x",
    ),
    pytest.param(
        replace(61, "  • clarity: 93", "  • clarity: 093"),
        F,
        61,
        "score clarity: a whole number",
        id="score-leading-zero",
    ),
    pytest.param(
        replace(58, SCORE_96, "  • quality: 96.0"), F, 58, "score quality: a whole number", id="score-decimal"
    ),
    pytest.param(replace(58, SCORE_96, "  • quality:  96"), F, 58, "not ' 96'", id="score-extra-space"),
    pytest.param(replace(58, SCORE_96, "  • quality: ٩٦"), F, 58, "a whole number", id="score-arabic-digits"),
    pytest.param(
        replace(55, "reading time5", "reading timefive"), F, 55, "reading time: a whole number", id="reading-time-word"
    ),
    pytest.param(
        replace(55, "reading time5", "reading time 5"), F, 55, "reading time: a whole number", id="reading-time-space"
    ),
    pytest.param(replace(55, "reading time5", "reading time05"), F, 55, "not '05'", id="reading-time-leading-zero"),
    pytest.param(
        replace(55, "reading time5", "reading time1_000"), F, 55, "a whole number", id="reading-time-underscore"
    ),
    pytest.param(
        replace(56, "view count223096", "view count2147483648"),
        F,
        56,
        f"view count: a number from 0 to {INT_MAX}",
        id="view-count-over-graphql-int",
    ),
    pytest.param(
        replace(56, "view count223096", "view count" + "7" * 5000),
        F,
        56,
        f"view count: a number from 0 to {INT_MAX}",
        id="view-count-5000-digits",
    ),
    pytest.param(
        replace(99, "  • paragraphs: 3", "  • paragraphs: three"),
        F,
        99,
        "payload paragraphs: a whole number",
        id="paragraphs-word",
    ),
    pytest.param(
        replace(101, "  • seed: 1632", "  • seed: 0x660"), F, 101, "payload seed: a whole number", id="seed-hex"
    ),
    # -- dates, flags, keys -----------------------------------------------------------
    pytest.param(
        replace(65, REVIEWED, "  • last reviewed: 2026-02-30"),
        F,
        65,
        "a real calendar date, not '2026-02-30'",
        id="date-feb-30",
    ),
    pytest.param(
        replace(65, REVIEWED, "  • last reviewed: 2026-13-01"), F, 65, "a real calendar date", id="date-month-13"
    ),
    pytest.param(
        replace(65, REVIEWED, "  • last reviewed: 0000-01-01"), F, 65, "a real calendar date", id="date-year-0"
    ),
    pytest.param(
        replace(65, REVIEWED, "  • last reviewed: yesterday"),
        F,
        65,
        "a date as YYYY-MM-DD, not 'yesterday'",
        id="date-yesterday",
    ),
    pytest.param(replace(65, REVIEWED, "  • last reviewed: 2026-7-2"), F, 65, "YYYY-MM-DD", id="date-short"),
    pytest.param(replace(65, REVIEWED, "  • last reviewed: 20260702"), F, 65, "YYYY-MM-DD", id="date-basic-format"),
    pytest.param(
        replace(65, REVIEWED, "  • last reviewed: 2026-07-02T10:00"), F, 65, "YYYY-MM-DD", id="date-with-time"
    ),
    pytest.param(
        replace(64, "  • version: 1.7.2", "  • version: v 1.7"), F, 64, "a version such as 1.7.2", id="bad-version"
    ),
    pytest.param(
        replace(69, "  • ai generated style: 1", "  • ai generated style: 2"),
        F,
        69,
        "flags ai generated style: 0 or 1, not '2'",
        id="flag-2",
    ),
    pytest.param(
        replace(72, "  • needs human review: 0", "  • needs human review: no"), F, 72, "0 or 1", id="flag-word"
    ),
    pytest.param(
        replace(67, LINES[66], "hash6B3E02D5B09C4776EA6816EA"), F, 67, "lowercase hexadecimal", id="hash-uppercase"
    ),
    pytest.param(
        replace(66, LINES[65], "referenceanp ref 001632"), F, 66, "reference: letters, digits", id="reference-space"
    ),
    pytest.param(
        replace(97, PAYLOAD[1], "  • source id: alphanode/001632"),
        F,
        97,
        "payload source id: letters",
        id="source-id-slash",
    ),
    # -- repeated values ------------------------------------------------------------------
    pytest.param(
        replace(45, "  • python", "  • backend"),
        F,
        45,
        "stack: each value once; 'backend' is repeated",
        id="duplicated-stack-term",
    ),
    pytest.param(insert(53, "  • pytest"), F, 53, "tools: each value once; 'pytest' is repeated", id="duplicated-tool"),
    pytest.param(
        insert(82, "    • name: backend", "    • type: area"),
        F,
        84,
        "entities: each entity once",
        id="duplicated-entity",
    ),
    # -- images and their sources ---------------------------------------------------------
    pytest.param(
        delete(93, *RECORD_3),
        F,
        25,
        "one 'image sources' record per image in the body: the body shows 3 image(s), the meta block lists 2",
        id="image-source-missing",
    ),
    pytest.param(
        insert(96, *RECORD_3),
        F,
        96,
        "the body shows 3 image(s), the meta block lists 4",
        id="image-source-extra",
    ),
    pytest.param(
        delete(25, f"{CAPTION} 3", f"{CAPTION} 3. image source: unsplash"),
        F,
        91,
        "the body shows 2 image(s), the meta block lists 3",
        id="body-image-missing",
    ),
    pytest.param(
        replace(92, f"    • caption: {CAPTION} 2", f"    • caption: {CAPTION} two"),
        F,
        92,
        "image source 2 to match image 2 of the body",
        id="caption-mismatch",
    ),
    pytest.param(
        replace(90, "    • source: unsplash", "    • source: flickr"),
        F,
        90,
        "image source 2 to match image 2 of the body (caption",
        id="source-mismatch",
    ),
    pytest.param(
        join(LINES[:86] + list(LINES[89:92]) + list(LINES[86:89]) + LINES[92:]),
        F,
        87,
        "image source 1 to match image 1",
        id="image-sources-swapped",
    ),
]
