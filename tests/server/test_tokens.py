"""Bearer tokens: made with ``alphanode token``, stored as their sha256 only, checked on every request.

A request without ``Authorization`` is a public reader; a valid token is an editor
or admin; anything else (a malformed header, an unknown or revoked token) is a 401
with a JSON error and a ``WWW-Authenticate: Bearer`` challenge, never a reader.
Tokens never reach the database, the logs or a response.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, text
from starlette.testclient import TestClient

from documents import parse
from graph.node import encode_id
from tests.conftest import SEED_DOCUMENT
from tests.editing import (
    EDITOR_VIEW,
    SEED_BYTES,
    SEED_REFERENCE,
    SET_STATUS,
    TOKEN_PATTERN,
    cli,
    cli_import,
    create_token,
    data,
    error_codes,
    graphql,
    on_store,
    post_graphql,
    revoke_token,
    serve,
    sha256,
)

SEED = parse(SEED_BYTES)
# A token of the right form that no store ever issued.
UNKNOWN_TOKEN = "anp_" + "A" * 43
REVISIONS = "query R($reference: String!) { post(reference: $reference) { title revisions { number author } } }"


@dataclass(frozen=True)
class Tokens:
    url: str
    editor: str
    admin: str
    revoked: str


def make_tokens(url: str) -> Tokens:
    """The seed document, an editor token (alice), an admin token (root) and a revoked one (mallory)."""
    cli_import(url, SEED_DOCUMENT)
    editor, admin = create_token(url, "alice", "editor"), create_token(url, "root", "admin")
    revoked = create_token(url, "mallory", "editor")
    revoke_token(url, "mallory")
    return Tokens(url, editor, admin, revoked)


@pytest.fixture
def tokens(database_url: str) -> Tokens:
    """A store of its own, for tests that change tokens or posts."""
    return make_tokens(database_url)


@pytest.fixture(scope="module")
def shared(new_store_url: Callable[[str], str]) -> Tokens:
    """A store for the module's tests that write nothing lasting."""
    return make_tokens(new_store_url("tokens"))


@pytest.fixture(scope="module")
def client(shared: Tokens) -> Iterator[TestClient]:
    with serve(shared.url) as client:
        yield client


def revision_count(url: str) -> int:
    count: int = on_store(url, lambda c: c.execute(text("SELECT count(*) FROM post_revision")).scalar_one())
    return count


def seed_id() -> str:
    return encode_id("Post", SEED.source_id)


# -- alphanode token create | list | revoke ---------------------------------------


def test_token_create_prints_the_token_once_on_stdout(database_url: str) -> None:
    cli_import(database_url, SEED_DOCUMENT)
    run = cli("token", "create", "--name", "alice", "--role", "editor", "--database", database_url)
    assert run.code == 0, run.err
    # Standard output is the token and nothing else: one line, anp_ and 43 URL-safe characters.
    assert re.fullmatch(TOKEN_PATTERN + "\n", run.text), run.text
    token = run.text.strip()
    assert token not in run.err
    assert "alice" in run.err  # what was made is said on standard error, without the token
    # A second token has other characters (256 random bits each).
    other = create_token(database_url, "bob", "admin")
    assert re.fullmatch(TOKEN_PATTERN, other)
    assert other != token


def test_token_create_refuses_a_second_active_token_of_the_same_name(shared: Tokens) -> None:
    before = on_store(shared.url, _token_rows)
    run = cli("token", "create", "--name", "alice", "--role", "admin", "--database", shared.url)
    assert run.code == 1
    assert run.out == b""
    assert "alice" in run.err
    assert on_store(shared.url, _token_rows) == before


def _stored_text(conn: Connection) -> dict[str, list[str]]:
    """Every value of every table, as text, by table (PostgreSQL casts each row to text)."""
    found: dict[str, list[str]] = {}
    for table in inspect(conn).get_table_names():
        if conn.dialect.name == "postgresql":
            rows = conn.execute(text(f'SELECT t::text FROM "{table}" t')).scalars()
            found[table] = [str(row) for row in rows]
        else:
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
            found[table] = [str(value) for row in rows for value in row]
    return found


