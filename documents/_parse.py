"""Parse page text into a :class:`~documents.Document`.

The parser reads line by line with a cursor and knows at every step what the
format allows next, so that an error can say exactly what was expected on which
line. It never guesses: a document either parses into a value that renders back
to the same bytes, or it is rejected.
"""

from __future__ import annotations

import datetime as dt
import re

from . import _format as f
from ._errors import EncodingError, FormatError
from ._model import (
    Block,
    BulletList,
    Document,
    Entity,
    Figure,
    Flags,
    Heading,
    Image,
    Layout,
    Meta,
    Outline,
    Paragraph,
    Payload,
    Revision,
    Scores,
)

# C0 controls other than tab, DEL, C1 controls and lone surrogates (undecodable
# bytes smuggled in by ``surrogateescape``): never part of page text. A line break
# left inside a line is one of the other kind: the document mixes line endings.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
# A start or end tag of an HTML element: markup, not page text. Only element names
# are matched, so that prose about code (``List<String>``) stays page text.
_HTML_ELEMENTS = (
    "a|abbr|article|aside|b|blockquote|body|br|button|code|div|em|figcaption|figure|footer|form|h[1-6]|"
    "head|header|hr|html|i|iframe|img|input|li|link|main|meta|nav|ol|p|pre|script|section|small|span|"
    "strong|style|svg|table|tbody|td|th|thead|title|tr|u|ul"
)
_HTML_TAG = re.compile(rf"</?(?:{_HTML_ELEMENTS})(?:\s[^<>]*)?/?\s*>|<!--|<!doctype", re.I)
# The checks above over the whole text, by line ending: a document that passes them (most do)
# needs no line-by-line search. Markup found across lines here is left to the lines to decide.
_SUSPECT = {
    "\n": re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffd]"),
    "\r\n": re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffd]|\r(?!\n)|(?<!\r)\n"),
}
_INT = re.compile(r"0|[1-9][0-9]*")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_HEX = re.compile(r"[0-9a-f]+")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]*")
# A paragraph ends like a sentence; a heading does not.
_SENTENCE_END = (".", "!", "?", ":", ";", '"', "'", ")", "…")


