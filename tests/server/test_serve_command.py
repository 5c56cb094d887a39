"""``alphanode serve``'s options for its workers: handed to them in the environment, checked, and one
worker served in the command's own process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from server.cli import main

# -- the command ------------------------------------------------------------------------------


@pytest.fixture
def served_options(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``alphanode serve`` hands uvicorn.run, which is replaced so that no server starts: the
    app, the options, the environment and the metrics folder's files at that moment."""
    for name in ("ALPHANODE_DATABASE_URL", "ALPHANODE_WORKERS", "ALPHANODE_METRICS_DIR", "ALPHANODE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    calls: list[dict[str, Any]] = []

    def run(app: Any, **options: Any) -> None:
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        calls.append(
            {
                "app": app,
                "options": options,
                "environment": {k: v for k, v in os.environ.items() if k.startswith(("ALPHANODE_", "PROMETHEUS_"))},
                "files": sorted(os.listdir(folder)) if folder else None,
            }
        )

    monkeypatch.setattr("uvicorn.run", run)
    monkeypatch.setattr("server.supervisor.run", run)
    return calls


def test_serve_with_workers_hands_its_options_to_the_workers_in_the_environment(
    tmp_path: Path, served_options: list[dict[str, Any]]
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert main(["serve", "--workers", "3", "--database", url, "--port", "8123"]) == 0
    (call,) = served_options
    # The workers build the app from an import string and the environment.
    assert call["app"] == "server.app:create_app"
    assert call["options"]["factory"] is True
    assert call["options"]["workers"] == 3
    assert call["options"]["port"] == 8123
    environment = call["environment"]
    assert environment["ALPHANODE_DATABASE_URL"] == url
    assert environment["ALPHANODE_PORT"] == "8123"
    # Their metrics go to a new, empty folder, removed when the server stops.
    folder = Path(environment["PROMETHEUS_MULTIPROC_DIR"])
    assert call["files"] == []
    assert not folder.exists()
    # This process's environment is as it was.
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert "ALPHANODE_DATABASE_URL" not in os.environ


def test_serve_empties_the_metrics_folder_of_an_earlier_run_and_keeps_it(
    tmp_path: Path, served_options: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    for name in ("counter_123.db", "histogram_123.db", "gauge_livesum_123.db", "notes.txt"):
        (folder / name).write_bytes(b"from an earlier run")
    monkeypatch.setenv("ALPHANODE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("ALPHANODE_WORKERS", "2")
    monkeypatch.setenv("ALPHANODE_METRICS_DIR", str(folder))
    assert main(["serve"]) == 0
    (call,) = served_options
    assert call["options"]["workers"] == 2
    assert call["environment"]["PROMETHEUS_MULTIPROC_DIR"] == str(folder)
    assert call["files"] == ["notes.txt"]  # the metrics' files only
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_one_worker_serves_in_the_command_process_as_before(
    tmp_path: Path, served_options: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("ALPHANODE_WORKERS", "4")
    assert main(["serve", "--workers", "1", "--database", url]) == 0  # the option over the setting
    (call,) = served_options
    assert call["app"].state.settings.database_url == url  # an app, built here
    assert call["app"].state.settings.workers == 1
    assert call["options"]["workers"] == 1
    assert "PROMETHEUS_MULTIPROC_DIR" not in call["environment"]


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_serve_refuses_a_number_of_workers_below_one(workers: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", workers])
    assert exited.value.code == 2
    assert "--workers" in capsys.readouterr().err
