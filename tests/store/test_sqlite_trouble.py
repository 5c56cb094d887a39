"""SQLite under trouble: a full disk, a read-only store, a lock held by another program, a file that is not a store.

Real files on real small file systems: each test mounts a tmpfs of its own (and a read-only bind
mount of it where it needs one) and unmounts it at its end, also when it fails; mounting needs root
(or the permission to mount), and a test that cannot mount fails saying so. The lock is held by a
real second process. What the store holds before and after is compared row by row (exports,
revisions, receipts, tokens), so that nothing half-written goes unnoticed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from starlette.testclient import TestClient

from documents import parse
from documents.synth import write
from graph.node import encode_id
from tests.conftest import ROOT, SEED_DOCUMENT
from tests.editing import (
    IMPORT_DOCUMENT,
    SEED_BYTES,
    SEED_REFERENCE,
    SET_STATUS,
    cli,
    cli_import,
    create_token,
    export_all,
    fingerprint,
    post_graphql,
    revision_rows,
    saved,
    serve,
    small_corpus,
)

MOUNTING = (
    "these tests mount small file systems (mount -t tmpfs, mount --bind): run them as root, or where the user may mount"
)
SEED_ID = encode_id("Post", parse(SEED_BYTES).source_id)
PUBLIC = "query P($reference: String!) { post(reference: $reference) { title } posts(first: 1) { totalCount } }"
FULL_MESSAGE = "the store's disk is full: nothing was written"
READ_ONLY_MESSAGE = "the store is read-only"
REQUEST_LIMIT = 10.0  # seconds: the default request time limit


# -- file systems -----------------------------------------------------------------------


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{MOUNTING}: `mount {' '.join(args)}` failed: {done.stderr.strip()}")


def _unmount(folder: Path) -> None:
    """Unmount, waiting for files the test's processes may still hold to close."""
    for _ in range(50):
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "--lazy", str(folder)], check=True)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "16m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``folder`` for the block, unmounted after it whatever happens."""
    folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        _unmount(folder)


@contextlib.contextmanager
def read_only_view(folder: Path, view: Path) -> Iterator[Path]:
    """``folder`` seen read-only at ``view`` (a read-only bind mount), for the block."""
    view.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(folder), str(view))
    try:
        _mount("-o", "remount,bind,ro", str(view))
        yield view
    finally:
        _unmount(view)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of ``folder`` with a file until about ``leave`` bytes are free; the file."""
    filler = folder / "filler"
    disk = os.statvfs(folder)
    room = max(disk.f_bavail * disk.f_frsize - leave, 0)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while room > 0:
            room -= os.write(fd, b"\0" * min(65536, room))
        while leave == 0:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def free_bytes(folder: Path) -> int:
    disk = os.statvfs(folder)
    return disk.f_bavail * disk.f_frsize


def checkpoint(database: Path) -> None:
    """Fold the WAL into the store and empty it: the next write must find room for new WAL pages."""
    conn = sqlite3.connect(database)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
    finally:
        conn.close()


# -- helpers ------------------------------------------------------------------------------


def alphanode(*args: str) -> subprocess.Popen[str]:
    """``alphanode ARGS`` as a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def public_read(client: TestClient) -> httpx2.Response:
    return post_graphql(client, PUBLIC, {"reference": SEED_REFERENCE})


def assert_trouble(response: httpx2.Response, code: str, message: str, retry_after: str) -> None:
    """A 503 with the trouble's code and message, Retry-After, and nothing of the machinery."""
    assert response.status_code == 503, response.text
    body = response.json()
    assert [error["extensions"]["code"] for error in body["errors"]] == [code], body
    assert message in body["errors"][0]["message"], body
    assert response.headers["retry-after"] == retry_after
    for leak in ("Traceback", "sqlite3", "INSERT", "UPDATE", "SELECT", "OperationalError", "/"):
        assert leak not in response.text, response.text


def assert_one_line(err: str, *needles: str) -> None:
    """A command's error: one line per fact, each needle in it, no traceback."""
    assert "Traceback" not in err, err
    assert err.startswith("error: "), err
    first = err.splitlines()[0]
    for needle in needles:
        assert needle in first, err