def _token_rows(conn: Connection) -> list[dict[str, str | None]]:
    """Every column of api_token, each cast to text."""
    columns = [c["name"] for c in inspect(conn).get_columns("api_token")]
    casts = ", ".join(f"CAST({name} AS TEXT) AS {name}" for name in columns)
    return [dict(row) for row in conn.execute(text(f"SELECT {casts} FROM api_token ORDER BY id")).mappings()]


def test_the_store_holds_only_the_sha256_of_a_token(shared: Tokens, dialect: str) -> None:
    rows = on_store(shared.url, _token_rows)
    assert [row["name"] for row in rows] == ["alice", "root", "mallory"]
    for row, token in zip(rows, (shared.editor, shared.admin, shared.revoked), strict=True):
        assert row["token_hash"] == sha256(token.encode())
        assert row["prefix"] == token[:10]
        for column, value in row.items():
            assert value is None or token not in value, f"api_token.{column} holds the token"
    # Nowhere else either: every value of every table.
    for table, values in on_store(shared.url, _stored_text).items():
        for value in values:
            assert all(token not in value for token in (shared.editor, shared.admin)), f"{table} holds a token"
    if dialect == "sqlite":
        # The raw bytes of the database file and its write-ahead log hold the hash but not the token.
        path = Path(shared.url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert sha256(shared.editor.encode()).encode() in raw
        assert shared.editor.encode() not in raw
        assert shared.admin.encode() not in raw


def test_token_list_names_each_token_by_a_short_prefix_only(shared: Tokens) -> None:
    run = cli("token", "list", "--database", shared.url)
    assert run.code == 0, run.err
    lines = run.text.splitlines()
    assert [line.split("\t")[:3] for line in lines] == [
        ["alice", "editor", shared.editor[:10] + "…"],
        ["mallory", "editor", shared.revoked[:10] + "…"],
        ["root", "admin", shared.admin[:10] + "…"],
    ]
    assert [line.rsplit("\t", 1)[1].split(" ")[0] for line in lines] == ["active", "revoked", "active"]
    for token in (shared.editor, shared.admin, shared.revoked):
        # No run of 11 characters of the token is printed: only its 10-character prefix.
        assert not any(token[i : i + 11] in run.text + run.err for i in range(len(token) - 10)), run.text


def test_token_revoke_makes_the_token_get_401(tokens: Tokens) -> None:
    with serve(tokens.url) as client:
        before = data(client, REVISIONS, {"reference": SEED_REFERENCE}, tokens.editor)
        assert before["post"]["revisions"] == [{"number": 1, "author": "import"}]

        run = cli("token", "revoke", "alice", "--database", tokens.url)
        assert (run.code, run.text) == (0, "revoked the token 'alice'\n")

        response = post_graphql(client, REVISIONS, {"reference": SEED_REFERENCE}, tokens.editor)
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        # The other token still works.
        assert data(client, REVISIONS, {"reference": SEED_REFERENCE}, tokens.admin)["post"]["revisions"]
    listed = cli("token", "list", "--database", tokens.url).text.splitlines()
    assert listed[0].startswith("alice\t") and "\trevoked " in listed[0]
    # Revoking it again says there is no such active token.
    again = cli("token", "revoke", "alice", "--database", tokens.url)
    assert again.code == 1
    assert "alice" in again.err


# -- requests ---------------------------------------------------------------------


def test_a_request_without_authorization_is_a_public_reader(client: TestClient, shared: Tokens) -> None:
    body = graphql(client, REVISIONS, {"reference": SEED_REFERENCE})
    assert body["data"]["post"] == {"title": SEED.title, "revisions": None}
    assert error_codes(body) == ["UNAUTHENTICATED"]
    # A mutation is refused, in a 200 answer: the reader is not an editor, and nothing is written.
    before = revision_count(shared.url)
    body = graphql(client, SET_STATUS, {"id": seed_id(), "status": "published"})
    assert body["data"] is None
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert revision_count(shared.url) == before


def test_a_valid_bearer_token_is_an_editor(tokens: Tokens) -> None:
    with serve(tokens.url) as client:
        for token in (tokens.editor, tokens.admin):
            post = data(client, EDITOR_VIEW, {"reference": SEED_REFERENCE}, token)["post"]
            assert [(r["number"], r["author"]) for r in post["revisions"]] == [(1, "import")]
        body = graphql(client, SET_STATUS, {"id": seed_id(), "status": "published"}, tokens.editor)
        assert body["data"]["result"]["__typename"] == "PostSaved", body
        post = data(client, EDITOR_VIEW, {"reference": SEED_REFERENCE}, tokens.admin)["post"]
        assert [(r["number"], r["author"]) for r in post["revisions"]] == [(2, "alice"), (1, "import")]


def test_the_authorization_scheme_is_case_insensitive(client: TestClient, shared: Tokens) -> None:
    response = client.post(
        "/graphql",
        json={"query": REVISIONS, "variables": {"reference": SEED_REFERENCE}},
        headers={"Authorization": f"bearer {shared.editor}"},
    )
    assert response.status_code == 200
    assert response.json()["data"]["post"]["revisions"] == [{"number": 1, "author": "import"}]


BAD_CREDENTIALS = {
    # kind: (Authorization header, the secret that must not be echoed, if any)
    "basic": ("Basic x", "Basic x"),
    "no token": ("Bearer", None),
    "malformed": ("Bearer abc", "abc"),
    "unknown token": (f"Bearer {UNKNOWN_TOKEN}", UNKNOWN_TOKEN),
    "revoked token": ("Bearer {revoked}", "{revoked}"),
}


@pytest.mark.parametrize("kind", list(BAD_CREDENTIALS))
def test_bad_credentials_are_401_with_a_bearer_challenge(client: TestClient, shared: Tokens, kind: str) -> None:
    header, secret = BAD_CREDENTIALS[kind]
    header = header.format(revoked=shared.revoked)
    secret = None if secret is None else secret.format(revoked=shared.revoked)
    before = revision_count(shared.url)
    for query, variables in (
        (REVISIONS, {"reference": SEED_REFERENCE}),
        (SET_STATUS, {"id": seed_id(), "status": "published"}),
    ):
        response = client.post(
            "/graphql", json={"query": query, "variables": variables}, headers={"Authorization": header}
        )
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["www-authenticate"].startswith("Bearer")
        body = response.json()
        assert set(body) == {"errors"}, body  # never a reader's answer
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert error["message"]
        if secret is not None:
            assert secret not in error["message"]
            assert secret not in response.text
    # The mutation wrote nothing.
    assert revision_count(shared.url) == before


def test_bad_credentials_over_get_are_401_too(client: TestClient) -> None:
    response = client.get(
        "/graphql",
        params={"query": REVISIONS, "variables": json.dumps({"reference": SEED_REFERENCE})},
        headers={"Authorization": f"Bearer {UNKNOWN_TOKEN}"},
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_tokens_never_reach_the_logs_or_a_response(
    shared: Tokens, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given every logger at DEBUG, and a server started now (its start-up logs are captured too).
    caplog.set_level(logging.DEBUG)
    secrets = (shared.editor, shared.admin, shared.revoked, UNKNOWN_TOKEN)
    responses = []
    # When requests of every kind are made with valid, revoked and unknown tokens: queries, mutations
    # (refused by a typed result, or invalid), queries that do not validate, GET.
    with serve(shared.url) as client:
        for token in secrets:
            responses.append(post_graphql(client, REVISIONS, {"reference": SEED_REFERENCE}, token))
            responses.append(post_graphql(client, SET_STATUS, {"id": "bm90IGFuIGlk", "status": "x"}, token))
            responses.append(post_graphql(client, "{ post(slug: 1) { nope } }", None, token))
            responses.append(
                client.get(
                    "/graphql",
                    params={"query": "{ posts { totalCount } }"},
                    headers={"Authorization": f"Bearer {token}"},
                )
            )
    # Then the valid tokens worked and the others were refused ...
    assert [r.status_code for r in responses] == [200] * 8 + [401] * 8
    # ... and no token is in any log record, any response, or anything printed.
    assert caplog.records, "the requests logged nothing: the check would prove nothing"
    logged = "\n".join(
        [caplog.text] + [f"{r.getMessage()} {r.args!r} {r.exc_text or ''} {r.__dict__!r}" for r in caplog.records]
    )
    printed = capsys.readouterr()
    for token in secrets:
        assert token not in logged
        assert token not in printed.out + printed.err
        for response in responses:
            assert token not in response.text
            assert all(token not in value for value in response.headers.values())
