"""Revisions: every write of a post, from any path, is a numbered version with who, when and why.

One store per database for the module, each test on posts of its own: the seed
document and five synthesized ones, imported with ``alphanode import``. What a
revision must hold is what ``alphanode export`` printed right after the write
that made it (and, for revision 1, the imported file's bytes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from documents import Document, parse, render, to_dict
from documents.synth import synthesize
from graph.node import encode_id
from tests.editing import (
    ARCHIVE_POST,
    CREATE_POST,
    EDITOR_VIEW,
    IMPORT_DOCUMENT,
    MARK_REVIEWED,
    RESTORE_POST,
    ROLLBACK_POST,
    SEED_BYTES,
    SEED_REFERENCE,
    SET_STATUS,
    UPDATE_POST,
    cli,
    cli_export,
    cli_import,
    data,
    editor_view,
    error_codes,
    fingerprint,
    graphql,
    issue_tokens,
    post_id,
    post_input,
    revision_rows,
    saved,
    serve,
    sha256,
)

SEED = parse(SEED_BYTES)
# The posts of the module's tests: each test writes to its own.
DOCUMENTS = list(synthesize(5, seed=31))
TO_REVIEW, TO_ROLL_BACK, TO_ROLL_BACK_BY_CLI, UNTOUCHED, _ = DOCUMENTS
TO_CREATE = next(synthesize(1, seed=32))


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class History:
    url: str
    folder: Path
    client: TestClient
    editor: str  # alice
    admin: str  # root
    imported_at: tuple[dt.datetime, dt.datetime]  # the import ran between these

    def file(self, document: Document) -> Path:
        return self.folder / f"{document.source_id}.txt"

    def run(self, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
        return saved(graphql(self.client, query, variables, token))

    def hash_of(self, document: Document) -> str:
        return sha256(cli_export(self.url, document.meta.reference))


@pytest.fixture(scope="module")
def history(new_store_url: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    url = new_store_url("revisions")
    folder = tmp_path_factory.mktemp("revisions")
    for document in DOCUMENTS:
        (folder / f"{document.source_id}.txt").write_text(render(document), encoding="utf-8")
    (folder / f"{SEED.source_id}.txt").write_bytes(SEED_BYTES)
    started = utc_now()
    cli_import(url, folder)
    imported = utc_now()
    tokens = issue_tokens(url, ("alice", "editor"), ("root", "admin"))
    with serve(url) as client:
        yield History(url, folder, client, tokens["alice"], tokens["root"], (started, imported))


def test_every_write_from_every_path_adds_a_revision_with_its_author_and_reason(history: History) -> None:
    # Given the seed imported by `alphanode import` (revision 1), and what each later write leaves exported.
    h, ref, seed = history, SEED_REFERENCE, post_id(SEED)
    exports = {1: SEED_BYTES}
    started = utc_now()

    def wrote(number: int) -> None:
        exports[number] = cli_export(h.url, ref)

    # When every path writes the post in turn.
    changed = SEED_BYTES.replace(b"\nview count223096\n", b"\nview count223097\n")
    receipt = graphql(h.client, IMPORT_DOCUMENT, {"text": changed.decode()}, h.editor)["data"]["result"]
    assert receipt["updated"] == 1, receipt
    wrote(2)
    assert exports[2] == changed
    h.run(UPDATE_POST, {"id": seed, "input": {"title": "a retitled post"}, "expectedHash": sha256(changed)}, h.editor)
    wrote(3)
    h.run(MARK_REVIEWED, {"id": seed}, h.admin)
    wrote(4)
    h.run(SET_STATUS, {"id": seed, "status": "published"}, h.editor)
    wrote(5)
    h.run(ARCHIVE_POST, {"id": seed}, h.admin)
    wrote(6)
    h.run(RESTORE_POST, {"id": seed}, h.editor)
    wrote(7)
    h.run(ROLLBACK_POST, {"id": seed, "revision": 3}, h.admin)
    wrote(8)
    run = cli("rollback", "--database", h.url, "--reference", ref, "--to", "1", "--author", "carol")
    assert run.code == 0, run.err
    wrote(9)
    file = h.file(SEED)
    file.write_bytes(SEED_BYTES.replace(b"\nreading time5\n", b"\nreading time6\n"))
    cli_import(h.url, file)
    wrote(10)
    created = h.run(CREATE_POST, {"input": post_input(TO_CREATE)}, h.editor)
    finished = utc_now()

    # Then each write is a revision, newest first, with the token's name (or `import`) and why.
    revisions = editor_view(h.client, ref, h.editor)["revisions"]
    assert [(r["number"], r["author"], r["reason"]) for r in revisions] == [
        (10, "import", f"imported from {file.name}"),  # never the importing machine's folders
        (9, "carol", "rolled back to revision 1"),
        (8, "root", "rolled back to revision 3"),
        (7, "alice", "restored"),
        (6, "root", "archived"),
        (5, "alice", "status set to published"),
        (4, "root", "marked reviewed"),
        (3, "alice", "updated"),
        (2, "alice", "imported from importDocument by alice"),
        (1, "import", f"imported from {h.folder.name}/{file.name}"),  # the folder given, and the file within it
    ]
    # Each revision's hash and stored text are the page text exported right after its write.
    assert {r["number"]: r["contentHash"] for r in revisions} == {n: sha256(text) for n, text in exports.items()}
    assert {r["number"]: r["text"].encode() for r in revision_rows(h.url, ref)} == exports
    assert exports[8] == exports[3]
    assert exports[9] == SEED_BYTES
    # Written at the times they were written (UTC), newest first.
    times = [dt.datetime.fromisoformat(r["createdAt"]) for r in revisions]
    assert all(t.utcoffset() == dt.timedelta(0) for t in times)
    assert times == sorted(times, reverse=True)
    assert started <= times[-2] and times[0] <= finished
    assert h.imported_at[0] <= times[-1] <= h.imported_at[1]
    # A created post starts its own history.
    assert created["revision"] == 1
    assert [(r["number"], r["author"], r["reason"]) for r in revision_rows(h.url, TO_CREATE.meta.reference)] == [
        (1, "alice", "created")
    ]


def test_readers_get_null_revisions_with_an_unauthenticated_error(history: History) -> None:
    query = "query R($reference: String!) { post(reference: $reference) { title revisions { number } } }"
    body = graphql(history.client, query, {"reference": UNTOUCHED.meta.reference})
    assert body["data"] == {"post": {"title": UNTOUCHED.title, "revisions": None}}
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["path"] == ["post", "revisions"]
    # An editor gets them.
    post = data(history.client, EDITOR_VIEW, {"reference": UNTOUCHED.meta.reference}, history.editor)["post"]
    assert [(r["number"], r["author"]) for r in post["revisions"]] == [(1, "import")]


def test_rollback_post_exports_the_revision_byte_for_byte_and_can_be_undone(history: History) -> None:
    # Given a post imported (revision 1: the file), then edited twice.
    h, document = history, TO_ROLL_BACK
    ref, pid, original = document.meta.reference, post_id(document), h.file(document).read_bytes()
    h.run(UPDATE_POST, {"id": pid, "input": {"title": "an edited title"}, "expectedHash": sha256(original)}, h.editor)
    h.run(SET_STATUS, {"id": pid, "status": "published"}, h.editor)
    third = cli_export(h.url, ref)
    assert parse(third).title == "an edited title"

    # When it is rolled back to revision 1.
    rolled = h.run(ROLLBACK_POST, {"id": pid, "revision": 1}, h.admin)
    # Then the export is the imported file, byte for byte, and the rollback is revision 4.
    assert cli_export(h.url, ref) == original
    assert (rolled["revision"], rolled["changed"]) == (4, True)
    assert rolled["post"]["contentHash"] == sha256(original)
    assert rolled["post"]["title"] == document.title

    # When the rollback is undone by rolling back to the revision before it.
    undone = h.run(ROLLBACK_POST, {"id": pid, "revision": 3}, h.admin)
    # Then the post is as it was before the rollback.
    assert cli_export(h.url, ref) == third
    assert undone["revision"] == 5
    revisions = editor_view(h.client, ref, h.editor)["revisions"]
    assert [(r["number"], r["reason"]) for r in revisions[:2]] == [
        (5, "rolled back to revision 3"),
        (4, "rolled back to revision 1"),
    ]


def test_alphanode_rollback_exports_the_revision_byte_for_byte_and_can_be_undone(history: History) -> None:
    h, document = history, TO_ROLL_BACK_BY_CLI
    ref, original = document.meta.reference, h.file(document).read_bytes()
    variables = {"id": post_id(document), "input": {"intro": "a new intro, short."}, "expectedHash": sha256(original)}
    h.run(UPDATE_POST, variables, h.editor)
    second = cli_export(h.url, ref)

    run = cli("rollback", "--database", h.url, "--reference", ref, "--to", "1")
    assert (run.code, run.text) == (0, f"{ref}: rolled back to revision 1, now revision 3\n"), run.err
    assert cli_export(h.url, ref) == original

    run = cli("rollback", "--database", h.url, "--reference", ref, "--to", "2")
    assert (run.code, run.text) == (0, f"{ref}: rolled back to revision 2, now revision 4\n"), run.err
    assert cli_export(h.url, ref) == second
    reasons = [r["reason"] for r in revision_rows(h.url, ref)]
    assert reasons[2:] == ["rolled back to revision 1", "rolled back to revision 2"]


def test_rollback_to_a_revision_that_does_not_exist_is_not_found_and_writes_nothing(history: History) -> None:
    h, ref = history, UNTOUCHED.meta.reference
    before = fingerprint(h.url)
    for number in (2, 99, 0, -1):
        body = graphql(h.client, ROLLBACK_POST, {"id": post_id(UNTOUCHED), "revision": number}, h.editor)
        result = body["data"]["result"]
        assert result["__typename"] == "NotFound", result
        assert str(number) in result["message"]
    unknown = graphql(h.client, ROLLBACK_POST, {"id": encode_id("Post", "nope"), "revision": 1}, h.editor)
    assert unknown["data"]["result"]["__typename"] == "NotFound"
    run = cli("rollback", "--database", h.url, "--reference", ref, "--to", "99")
    assert run.code == 1
    assert run.out == b""
    assert "99" in run.err and "Traceback" not in run.err
    assert fingerprint(h.url) == before
    assert cli_export(h.url, ref) == h.file(UNTOUCHED).read_bytes()


def test_mark_reviewed_sets_the_flag_the_date_and_the_status_and_nothing_else(history: History) -> None:
    h, document = history, TO_REVIEW
    assert document.meta.flags.needs_human_review and document.meta.revision.status != "reviewed"
    today = {utc_now().date()}
    result = h.run(MARK_REVIEWED, {"id": post_id(document)}, h.editor)
    today.add(utc_now().date())  # a test run across midnight (UTC) may see either day
    exported = to_dict(parse(cli_export(h.url, document.meta.reference)))
    reviewed = exported["meta"]["revision"]["lastReviewed"]
    assert reviewed in {day.isoformat() for day in today}

    expected = to_dict(document)
    expected["meta"]["flags"]["needsHumanReview"] = False
    expected["meta"]["revision"] |= {"status": "reviewed", "lastReviewed": reviewed}
    assert exported == expected
    assert (result["revision"], result["changed"]) == (2, True)
    assert result["post"]["meta"]["flags"] == {"needsHumanReview": False}
    assert result["post"]["meta"]["revision"] == {"status": "reviewed", "lastReviewed": reviewed}
    # Marking it again the same day changes nothing and writes no revision.
    again = h.run(MARK_REVIEWED, {"id": post_id(document)}, h.editor)
    assert (again["revision"], again["changed"]) == (2, False)
    assert len(revision_rows(h.url, document.meta.reference)) == 2


def test_an_imported_folders_revisions_name_files_within_it_never_the_importing_machines_folders(
    database_url: str, tmp_path: Path
) -> None:
    # Given a folder of documents, one in a subfolder, imported by its absolute path.
    folder = tmp_path / "incoming"
    (folder / "2026").mkdir(parents=True)
    (folder / "2026" / "seed.txt").write_bytes(SEED_BYTES)
    run = cli_import(database_url, folder.resolve())
    assert run.code == 0, run.err
    # Then its revision names the file by the folder's name and the path within it.
    (revision,) = revision_rows(database_url, parse(SEED_BYTES).meta.reference)
    assert revision["reason"] == "imported from incoming/2026/seed.txt"
    assert str(tmp_path) not in revision["reason"]
