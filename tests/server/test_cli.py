"""The ``alphanode`` command line: in-process through ``main`` and as a real process where exit codes matter."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from documents import parse, slug_for, to_dict
from server.cli import main
from tests.conftest import ROOT, SEED_DOCUMENT

SEED_BYTES = SEED_DOCUMENT.read_bytes()
SEED = parse(SEED_BYTES)
SEED_REFERENCE = "anp-ref-001632-5801"
CORPUS_SIZE = 81


def environment(**values: str) -> dict[str, str]:
    """This environment without ALPHANODE_* settings, plus ``values``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ALPHANODE_")}
    env["PYTHONPATH"] = str(ROOT)
    return env | values


def alphanode(
    *args: str, cwd: Path = ROOT, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m server.cli`` as its own process."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=cwd,
        input=input,
        env=env if env is not None else environment(),
        capture_output=True,
        timeout=60,
        check=False,
    )


def malformed_seed() -> tuple[str, int]:
    """The seed document with a reading time that is not a number, and the 1-based line of the fault."""
    text = SEED_BYTES.decode("utf-8")
    line = text.split("\n").index("reading time5") + 1
    return text.replace("\nreading time5\n", "\nreading timefive\n"), line


def database_file_exists(url: str) -> bool:
    """Whether the store's SQLite file is there; a PostgreSQL database is there before any command runs."""
    return not url.startswith("sqlite") or Path(url.removeprefix("sqlite:///")).exists()


@pytest.fixture
def seeded(database_url: str) -> str:
    """A store holding the seed document, imported in-process."""
    assert main(["import", "--quiet", "--database", database_url, str(SEED_DOCUMENT)]) == 0
    return database_url


# -- import -----------------------------------------------------------------