def document_bytes(folder: Path) -> dict[str, bytes]:
    """The folder's documents by reference."""
    found = {}
    for path in sorted(folder.glob("*.txt")):
        data = path.read_bytes()
        found[parse(data, path.name).meta.reference] = data
    return found


def integrity(database: Path) -> None:
    conn = sqlite3.connect(database)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def one_document(folder: Path, seed: int) -> str:
    write(folder, 1, seed=seed)
    (path,) = folder.glob("*.txt")
    return path.read_text(encoding="utf-8")


# -- a full disk ----------------------------------------------------------------------------


def test_an_import_that_fills_the_disk_stops_writes_whole_documents_and_completes_when_run_again(
    tmp_path: Path,
) -> None:
    docs = small_corpus(tmp_path / "docs", 60)
    expected = document_bytes(docs)
    with tmpfs(tmp_path / "disk") as disk:
        database = disk / "store.db"
        url = f"sqlite:///{database}"
        cli_import(url, SEED_DOCUMENT)
        with serve(url) as client:
            # Given a disk with room for a few of the 60 new documents (about 14 kB each, more in the WAL).
            checkpoint(database)
            filler = fill(disk, leave=600_000)
            # When the import runs (5 documents a transaction) while readers read.
            importing = alphanode("import", "--quiet", "--json", "--batch-size", "5", "--database", url, str(docs))
            statuses = []
            while importing.poll() is None:
                statuses.append(public_read(client).status_code)
            out, err = importing.communicate()
            statuses.append(public_read(client).status_code)
            health = client.get("/healthz")
            # Then it stops at the first failed transaction, with the cause and a non-zero status,
            # not by rejecting every document left one by one.
            assert importing.returncode == 1, (out, err)
            assert_one_line(err, str(database), FULL_MESSAGE)
            assert "import stopped" in err.splitlines()[1]
            report = json.loads(out)
            assert report["rejected"] == []
            assert report["stopped"]["code"] == "DATABASE_FULL"
            assert FULL_MESSAGE in report["stopped"]["message"]
            written = report["created"]
            assert report["unchanged"] in (0, 1)  # the seed, imported before: in a transaction that was written or not
            assert 0 < written < 60, report  # some transactions fitted, one did not
            assert written + report["unchanged"] + report["stopped"]["notWritten"] == len(expected)
            # Each document is in the store whole, as its file, or not at all.
            stored = export_all(url)
            assert len(stored) == 1 + written
            for reference, text in stored.items():
                assert text == expected[reference], reference
            assert all(len(revision_rows(url, reference)) == 1 for reference in stored)
            integrity(database)
            # Readers were answered throughout, and see what was written.
            assert set(statuses) == {200}, statuses
            body = public_read(client).json()
            assert body["data"]["posts"]["totalCount"] == len(stored)
            assert health.status_code == 200
            assert health.json()["writes"] == "DATABASE_FULL"

            # When space is freed and the import runs again, it completes.
            filler.unlink()
            again = alphanode("import", "--quiet", "--json", "--database", url, str(docs))
            out, err = again.communicate()
            assert again.returncode == 0, (out, err)
            report = json.loads(out)
            assert (report["created"], report["unchanged"]) == (60 - written, 1 + written), report
            assert export_all(url) == expected
            integrity(database)
            assert public_read(client).json()["data"]["posts"]["totalCount"] == len(expected)
            assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}


