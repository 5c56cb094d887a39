"""Fuzzing ``parse``: edits of the seed give a Document that renders back to the same text, or a
DocumentError; nothing else escapes."""

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from documents import DocumentError, parse, render
from tests.documents.seed_edits import LINES, NAME, SEED, join

# -- fuzzing: nothing but a Document or a DocumentError ----------------------------

PIECES = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "  • ",
        "    • ",
        "•",
        ". image source: ",
        "alphanode post meta",
        "Similar Posts",
        "| | |",
        "0",
        "05",
        "-1",
        "101",
        "9" * 30,
        "2026-02-30",
        "<b>",
        "<!--",
        "\r",
        "\n",
        "\r\n",
        "\x00",
        "\x85",
        "\ufeff",
        "\ufffd",
        "\udcff",
        "é",
    ]
)
LINE_INDEX = st.integers(min_value=0, max_value=len(LINES) - 1)
SEED_LINE = st.sampled_from(LINES)
TEXT = st.one_of(PIECES, st.text(max_size=12), SEED_LINE)

EDITS = st.one_of(
    st.tuples(st.just("delete"), LINE_INDEX, st.just(0), st.just("")),
    st.tuples(st.just("duplicate"), LINE_INDEX, st.just(0), st.just("")),
    st.tuples(st.just("swap"), LINE_INDEX, LINE_INDEX, st.just("")),
    st.tuples(st.just("insert-line"), LINE_INDEX, st.just(0), TEXT),
    st.tuples(st.just("insert-text"), LINE_INDEX, st.integers(0, 300), TEXT),
    st.tuples(st.just("cut-line"), LINE_INDEX, st.integers(0, 300), st.just("")),
)


def mutate(edits: list[tuple[str, int, int, str]]) -> str:
    lines = list(LINES)
    for kind, index, other, text in edits:
        index %= max(len(lines), 1)
        if not lines:
            lines = [text]
        elif kind == "delete":
            del lines[index]
        elif kind == "duplicate":
            lines.insert(index, lines[index])
        elif kind == "swap":
            other %= len(lines)
            lines[index], lines[other] = lines[other], lines[index]
        elif kind == "insert-line":
            lines.insert(index, text)
        elif kind == "insert-text":
            at = other % (len(lines[index]) + 1)
            lines[index] = lines[index][:at] + text + lines[index][at:]
        else:  # cut-line: keep the start of a line
            lines[index] = lines[index][: other % (len(lines[index]) + 1)]
    return join(lines)


@st.composite
def documents(draw: st.DrawFn) -> str | bytes:
    """A mutated seed, as str or bytes, possibly with CRLF, a final newline or cut short."""
    text = mutate(draw(st.lists(EDITS, max_size=4)))
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    if draw(st.booleans()):
        text += "\n"
    if not draw(st.booleans()):
        return text
    data = text.encode("utf-8", "surrogatepass")
    shape = draw(st.sampled_from(["whole", "cut", "splice", "random"]))
    if shape == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif shape == "splice":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=16)) + data[at:]
    elif shape == "random":
        data = draw(st.binary(max_size=256))
    return data


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(documents())
def test_fuzz_parse_returns_a_round_trip_or_a_document_error(text: str | bytes) -> None:
    try:
        document = parse(text, NAME)
    except DocumentError as err:
        event(f"rejected: {type(err).__name__}")
        assert err.document == NAME
        assert err.line is None or err.line >= 1
        assert err.expected
        return
    event("parsed")
    rendered = render(document)
    assert (rendered if isinstance(text, str) else rendered.encode("utf-8")) == text


def test_fuzz_unmutated_seed_parses() -> None:
    # The fuzz strategy's starting point is a valid document (so parsing paths get exercised).
    assert render(parse(mutate([]))) == SEED