def test_import_prints_the_receipt_then_nothing_changed_on_reimport(
    database_url: str, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", "--database", database_url, str(corpus)]) == 0
    first = capsys.readouterr().out
    assert first.startswith(f"{CORPUS_SIZE} document(s): 81 created, 0 updated, 0 unchanged, 0 rejected in ")
    assert "similar posts refreshed for 81 post(s)" in first
    assert "nothing changed" not in first

    assert main(["import", "--database", database_url, str(corpus)]) == 0
    second = capsys.readouterr().out
    assert second.startswith(f"{CORPUS_SIZE} document(s): 0 created, 0 updated, 81 unchanged, 0 rejected in ")
    assert second.rstrip().endswith("nothing changed")


def test_import_of_a_folder_with_a_malformed_file_exits_1_naming_file_and_line(
    database_url: str, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a folder of three good documents and one that is not well-formed.
    folder = tmp_path / "documents"
    folder.mkdir()
    for path in sorted(corpus.glob("0000*.txt"))[:3]:
        shutil.copy(path, folder / path.name)
    text, line = malformed_seed()
    bad = folder / "bad.txt"
    bad.write_text(text, encoding="utf-8")
    # When the folder is imported.
    code = main(["import", "--database", database_url, str(folder)])
    out = capsys.readouterr().out
    # Then the good ones are stored, the bad one is named with its line, and the exit code says so.
    assert code == 1
    assert out.startswith("4 document(s): 3 created, 0 updated, 0 unchanged, 1 rejected")
    assert f"rejected: {bad}:{line}: reading time: a whole number" in out


def test_import_of_a_missing_path_exits_1(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-folder"
    assert main(["import", "--database", database_url, str(missing)]) == 1
    assert f"rejected: {missing}: no such file or folder" in capsys.readouterr().out


def test_import_json_prints_a_json_receipt(
    database_url: str, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, line = malformed_seed()
    bad = tmp_path / "bad.txt"
    bad.write_text(text, encoding="utf-8")
    good = sorted(corpus.glob("0000*.txt"))[:2]
    code = main(["import", "--json", "--database", database_url, *map(str, good), str(bad)])
    receipt = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (receipt["created"], receipt["updated"], receipt["unchanged"]) == (2, 0, 0)
    assert [r["document"] for r in receipt["rejected"]] == [str(bad)]
    assert receipt["rejected"][0]["error"].startswith(f"{bad}:{line}: ")
    assert receipt["similarRefreshed"] == 2

    assert main(["import", "--json", "--database", database_url, *map(str, good)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["created"], again["updated"], again["unchanged"], again["rejected"]) == (0, 0, 2, [])


def test_import_dash_reads_the_document_from_stdin(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = database_url
    result = alphanode("import", "--database", url, "-", input=SEED_BYTES)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().startswith("1 document(s): 1 created, 0 updated, 0 unchanged, 0 rejected")
    # The stored post is the document that came in.
    assert main(["export", "--database", url, "--format", "json", "--reference", SEED_REFERENCE]) == 0
    assert json.loads(capsys.readouterr().out) == to_dict(SEED)


# -- export -----------------------------------------------------------------


def test_export_by_reference_prints_the_imported_bytes(seeded: str) -> None:
    result = alphanode("export", "--database", seeded, "--reference", SEED_REFERENCE)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == SEED_BYTES
    assert result.stderr == b""


def test_export_by_slug_prints_the_imported_bytes(seeded: str, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["export", "--database", seeded, "--slug", slug_for(SEED)]) == 0
    assert capsysbinary.readouterr().out == SEED_BYTES


def test_export_json_gives_lists_as_json_arrays(seeded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--database", seeded, "--reference", SEED_REFERENCE, "--format", "json"]) == 0
    exported: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert exported["meta"]["stack"] == ["python services", "backend", "python"]
    assert exported["meta"]["revision"]["lastReviewed"] == "2026-07-02"
    assert exported == to_dict(SEED)


def test_export_of_an_unknown_reference_exits_1_with_a_message_on_stderr(
    seeded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "--database", seeded, "--reference", "nope"]) == 1
    assert capsys.readouterr() == ("", "no post with reference 'nope'\n")
    assert main(["export", "--database", seeded, "--slug", "no-such-slug"]) == 1
    assert capsys.readouterr() == ("", "no post with slug 'no-such-slug'\n")


def test_export_from_a_store_that_was_never_created_fails_with_a_message_not_a_traceback(
    new_store_url: Callable[[str], str],
) -> None:
    # A mistyped --database (or a missing ALPHANODE_DATABASE_URL) points at a file or a database with no tables.
    url = new_store_url("never-imported")
    result = alphanode("export", "--database", url, "--reference", SEED_REFERENCE)
    stderr = result.stderr.decode()
    assert result.returncode == 1
    assert result.stdout == b""
    assert "Traceback" not in stderr, stderr
    assert stderr.strip()


# -- generate ---------------------------------------------------------------


def test_generate_writes_the_same_files_for_the_same_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def generate(folder: Path, seed: int) -> dict[str, bytes]:
        assert main(["generate", "--count", "5", "--seed", str(seed), "--out", str(folder)]) == 0
        assert capsys.readouterr().out == f"wrote 5 document(s) to {folder}\n"
        return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}

    first = generate(tmp_path / "a", 3)
    second = generate(tmp_path / "b", 3)
    other_seed = generate(tmp_path / "c", 4)
    assert len(first) == 5
    assert all(name.endswith(".txt") for name in first)
    assert first == second
    assert set(first).isdisjoint(other_seed)
    for name, data in first.items():
        assert parse(data, name).source_id.startswith("alphanode-3-")


# -- export-schema ----------------------------------------------------------


def test_export_schema_check_passes_for_the_repository_schema() -> None:
    result = alphanode("export-schema", "--check", cwd=ROOT)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == "schema.graphql is up to date\n"


def test_export_schema_check_fails_for_a_stale_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "schema.graphql"
    lines = (ROOT / "schema.graphql").read_text(encoding="utf-8").splitlines(keepends=True)
    changed = next(i for i, line in enumerate(lines) if line.strip().startswith("title:"))
    lines[changed] = lines[changed].replace("title:", "headline:")
    stale.write_text("".join(lines), encoding="utf-8")
    before = stale.read_bytes()
    assert main(["export-schema", "--check", "--out", str(stale)]) == 1
    err = capsys.readouterr().err
    assert "stale" in err
    assert str(stale) in err
    assert stale.read_bytes() == before  # --check never writes
    # Without --check the copy is brought up to date.
    assert main(["export-schema", "--out", str(stale)]) == 0
    assert stale.read_bytes() == (ROOT / "schema.graphql").read_bytes()


# -- ALPHANODE_DATABASE_URL -------------------------------------------------


def test_import_and_export_processes_read_the_database_url_from_the_environment(
    database_url: str, tmp_path: Path
) -> None:
    # Given ALPHANODE_DATABASE_URL and no --database, run from a folder where the default store would land.
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    env = environment(ALPHANODE_DATABASE_URL=database_url)

    imported = alphanode("import", str(SEED_DOCUMENT), cwd=workdir, env=env)
    assert imported.returncode == 0, imported.stderr.decode()
    assert "1 created" in imported.stdout.decode()
    assert database_file_exists(database_url)

    exported = alphanode("export", "--reference", SEED_REFERENCE, cwd=workdir, env=env)
    assert exported.returncode == 0, exported.stderr.decode()
    assert exported.stdout == SEED_BYTES

    # Then nothing went to the default store in the working directory.
    assert list(workdir.iterdir()) == []


def test_init_and_similar_read_the_database_url_from_the_environment(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("ALPHANODE_DATABASE_URL", database_url)

    assert main(["init"]) == 0
    assert capsys.readouterr().out == f"store ready at {database_url}\n"
    assert database_file_exists(database_url)
    assert main(["import", "--quiet", str(SEED_DOCUMENT)]) == 0
    capsys.readouterr()
    assert main(["similar"]) == 0
    assert capsys.readouterr().out == "similar posts recomputed for 1 post(s)\n"
    assert list(workdir.iterdir()) == []


def test_serve_reads_the_database_url_from_the_environment(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # uvicorn.run is replaced so that no server starts: only the settings the app gets matter here.
    url = database_url
    monkeypatch.setenv("ALPHANODE_DATABASE_URL", url)
    served: list[Any] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.append((app, options)))
    assert main(["serve", "--port", "8123"]) == 0
    ((app, options),) = served
    assert app.state.settings.database_url == url
    assert options["port"] == 8123


# -- the command line itself ------------------------------------------------


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("init", "import", "export", "generate", "serve", "export-schema", "similar", "token", "db"):
        assert f" {command} " in out, out
    assert "--install-completion" in out


def test_the_verbose_option_goes_before_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-v", "generate", "--count", "1", "--seed", "1", "--out", str(tmp_path), "--quiet"]) == 0
    assert capsys.readouterr().out == f"wrote 1 document(s) to {tmp_path}\n"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["no-such-command"],
        ["import"],
        ["export"],
        ["export", "--reference", SEED_REFERENCE, "--slug", "a-slug"],
        ["export", "--reference", SEED_REFERENCE, "--format", "xml"],
        ["generate", "--count", "many", "--seed", "1", "--out", "x"],
        ["token", "create", "--name", "alice", "--role", "root"],
        ["db"],
    ],
)
def test_a_command_line_that_cannot_be_parsed_exits_2_with_the_usage(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("Usage: alphanode"), captured.err
    assert "Error: " in captured.err


def test_a_commands_engine_is_disposed_of_however_the_command_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from server.cli.common import engine_for
    from server.settings import Settings

    disposed: list[str] = []
    dispose = AsyncEngine.dispose

    async def recording_dispose(engine: AsyncEngine, close: bool = True) -> None:
        disposed.append(str(engine.url))
        await dispose(engine, close)

    monkeypatch.setattr(AsyncEngine, "dispose", recording_dispose)
    chosen = Settings(database_url=f"sqlite:///{tmp_path / 'store.db'}")

    async def failing() -> None:
        async with engine_for(chosen) as engine, engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
            raise RuntimeError("the command failed")

    with pytest.raises(RuntimeError, match="the command failed"):
        asyncio.run(failing())
    assert len(disposed) == 1
    assert disposed[0].endswith("store.db")
