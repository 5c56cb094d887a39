"""Helpers for the tests of editors' features: tokens, mutations, revisions, archive and migrations.

Stores are real SQLite files or real PostgreSQL databases (the ``database_url`` and
``new_store_url`` fixtures). Documents are imported through the importer or the
command line; tokens are made with ``alphanode token create`` (or, where a test
needs several, by the store functions it calls). What a test expects
is computed from the documents and from exports (``alphanode export`` or the same
``render(load_document(...))`` it prints), never from the API under test.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import Connection, inspect, text
from starlette.testclient import TestClient

from documents import BulletList, Document, Figure, Heading, Paragraph, parse, render, to_dict
from graph.node import encode_id
from server.app import create_app
from server.cli import main
from server.settings import Settings
from store import tokens
from store.export import find_post_id, load_document
from tests.conftest import SEED_DOCUMENT
from tests.factories import import_paths, on_store
from tests.factories import small_corpus as small_corpus  # (the tests of editors import it from here)
from tests.store.dump import logical_dump

SEED_BYTES = SEED_DOCUMENT.read_bytes()
SEED_REFERENCE = "anp-ref-001632-5801"
TOKEN_PATTERN = r"anp_[A-Za-z0-9_-]{43}"


# -- documents ------------------------------------------------------------------


def documents_in(folder: Path) -> dict[Path, Document]:
    """The folder's documents, parsed, in the importer's order (sorted paths)."""
    return {path: parse(path.read_bytes(), path.name) for path in sorted(folder.rglob("*.txt"))}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def post_id(document: Document) -> str:
    """The post's global ID."""
    return encode_id("Post", document.source_id)


# -- the command line, in-process --------------------------------------------------


@dataclass(frozen=True)
class Run:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8")


def cli(*args: str) -> Run:
    """``alphanode ARGS`` in this process, with its standard output as bytes and standard error as text."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")
    err = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    out.flush()
    buffer = out.buffer
    assert isinstance(buffer, io.BytesIO)
    return Run(code, buffer.getvalue(), err.getvalue())


def cli_import(url: str, *paths: Path) -> Run:
    run = cli("import", "--quiet", "--database", url, *map(str, paths))
    assert run.code == 0, (run.text, run.err)
    return run


def create_token(url: str, name: str, role: str = "editor") -> str:
    """A new token from ``alphanode token create``: the one line it prints on standard output."""
    run = cli("token", "create", "--name", name, "--role", role, "--database", url)
    assert run.code == 0, run.err
    return run.text.strip()


def issue_tokens(url: str, *holders: tuple[str, str], revoked: tuple[str, ...] = ()) -> dict[str, str]:
    """Tokens by holder's name, made in one transaction by what ``alphanode token create`` calls (faster
    than a command each); the holders named in ``revoked`` are revoked at once."""

    def run(conn: Connection) -> dict[str, str]:
        made = {name: tokens.create_token(conn, name, role) for name, role in holders}
        for name in revoked:
            assert tokens.revoke_token(conn, name)
        conn.commit()
        return made

    result: dict[str, str] = on_store(url, run)
    return result


def revoke_token(url: str, name: str) -> None:
    run = cli("token", "revoke", name, "--database", url)
    assert run.code == 0, run.err


def cli_export(url: str, reference: str) -> bytes:
    """What ``alphanode export --reference REF`` prints."""
    run = cli("export", "--database", url, "--reference", reference)
    assert run.code == 0, run.err
    return run.out


def current_hash(url: str, document: Document) -> str:
    """The post's content hash, from its export: sha256 of its page text."""
    return sha256(cli_export(url, document.meta.reference))


def export_all(url: str) -> dict[str, bytes]:
    """Every post's page text by reference, as ``alphanode export`` prints it (render of the stored document)."""

    def run(conn: Connection) -> dict[str, bytes]:
        exported = {}
        for (reference,) in conn.execute(text("SELECT reference FROM post ORDER BY id")):
            post_id = find_post_id(conn, reference=reference)
            assert post_id is not None
            document = load_document(conn, post_id)
            assert document is not None
            exported[reference] = render(document).encode("utf-8")
        return exported

    result: dict[str, bytes] = on_store(url, run)
    return result