def test_edits_on_a_full_disk_answer_503_database_full_change_nothing_and_succeed_once_space_is_freed(
    tmp_path: Path,
) -> None:
    new_document = one_document(tmp_path / "new", seed=5)
    with tmpfs(tmp_path / "disk") as disk:
        database = disk / "store.db"
        url = f"sqlite:///{database}"
        cli_import(url, SEED_DOCUMENT)
        token = create_token(url, "alice", "editor")
        with serve(url) as client:
            before = fingerprint(url)
            exported = export_all(url)
            # Given a disk with no room left.
            checkpoint(database)
            filler = fill(disk)
            # When an editor changes a post and imports a document.
            status = post_graphql(client, SET_STATUS, {"id": SEED_ID, "status": "reviewed"}, token)
            imported = post_graphql(client, IMPORT_DOCUMENT, {"text": new_document}, token)
            read = public_read(client)
            health = client.get("/healthz")
            # Then each is refused with the cause, nothing was written, and readers are answered.
            assert_trouble(status, "DATABASE_FULL", FULL_MESSAGE, "30")
            assert_trouble(imported, "DATABASE_FULL", FULL_MESSAGE, "30")
            assert read.status_code == 200, read.text
            assert read.json()["data"]["post"]["title"] == parse(SEED_BYTES).title
            assert health.status_code == 200
            assert health.json() == {"status": "degraded", "database": "ok", "writes": "DATABASE_FULL"}
            assert fingerprint(url) == before
            assert export_all(url) == exported
            integrity(database)

            # When space is freed, the same edits succeed.
            filler.unlink()
            status = post_graphql(client, SET_STATUS, {"id": SEED_ID, "status": "reviewed"}, token)
            assert saved(status.json())["post"]["meta"]["revision"]["status"] == "reviewed"
            imported = post_graphql(client, IMPORT_DOCUMENT, {"text": new_document}, token)
            result = imported.json()["data"]["result"]
            assert (result["__typename"], result["created"]) == ("ImportReceipt", 1), result
            assert len(revision_rows(url, SEED_REFERENCE)) == 2
            assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}


# -- a read-only store ------------------------------------------------------------------------


def test_a_read_only_store_is_read_and_refuses_writes_with_503_database_read_only(tmp_path: Path) -> None:
    new_document = one_document(tmp_path / "new", seed=6)
    (tmp_path / "new" / "doc.txt").write_text(new_document, encoding="utf-8")
    with tmpfs(tmp_path / "disk") as disk:
        url = f"sqlite:///{disk / 'store.db'}"
        cli_import(url, SEED_DOCUMENT)
        token = create_token(url, "alice", "editor")
        # Another program keeps the store open read-write (so its WAL files stay): the server sees it
        # through a read-only mount, where SQLite opens the file read-only and writes fail with SQLITE_READONLY.
        keeper = sqlite3.connect(disk / "store.db")
        try:
            keeper.execute("SELECT count(*) FROM post").fetchall()
            before = fingerprint(url)
            with read_only_view(disk, tmp_path / "view") as view:
                read_only = f"sqlite:///{view / 'store.db'}"
                with serve(read_only) as client:
                    read = public_read(client)
                    status = post_graphql(client, SET_STATUS, {"id": SEED_ID, "status": "reviewed"}, token)
                    imported = post_graphql(client, IMPORT_DOCUMENT, {"text": new_document}, token)
                    health = client.get("/healthz")
                assert read.status_code == 200, read.text
                assert read.json()["data"]["post"]["title"] == parse(SEED_BYTES).title
                assert_trouble(status, "DATABASE_READ_ONLY", READ_ONLY_MESSAGE, "30")
                assert_trouble(imported, "DATABASE_READ_ONLY", READ_ONLY_MESSAGE, "30")
                assert health.status_code == 200
                assert health.json()["writes"] == "DATABASE_READ_ONLY"
                # Commands that write stop with one line naming the file and the cause.
                for args in (
                    ("import", "--quiet", str(tmp_path / "new" / "doc.txt")),
                    ("token", "create", "--name", "bob", "--role", "editor"),
                ):
                    run = cli(*args, "--database", read_only)
                    assert run.code == 1, (args, run.text, run.err)
                    assert_one_line(run.err, str(view / "store.db"), READ_ONLY_MESSAGE)
                assert fingerprint(url) == before
        finally:
            keeper.close()
        # A store closed cleanly (no WAL files) on a read-only mount cannot be opened by SQLite at all.
        with read_only_view(disk, tmp_path / "view") as view:
            run = cli("serve", "--database", f"sqlite:///{view / 'store.db'}")
            assert run.code == 1
            assert_one_line(run.err, str(view / "store.db"), "cannot be opened", "read-only")
        assert fingerprint(url) == before


