"""Malformed documents: each is rejected with a DocumentError that names the document, the
1-based line and what was expected there; nothing else ever escapes ``parse``.

Every case is a small edit of the real seed document. The edit helpers check the line they
change, so a case's line number is also checked against the text it describes.
"""

from __future__ import annotations

import pytest

from documents import DocumentError, EncodingError, FormatError, parse
from tests.documents.malformed import CASES
from tests.documents.seed_edits import NAME


@pytest.mark.parametrize(("text", "error", "line", "expected"), CASES)
def test_malformed_document_is_rejected(
    text: str | bytes, error: type[DocumentError], line: int | None, expected: str
) -> None:
    with pytest.raises(DocumentError) as caught:
        parse(text, NAME)
    err = caught.value
    assert type(err) is error, err
    assert err.document == NAME
    assert err.line == line, err
    assert expected in err.expected, err
    # The message names the document and the line, and the receipt form agrees.
    where = NAME if line is None else f"{NAME}:{line}"
    assert str(err).startswith(f"{where}: {err.expected}")
    assert err.as_dict()["line"] == line
    # The offending line is quoted when the error is about a line that exists.
    if err.text is not None:
        shown = text if isinstance(text, str) else text.decode("utf-8")
        first_break = shown.find("\n")
        newline = "\r\n" if first_break > 0 and shown[first_break - 1] == "\r" else "\n"
        assert err.line is not None
        assert err.text == shown.split(newline)[err.line - 1]


def has_utf8(text: object) -> bool:
    """A str case that can also be given as UTF-8 bytes (not bytes already, no lone surrogate)."""
    return isinstance(text, str) and not any("\ud800" <= char <= "\udfff" for char in text)


@pytest.mark.parametrize(("text", "error", "line", "expected"), [case for case in CASES if has_utf8(case.values[0])])
def test_malformed_document_is_rejected_as_bytes_too(
    text: str, error: type[DocumentError], line: int | None, expected: str
) -> None:
    """The same verdict whether the text is given as str or as its UTF-8 bytes."""
    data = text.encode("utf-8")
    with pytest.raises(error) as caught:
        parse(data, NAME)
    assert caught.value.line == line
    assert expected in caught.value.expected


def test_document_name_defaults() -> None:
    with pytest.raises(FormatError) as caught:
        parse("")
    assert caught.value.document == "<document>"


def test_errors_are_value_errors() -> None:
    # Callers that catch ValueError keep working.
    assert issubclass(EncodingError, DocumentError)
    assert issubclass(FormatError, DocumentError)
    assert issubclass(DocumentError, ValueError)