def revision_rows(url: str, reference: str) -> list[dict[str, Any]]:
    """The post's revisions straight from the table, oldest first."""

    def run(conn: Connection) -> list[dict[str, Any]]:
        rows = conn.execute(
            text(
                "SELECT r.number, r.author, r.reason, r.content_hash, r.text FROM post_revision r "
                "JOIN post p ON p.id = r.post_id WHERE p.reference = :reference ORDER BY r.number"
            ),
            {"reference": reference},
        ).mappings()
        return [dict(row) for row in rows]

    result: list[dict[str, Any]] = on_store(url, run)
    return result


def snapshot(url: str) -> dict[str, Any]:
    """Everything a write could change: every row of the posts (see tests/store/dump.py) and the history."""

    def history(conn: Connection) -> dict[str, Any]:
        revisions = conn.execute(
            text(
                "SELECT p.source_id, r.number, r.author, r.reason, r.content_hash FROM post_revision r "
                "JOIN post p ON p.id = r.post_id"
            )
        ).all()
        receipts = conn.execute(text("SELECT count(*) FROM import_receipt")).scalar_one()
        return {"revisions": sorted(tuple(r) for r in revisions), "receipts": receipts}

    return {**logical_dump(url), **on_store(url, history)}


def fingerprint(url: str) -> dict[str, Any]:
    """What any write changes, read in one go (cheaper than ``snapshot``): each post's hash, archive mark and
    update time, every revision, the receipts, the tokens and the store's version."""

    def run(conn: Connection) -> dict[str, Any]:
        queries = {
            "posts": "SELECT source_id, content_hash, archived_at, updated_at, slug, reference FROM post",
            "revisions": "SELECT post_id, number, content_hash, author, reason FROM post_revision",
            "receipts": "SELECT id, author, created, updated, unchanged, rejected FROM import_receipt",
            "tokens": "SELECT name, token_hash, revoked_at FROM api_token",
            "version": "SELECT id, version FROM store_version",
        }
        return {name: sorted(map(tuple, conn.execute(text(sql)).all())) for name, sql in queries.items()}

    result: dict[str, Any] = on_store(url, run)
    return result


def settle(client: TestClient) -> None:
    """Wait until the served app's background refresh of similar posts has caught up with its writes."""
    services = client.app.state.services  # type: ignore[attr-defined]
    assert client.portal is not None, "the client is not started (use it in a with block)"
    client.portal.call(services.refresher.settled)


class Unchanged:
    """Checks that the store is as it was: after each attempt (its fingerprint), and at the end (every row).

    With ``client``, the served app's background refresh of similar posts (after earlier writes)
    is waited for first, each time: its writes are not the attempt's.
    """

    def __init__(self, url: str, every_row: bool = True, client: TestClient | None = None) -> None:
        self.url = url
        self.client = client
        self._settle()
        self.fingerprint = fingerprint(url)
        self.snapshot = snapshot(url) if every_row else None

    def _settle(self) -> None:
        if self.client is not None:
            settle(self.client)

    def check(self, what: str) -> None:
        self._settle()
        assert fingerprint(self.url) == self.fingerprint, f"{what} wrote something"

    def check_every_row(self) -> None:
        assert self.snapshot is not None
        self._settle()
        assert snapshot(self.url) == self.snapshot


def table_names(url: str) -> set[str]:
    return set(on_store(url, lambda conn: inspect(conn).get_table_names()))


def import_folder(url: str, folder: Path) -> None:
    """Import a folder as ``alphanode import`` does (author ``import``), in-process."""
    import_paths(url, folder)


# -- GraphQL over HTTP ------------------------------------------------------------------


@contextlib.contextmanager
def serve(url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=url))) as client:
        yield client


