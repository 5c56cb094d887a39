"""Mutations refuse what they cannot write: typed errors that name the field, and nothing written.

Invalid input to createPost and updatePost is a ``ValidationError`` whose
``fields`` say where (the path in the mutation's input, such as
``["input", "scores", "quality"]``) and what (a ``ValidationCode``); a date that is
not a date is refused before the mutation runs (a variable error); a source id or
reference another post has is a ``Conflict``; a document that is not well-formed
is a ``PARSE_ERROR`` naming its line. After each, the store is as it was (see
``tests/editing.Unchanged``). One store per database for the module: the seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from documents import parse
from documents.synth import synthesize
from graph.node import encode_id
from tests.conftest import SEED_DOCUMENT
from tests.editing import (
    CREATE_POST,
    IMPORT_DOCUMENT,
    SEED_BYTES,
    SEED_REFERENCE,
    UPDATE_POST,
    Unchanged,
    cli_import,
    current_hash,
    graphql,
    issue_tokens,
    post_id,
    post_input,
    serve,
    snapshot,
)

SEED = parse(SEED_BYTES)
NEVER_STORED = next(synthesize(1, seed=99))  # what the tests try to create


@dataclass(frozen=True)
class Store:
    url: str
    client: TestClient
    editor: str
    seed_hash: str  # the seed's content hash (no test of the module changes the seed)


@pytest.fixture(scope="module")
def store(new_store_url: Callable[[str], str]) -> Iterator[Store]:
    url = new_store_url("validation")
    cli_import(url, SEED_DOCUMENT)
    editor = issue_tokens(url, ("alice", "editor"))["alice"]
    before = snapshot(url)
    with serve(url) as client:
        yield Store(url, client, editor, current_hash(url, SEED))
    # No test of the module wrote anything: every row is as it was.
    assert snapshot(url) == before


# -- invalid input -------------------------------------------------------------------------


def _index(body: list[dict[str, Any]], kind: str, last: bool = False) -> int:
    found = [i for i, block in enumerate(body) if kind in block]
    return found[-1] if last else found[0]


def _set(path: tuple[str, ...], value: Callable[[Any], Any]) -> Callable[[dict[str, Any]], None]:
    def change(post: dict[str, Any]) -> None:
        target = post
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value(target[path[-1]])

    return change


def _body_change(kind: str, text: Any, last: bool = False) -> Callable[[dict[str, Any]], None]:
    def change(post: dict[str, Any]) -> None:
        i = _index(post["body"], kind, last)
        post["body"][i][kind] = text(post) if callable(text) else text

    return change


def _body_path(post: dict[str, Any], kind: str, last: bool = False) -> list[str]:
    return ["body", str(_index(post["body"], kind, last)), kind]


# id: (the part of the input it changes, the change, the field error's path (given the input), its code)
INVALID: dict[
    str, tuple[tuple[str, ...], Callable[[dict[str, Any]], None], Callable[[dict[str, Any]], list[str]], str]
] = {
    "quality 101": (
        ("scores",),
        _set(("scores", "quality"), lambda _: 101),
        lambda _: ["scores", "quality"],
        "OUT_OF_RANGE",
    ),
    "empty stack": (("meta", "stack"), _set(("meta", "stack"), lambda _: []), lambda _: ["meta", "stack"], "REQUIRED"),
    "duplicate tool": (
        ("meta", "tools"),
        _set(("meta", "tools"), lambda tools: [*tools, tools[0]]),
        lambda post: ["meta", "tools", str(len(post["meta"]["tools"]) - 1)],
        "DUPLICATE",
    ),
    "paragraph not ending like a sentence": (
        ("body",),
        _body_change("paragraph", "this paragraph never ends"),
        lambda post: _body_path(post, "paragraph"),
        "INVALID_FORMAT",
    ),
    "heading ending with a period": (
        ("body",),
        _body_change("heading", "production checks."),
        lambda post: _body_path(post, "heading"),
        "INVALID_FORMAT",
    ),
    "html in the title": (
        ("title",),
        _set(("title",), lambda _: "a <b>bold</b> title"),
        lambda _: ["title"],
        "INVALID_FORMAT",
    ),
    "line break in the intro": (
        ("intro",),
        _set(("intro",), lambda intro: intro.replace(". ", ".\n", 1)),
        lambda _: ["intro"],
        "INVALID_FORMAT",
    ),
    "image block naming a missing image": (
        ("body",),
        _body_change("image", lambda post: len(post["images"]) + 1, last=True),
        lambda post: _body_path(post, "image", last=True),
        "INVALID_REFERENCE",
    ),
    "reference with spaces": (
        ("meta", "reference"),
        _set(("meta", "reference"), lambda _: "anp ref 1"),
        lambda _: ["meta", "reference"],
        "INVALID_FORMAT",
    ),
    "hash not hex": (
        ("meta", "hash"),
        _set(("meta", "hash"), lambda _: "not-hex!"),
        lambda _: ["meta", "hash"],
        "INVALID_FORMAT",
    ),
    "reading time -1": (
        ("meta", "readingTime"),
        _set(("meta", "readingTime"), lambda _: -1),
        lambda _: ["meta", "readingTime"],
        "OUT_OF_RANGE",
    ),
}


def _patch(post: dict[str, Any], part: tuple[str, ...]) -> dict[str, Any]:
    """The updatePost input that replaces ``part`` of the post."""
    if part[0] == "meta":
        return {"meta": {part[1]: post["meta"][part[1]]}}
    return {part[0]: post[part[0]]}


@pytest.mark.parametrize("mutation", ["createPost", "updatePost"])
@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_input_is_a_validation_error_naming_the_field(store: Store, case: str, mutation: str) -> None:
    part, change, path, code = INVALID[case]
    unchanged = Unchanged(store.url, every_row=False, client=store.client)
    post = post_input(NEVER_STORED if mutation == "createPost" else SEED)
    change(post)
    if mutation == "createPost":
        body = graphql(store.client, CREATE_POST, {"input": post}, store.editor)
    else:
        variables = {"id": post_id(SEED), "input": _patch(post, part), "expectedHash": store.seed_hash}
        body = graphql(store.client, UPDATE_POST, variables, store.editor)
    assert "errors" not in body, body
    result = body["data"]["result"]
    assert result["__typename"] == "ValidationError", result
    assert [(f["path"], f["code"]) for f in result["fields"]] == [(["input", *path(post)], code)]
    assert all(f["message"] for f in result["fields"])
    unchanged.check(case)


@pytest.mark.parametrize("mutation", ["createPost", "updatePost"])
def test_an_impossible_date_is_a_variable_error_and_writes_nothing(store: Store, mutation: str) -> None:
    post = post_input(NEVER_STORED if mutation == "createPost" else SEED)
    post["meta"]["revision"]["lastReviewed"] = "2026-02-30"
    unchanged = Unchanged(store.url, every_row=False, client=store.client)
    if mutation == "createPost":
        body = graphql(store.client, CREATE_POST, {"input": post}, store.editor)
    else:
        variables = {
            "id": post_id(SEED),
            "input": {"meta": {"revision": post["meta"]["revision"]}},
            "expectedHash": store.seed_hash,
        }
        body = graphql(store.client, UPDATE_POST, variables, store.editor)
    assert "data" not in body, body  # the operation never ran
    (error,) = body["errors"]
    assert "lastReviewed" in error["message"]
    assert "2026-02-30" in error["message"]
    unchanged.check(f"{mutation} with an impossible date")


def test_an_impossible_date_error_carries_an_error_code(store: Store) -> None:
    # The README: "Every error is a JSON body with `errors[].extensions.code`".
    post = post_input(NEVER_STORED)
    post["meta"]["revision"]["lastReviewed"] = "2026-02-30"
    body = graphql(store.client, CREATE_POST, {"input": post}, store.editor)
    (error,) = body["errors"]
    assert error.get("extensions", {}).get("code"), error


def test_create_post_with_a_taken_source_id_or_reference_is_a_conflict(store: Store) -> None:
    same_source = post_input(SEED)
    same_reference = post_input(NEVER_STORED)
    same_reference["meta"]["reference"] = SEED_REFERENCE
    unchanged = Unchanged(store.url, every_row=False, client=store.client)
    for post, named in ((same_source, SEED.source_id), (same_reference, SEED_REFERENCE)):
        body = graphql(store.client, CREATE_POST, {"input": post}, store.editor)
        result = body["data"]["result"]
        assert result["__typename"] == "Conflict", result
        assert named in result["message"]
        assert result["currentHash"] is None
        unchanged.check(f"createPost of a post whose {named!r} is taken")


def test_import_document_of_malformed_text_is_a_parse_error_naming_the_line(store: Store) -> None:
    text = SEED_BYTES.decode("utf-8")
    line = text.split("\n").index("reading time5") + 1
    broken = text.replace("\nreading time5\n", "\nreading timefive\n")
    unchanged = Unchanged(store.url, every_row=False, client=store.client)
    body = graphql(store.client, IMPORT_DOCUMENT, {"text": broken}, store.editor)
    result = body["data"]["result"]
    assert result["__typename"] == "ValidationError", result
    (field,) = result["fields"]
    assert (field["path"], field["code"]) == (["text"], "PARSE_ERROR")
    assert f":{line}: reading time" in field["message"]
    assert "reading timefive" in field["message"]
    unchanged.check("importDocument of malformed text")


def test_update_of_an_unknown_post_is_not_found(store: Store) -> None:
    unchanged = Unchanged(store.url, every_row=False, client=store.client)
    variables = {"id": encode_id("Post", "no-such-post"), "input": {"title": "x"}, "expectedHash": "0" * 64}
    result = graphql(store.client, UPDATE_POST, variables, store.editor)["data"]["result"]
    assert result["__typename"] == "NotFound", result
    unchanged.check("updatePost of an unknown post")
