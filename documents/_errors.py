"""Errors raised while reading page text.

    DocumentError            a document that is not well-formed alphanode page text
    ├── EncodingError        bytes that are not UTF-8 text (binary data, NUL bytes, ...)
    └── FormatError          a line that is not what the format expects at that place

Every error names the document, the 1-based line number (when one applies), the
offending line and what was expected there.
"""

from __future__ import annotations


class DocumentError(ValueError):
    """A document that is not well-formed alphanode page text."""

    def __init__(
        self,
        document: str,
        expected: str,
        *,
        line: int | None = None,
        text: str | None = None,
    ) -> None:
        self.document = document
        self.line = line
        self.text = text
        self.expected = expected
        super().__init__(self.describe())

    def describe(self) -> str:
        where = self.document if self.line is None else f"{self.document}:{self.line}"
        found = ""
        if self.text is not None:
            shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
            found = f" (found {shown!r})"
        return f"{where}: {self.expected}{found}"

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly form for receipts and API errors."""
        return {
            "document": self.document,
            "line": self.line,
            "text": self.text,
            "expected": self.expected,
            "message": self.describe(),
        }


class EncodingError(DocumentError):
    """Bytes that are not UTF-8 page text."""


class FormatError(DocumentError):
    """A line that does not fit the format at its place in the document."""