def decode(data: bytes, name: str) -> str:
    """Decode document bytes strictly as UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise EncodingError(
            name,
            f"UTF-8 text; byte 0x{data[exc.start]:02x} at offset {exc.start} is not valid UTF-8",
            line=line,
        ) from None


def parse(text: str | bytes, name: str = "<document>") -> Document:
    """Parse one document. ``name`` (a file name, say) is used in errors."""
    if isinstance(text, bytes):
        text = decode(text, name)
    return _Parser(text, name).document()


class _Parser:
    def __init__(self, text: str, name: str) -> None:
        self.name = name
        if not text.strip():
            raise FormatError(name, "a document; the text is empty")
        if text.startswith("\ufeff"):
            raise EncodingError(name, "text without a byte order mark", line=1)
        # The first line break sets the document's line ending; a line break of the
        # other kind is then caught below, on its own line.
        first_break = text.find("\n")
        newline = "\r\n" if first_break > 0 and text[first_break - 1] == "\r" else "\n"
        lines = text.split(newline)
        self.final_newline = lines[-1] == ""
        if self.final_newline:
            lines.pop()
        self.newline = newline
        self.lines = lines
        self.i = 0  # index of the next line
        if _SUSPECT[newline].search(text) or _HTML_TAG.search(text):
            self.check_lines()

    def check_lines(self) -> None:
        """Reject control characters, U+FFFD and HTML markup, naming the first line that has one."""
        name, newline = self.name, self.newline
        for number, line in enumerate(self.lines, 1):
            bad = _CONTROL.search(line)
            if bad:
                what = (
                    f"a line break other than {newline!r} (mixed line endings)"
                    if bad.group() in "\r\n"
                    else f"character U+{ord(bad.group()):04X}"
                )
                raise EncodingError(name, f"page text; {what} is not allowed", line=number, text=line)
            if "\ufffd" in line:
                raise EncodingError(
                    name, "page text; found U+FFFD, the mark of undecodable bytes", line=number, text=line
                )
            tag = _HTML_TAG.search(line)
            if tag:
                raise FormatError(
                    name,
                    f"plain page text, not HTML markup ({tag.group()!r})",
                    line=number,
                    text=line,
                )

    # -- cursor helpers -------------------------------------------------

    def error(self, expected: str, index: int | None = None) -> FormatError:
        index = self.i if index is None else index
        if index >= len(self.lines):
            return FormatError(
                self.name,
                f"{expected}; the document ends here (is it truncated?)",
                line=len(self.lines) + 1,
            )
        return FormatError(self.name, expected, line=index + 1, text=self.lines[index])

    def peek(self) -> str | None:
        return self.lines[self.i] if self.i < len(self.lines) else None

    def take(self, expected: str) -> str:
        line = self.peek()
        if line is None:
            raise self.error(expected)
        self.i += 1
        return line

    def expect_exact(self, wanted: str, what: str | None = None) -> None:
        line = self.peek()
        if line != wanted:
            raise self.error(what or f"the line {wanted!r}")
        self.i += 1

    def expect_blank(self, before: str) -> None:
        self.expect_exact("", f"one blank line before {before}")

    def text_line(self, what: str) -> str:
        line = self.take(what)
        if not line.strip():
            raise self.error(what, self.i - 1)
        return line

    # -- document -------------------------------------------------------

    def document(self) -> Document:
        header: str | None = None
        first = self.peek()
        if first is not None and first.startswith("|"):
            header = self.take("the header row")
            self.expect_blank("the title")
        title = self.text_line("the title")
        self.expect_blank("the intro")
        intro = self.text_line("the intro paragraph")
        if intro == f.META_HEADING:
            raise self.error("the intro paragraph", self.i - 1)
        body, figures = self.body()
        self.expect_exact(f.META_HEADING, f"the {f.META_HEADING!r} heading")
        self.expect_blank("the first meta field")
        meta, image_sources = self.meta()
        self.expect_blank(f"the {f.SIMILAR_HEADING!r} heading")
        self.expect_exact(f.SIMILAR_HEADING, f"the {f.SIMILAR_HEADING!r} heading")
        trailer = tuple(self.lines[self.i :])
        images = self.images(figures, image_sources)
        return Document(
            title=title,
            intro=intro,
            body=body,
            images=images,
            meta=meta,
            layout=Layout(
                header=header,
                newline=self.newline,
                final_newline=self.final_newline,
                trailer=trailer,
            ),
        )

    def body(self) -> tuple[tuple[Block, ...], list[tuple[int, str, str]]]:
        """Blocks up to the meta heading; figures as (line index, caption, source)."""
        try:
            end = self.lines.index(f.META_HEADING, self.i)
        except ValueError:
            raise self.error(f"the {f.META_HEADING!r} heading", len(self.lines)) from None
        # The meta heading is preceded by exactly one blank line, not part of the body.
        if end == self.i or self.lines[end - 1] != "":
            raise self.error(f"one blank line before the {f.META_HEADING!r} heading", end)
        stop = end - 1
        blocks: list[Block] = []
        figures: list[tuple[int, str, str]] = []
        gap = 0
        lines = self.lines
        i = self.i
        while i < stop:
            line = lines[i]
            if line == "":
                gap += 1
                i += 1
            elif line.startswith(f.BULLET):
                items: list[str] = []
                while i < stop and lines[i].startswith(f.BULLET):
                    item = lines[i][len(f.BULLET) :]
                    if not item.strip():
                        raise self.error("a list item after the bullet", i)
                    items.append(item)
                    i += 1
                blocks.append(BulletList(tuple(items), gap))
                gap = 0
            elif i + 1 < stop and lines[i + 1].startswith(line + f.IMAGE_SOURCE_MARK):
                source = lines[i + 1][len(line) + len(f.IMAGE_SOURCE_MARK) :]
                if not line.strip() or not source.strip():
                    raise self.error("an image caption and its source", i)
                figures.append((i, line, source))
                blocks.append(Figure(len(figures), gap))
                gap = 0
                i += 2
            elif f.IMAGE_SOURCE_MARK in line:
                raise self.error("an image caption line followed by '<caption>. image source: <source>'", i)
            elif line.lstrip().startswith("•"):
                raise self.error(f"a list item indented as {f.BULLET!r}", i)
            else:
                kind = Paragraph if line.rstrip().endswith(_SENTENCE_END) else Heading
                blocks.append(kind(line, gap))
                gap = 0
                i += 1
        if gap:  # blank lines after the last block: more than the one before the heading
            raise self.error(f"one blank line before the {f.META_HEADING!r} heading, not {gap + 1}", stop - gap)
        self.i = end
        return tuple(blocks), figures

    def images(
        self,
        figures: list[tuple[int, str, str]],
        sources: list[list[tuple[int, str]]],
    ) -> tuple[Image, ...]:
        """Pair the body's images with the meta block's image sources, in order."""
        if len(figures) != len(sources):
            index = sources[len(figures)][0][0] if len(sources) > len(figures) else figures[len(sources)][0]
            raise self.error(
                f"one 'image sources' record per image in the body: the body shows "
                f"{len(figures)} image(s), the meta block lists {len(sources)}",
                index,
            )
        images = []
        for position, ((_, caption, source), record) in enumerate(zip(figures, sources, strict=True), 1):
            (source_index, m_source), (_, url), (caption_index, m_caption) = record
            if m_caption != caption or m_source != source:
                raise self.error(
                    f"image source {position} to match image {position} of the body "
                    f"(caption {caption!r}, source {source!r})",
                    source_index if m_source != source else caption_index,
                )
            images.append(Image(position=position, caption=caption, source=source, url=url))
        return tuple(images)

    # -- meta block -----------------------------------------------------

    def scalar(self, label: str) -> str:
        line = self.peek()
        if line is None or not line.startswith(label) or len(line) == len(label):
            raise self.error(f"the {label!r} field: {label!r} followed by its value")
        self.i += 1
        return line[len(label) :]

    def number(self, label: str, value: str, index: int, low: int = 0, high: int = f.INT_MAX) -> int:
        if not _INT.fullmatch(value):
            raise self.error(f"{label}: a whole number (digits only), not {value!r}", index)
        # The length check first: int() refuses strings of thousands of digits.
        if len(value) > len(str(high)) or not low <= int(value) <= high:
            raise self.error(f"{label}: a number from {low} to {high}, not {value}", index)
        return int(value)

    def checked(self, label: str, value: str, pattern: re.Pattern[str], what: str, index: int) -> str:
        if not pattern.fullmatch(value):
            raise self.error(f"{label}: {what}, not {value!r}", index)
        return value

    def block_label(self, label: str) -> None:
        self.expect_exact(label, f"the {label!r} field: {label!r} on a line of its own")

    def items(self, label: str) -> tuple[str, ...]:
        self.block_label(label)
        items: list[str] = []
        seen: set[str] = set()
        while (line := self.peek()) is not None and line.startswith(f.BULLET):
            item = line[len(f.BULLET) :]
            if not item.strip():
                raise self.error(f"{label}: a value after the bullet")
            if item in seen and label in ("stack", "tools"):
                raise self.error(f"{label}: each value once; {item!r} is repeated")
            seen.add(item)
            items.append(item)
            self.i += 1
        return tuple(items)

    def keyed(self, label: str, keys: tuple[str, ...], prefix: str = f.BULLET) -> list[tuple[int, str]]:
        """``prefix key: value`` lines in the given key order; returns (index, value) pairs."""
        values = []
        for key in keys:
            start = f"{prefix}{key}: "
            line = self.peek()
            if line is None or not line.startswith(start):
                raise self.error(f"{label}: the {key!r} line, {start + '<value>'!r}")
            values.append((self.i, line[len(start) :]))
            self.i += 1
        return values

    def keyed_block(self, label: str, keys: tuple[str, ...]) -> list[tuple[int, str]]:
        self.block_label(label)
        values = self.keyed(label, keys)
        for key, (index, value) in zip(keys, values, strict=True):
            if not value.strip() and not (label == "revision" and key == "last reviewed"):
                raise self.error(f"{label}: a value for {key!r}", index)
        return values

    def records(self, label: str, keys: tuple[str, ...]) -> list[list[tuple[int, str]]]:
        self.block_label(label)
        records = []
        while (line := self.peek()) is not None and line.startswith(f.RECORD_BULLET):
            record = self.keyed(label, keys, f.RECORD_BULLET)
            for key, (index, value) in zip(keys, record, strict=True):
                if not value.strip():
                    raise self.error(f"{label}: a value for {key!r}", index)
            records.append(record)
        return records

    def flag(self, label: str, value: str, index: int) -> bool:
        if value not in ("0", "1"):
            raise self.error(f"{label}: 0 or 1, not {value!r}", index)
        return value == "1"

    def date(self, label: str, value: str, index: int) -> dt.date | None:
        if value == "":
            return None
        if not _DATE.fullmatch(value):
            raise self.error(f"{label}: a date as YYYY-MM-DD, not {value!r}", index)
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise self.error(f"{label}: a real calendar date, not {value!r}", index) from None

    def meta(self) -> tuple[Meta, list[list[tuple[int, str]]]]:
        topic = self.scalar("topic")
        summary = self.scalar("summary")
        outline = [v for _, v in self.keyed_block("ai outline", f.OUTLINE_KEYS)]
        ai_brief = self.scalar("ai brief")
        stack = self.items("stack")
        if not stack:
            raise self.error("stack: at least one '  • <term>' line")
        tools = self.items("tools")
        code_language = self.scalar("code language")
        difficulty = self.scalar("difficulty")
        at = self.i
        reading_time = self.number("reading time", self.scalar("reading time"), at)
        at = self.i
        view_count = self.number("view count", self.scalar("view count"), at)
        scores = [
            self.number(f"score {key}", value, index, f.SCORE_MIN, f.SCORE_MAX)
            for key, (index, value) in zip(f.SCORE_KEYS, self.keyed_block("score", f.SCORE_KEYS), strict=True)
        ]
        (_, status), (vi, version), (di, reviewed) = self.keyed_block("revision", f.REVISION_KEYS)
        self.checked("revision version", version, _VERSION, "a version such as 1.7.2", vi)
        at = self.i
        reference = self.checked("reference", self.scalar("reference"), _KEY, "letters, digits and . _ : - only", at)
        at = self.i
        hash_ = self.checked("hash", self.scalar("hash"), _HEX, "lowercase hexadecimal digits", at)
        flags = [
            self.flag(f"flags {key}", value, index)
            for key, (index, value) in zip(f.FLAG_KEYS, self.keyed_block("flags", f.FLAG_KEYS), strict=True)
        ]
        checklist = self.items("checklist")
        entities: list[Entity] = []
        seen_entities: set[Entity] = set()
        for record in self.records("entities", f.ENTITY_KEYS):
            entity = Entity(name=record[0][1], type=record[1][1])
            if entity in seen_entities:
                raise self.error(
                    f"entities: each entity once; {entity.name!r} ({entity.type}) is repeated", record[0][0]
                )
            seen_entities.add(entity)
            entities.append(entity)
        image_sources = self.records("image sources", f.IMAGE_SOURCE_KEYS)
        (pi, source_id), (_, generator), (ni, paragraphs), (_, scenario), (ei, seed) = self.keyed_block(
            "payload", f.PAYLOAD_KEYS
        )
        self.checked("payload source id", source_id, _KEY, "letters, digits and . _ : - only", pi)
        notes = self.items("notes")
        meta = Meta(
            topic=topic,
            summary=summary,
            outline=Outline(*outline),
            ai_brief=ai_brief,
            stack=stack,
            tools=tools,
            code_language=code_language,
            difficulty=difficulty,
            reading_time=reading_time,
            view_count=view_count,
            scores=Scores(*scores),
            revision=Revision(
                status=status,
                version=version,
                last_reviewed=self.date("revision last reviewed", reviewed, di),
            ),
            reference=reference,
            hash=hash_,
            flags=Flags(*flags),
            checklist=checklist,
            entities=tuple(entities),
            payload=Payload(
                source_id=source_id,
                generator=generator,
                paragraphs=self.number("payload paragraphs", paragraphs, ni),
                scenario=scenario,
                seed=self.number("payload seed", seed, ei),
            ),
            notes=notes,
        )
        return meta, image_sources