def headers_for(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def post_graphql(
    client: TestClient | httpx2.Client,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
    operation_name: str | None = None,
) -> httpx2.Response:
    body = {"query": query, "variables": variables or {}}
    if operation_name is not None:
        body["operationName"] = operation_name
    return client.post("/graphql", json=body, headers=headers_for(token))


def graphql(
    client: TestClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
    operation_name: str | None = None,
) -> dict[str, Any]:
    """The JSON body of a POST that is answered with 200."""
    response = post_graphql(client, query, variables, token, operation_name)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def data(
    client: TestClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
    operation_name: str | None = None,
) -> Any:
    body = graphql(client, query, variables, token, operation_name)
    assert "errors" not in body, body["errors"]
    return body["data"]


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors", [])]


# The selections of each result union (a fragment on a type outside the union is a validation error).
POST_FIELDS = """
  id slug title contentHash archivedAt
  meta { reference stack tools revision { status lastReviewed } flags { needsHumanReview } }
  scores { quality }
"""
SAVED = f"... on PostSaved {{ revision changed post {{ {POST_FIELDS} }} }}"
INVALID = "... on ValidationError { message fields { path code message } }"
NOT_FOUND = "... on NotFound { message }"
CONFLICT = "... on Conflict { message currentHash }"
RECEIPT = f"... on ImportReceipt {{ created updated unchanged rejected {{ document error }} post {{ {POST_FIELDS} }} }}"

IMPORT_DOCUMENT = f"""mutation Import($text: String!) {{
  result: importDocument(text: $text) {{ __typename {RECEIPT} {INVALID} {CONFLICT} }}
}}"""
CREATE_POST = f"""mutation Create($input: PostInput!) {{
  result: createPost(input: $input) {{ __typename {SAVED} {INVALID} {CONFLICT} }}
}}"""
UPDATE_POST = f"""mutation Update($id: ID!, $input: PostPatch!, $expectedHash: String!) {{
  result: updatePost(id: $id, input: $input, expectedHash: $expectedHash) {{
    __typename {SAVED} {INVALID} {NOT_FOUND} {CONFLICT}
  }}
}}"""


def _change(field: str, arguments: str, declared: str) -> str:
    return f"""mutation Change({declared}) {{
  result: {field}({arguments}) {{ __typename {SAVED} {INVALID} {NOT_FOUND} {CONFLICT} }}
}}"""


MARK_REVIEWED = _change("markReviewed", "id: $id", "$id: ID!")
SET_STATUS = _change("setStatus", "id: $id, status: $status", "$id: ID!, $status: String!")
ARCHIVE_POST = _change("archivePost", "id: $id", "$id: ID!")
RESTORE_POST = _change("restorePost", "id: $id", "$id: ID!")
ROLLBACK_POST = _change("rollbackPost", "id: $id, revision: $revision", "$id: ID!, $revision: Int!")

EDITOR_VIEW = """query Editor($reference: String!) {
  post(reference: $reference) {
    id slug title contentHash archivedAt
    revisions { number author createdAt reason contentHash }
  }
}"""


def editor_view(client: TestClient, reference: str, token: str) -> dict[str, Any]:
    post: dict[str, Any] = data(client, EDITOR_VIEW, {"reference": reference}, token)["post"]
    assert post is not None, reference
    return post


def saved(body: dict[str, Any]) -> dict[str, Any]:
    """The PostSaved of a mutation's answer."""
    assert "errors" not in body, body["errors"]
    result: dict[str, Any] = body["data"]["result"]
    assert result["__typename"] == "PostSaved", result
    return result


# -- PostInput from a document ----------------------------------------------------------


def post_input(document: Document) -> dict[str, Any]:
    """The createPost input holding every part of the document (GraphQL variable JSON).

    The document's JSON view (``documents.to_dict``, the names the API uses) with the input's
    own shapes: body blocks as ``{"heading": text}``, ``{"list": items}``, ``{"image": n}``, and
    images without their position (their order is it); no slug (the server derives it).
    """
    data = to_dict(document)
    del data["slug"]
    data["images"] = [{k: v for k, v in image.items() if k != "position"} for image in data["images"]]
    data["body"] = [_input_block(block) for block in document.body]
    return data


def _input_block(block: Heading | Paragraph | BulletList | Figure) -> dict[str, Any]:
    if isinstance(block, Heading):
        return {"heading": block.text}
    if isinstance(block, Paragraph):
        return {"paragraph": block.text}
    if isinstance(block, BulletList):
        return {"list": list(block.items)}
    return {"image": block.image}