# -- a lock held by another program ------------------------------------------------------------


@contextlib.contextmanager
def locked(database: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the store's write lock (BEGIN EXCLUSIVE) for the block; killed by pid after."""
    code = (
        "import sqlite3, sys, time\n"
        f"conn = sqlite3.connect({str(database)!r}, isolation_level=None)\n"
        "conn.execute('BEGIN EXCLUSIVE')\n"
        'conn.execute("UPDATE post SET view_count = view_count + 1")\n'
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"
    )
    locker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None
        assert locker.stdout.readline() == "locked\n"
        yield locker
    finally:
        os.kill(locker.pid, 9)
        locker.communicate()


def test_a_lock_held_by_another_program_leaves_reads_answered_and_writes_503_database_busy_in_time(
    tmp_path: Path,
) -> None:
    database = tmp_path / "store.db"
    url = f"sqlite:///{database}"
    cli_import(url, SEED_DOCUMENT)
    token = create_token(url, "alice", "editor")
    with serve(url) as client:
        before = fingerprint(url)
        with locked(database):
            read = public_read(client)
            started = time.perf_counter()
            status = post_graphql(client, SET_STATUS, {"id": SEED_ID, "status": "reviewed"}, token)
            waited = time.perf_counter() - started
            after = fingerprint(url)
        # Readers are not held up (WAL); a writer waits for the lock within the request's time limit,
        # then is told the store is busy, and nothing was written.
        assert read.status_code == 200, read.text
        assert_trouble(status, "DATABASE_BUSY", "locked by another program", "1")
        assert 4.0 <= waited < REQUEST_LIMIT, waited
        assert after == before
        # Once the other program lets go, the edit goes through.
        assert saved(post_graphql(client, SET_STATUS, {"id": SEED_ID, "status": "reviewed"}, token).json())


# -- a file that is not a store ------------------------------------------------------------------


def _damaged(tmp_path: Path) -> tuple[bytes, bytes]:
    """A real store's bytes cut to a third, and with a stretch of every page overwritten."""
    url = f"sqlite:///{tmp_path / 'good.db'}"
    cli_import(url, SEED_DOCUMENT)
    data = (tmp_path / "good.db").read_bytes()
    damaged = bytearray(data)
    for page in range(8192, len(damaged), 4096):
        damaged[page + 100 : page + 400] = b"\xff" * 300
    return data[: len(data) // 3], bytes(damaged)


COMMANDS: list[tuple[str, ...]] = [
    ("init",),
    ("import", "--quiet", str(SEED_DOCUMENT)),
    ("export", "--reference", SEED_REFERENCE),
    ("serve",),
    ("similar",),
    ("token", "list"),
    ("db", "current"),
    ("rollback", "--reference", SEED_REFERENCE, "--to", "1"),
]


def test_every_command_on_a_file_that_is_not_a_store_stops_with_one_line_naming_it(tmp_path: Path) -> None:
    truncated, damaged = _damaged(tmp_path)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    files = {
        "text.db": (b"these are notes, not a store\n" * 40, "not a SQLite database"),
        "image.db": (png, "not a SQLite database"),
        "truncated.db": (truncated, "damaged"),
        "damaged.db": (damaged, "damaged"),
    }
    for name, (content, cause) in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        for command in COMMANDS:
            run = cli(*command, "--database", f"sqlite:///{path}")
            assert run.code == 1, (name, command, run.text, run.err)
            assert_one_line(run.err, str(path), cause)
            assert len(run.err.splitlines()) == 1, run.err
        assert path.read_bytes() == content, f"{name} was written to"
    # An empty file is a new SQLite database: a store is made in it.
    empty = tmp_path / "empty.db"
    empty.touch()
    run = cli("init", "--database", f"sqlite:///{empty}")
    assert run.code == 0, run.err
    assert cli_import(f"sqlite:///{empty}", SEED_DOCUMENT).code == 0
