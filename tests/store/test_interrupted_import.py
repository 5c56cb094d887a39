"""An import killed half way and run again ends in the same state as one clean run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from documents.synth import write
from tests.store.dump import logical_dump

DOCUMENTS = 3_000


def _import(database: Path, corpus: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, ALPHANODE_DATABASE_URL=f"sqlite:///{database}")
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", "import", "--batch-size", "100", "-q", str(corpus)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _posts(database: Path) -> int:
    try:
        with sqlite3.connect(database, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM post").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not there yet
        return 0


@pytest.mark.slow
def test_killed_import_run_again_matches_a_clean_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    write(corpus, DOCUMENTS, seed=23)

    clean = tmp_path / "clean.db"
    first = _import(clean, corpus)
    first.communicate(timeout=300)
    assert first.returncode == 0

    # Given an import killed after some batches committed and before the end
    interrupted = tmp_path / "interrupted.db"
    process = _import(interrupted, corpus)
    deadline = time.monotonic() + 120
    while _posts(interrupted) < 500 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    killed_at = _posts(interrupted)
    assert 0 < killed_at < DOCUMENTS, "the import must be killed half way for this test to mean anything"

    # When it runs again
    rerun = _import(interrupted, corpus)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()
    assert f"{DOCUMENTS - killed_at} created" in out.decode()

    # Then the store is the same as after one clean run
    assert logical_dump(f"sqlite:///{interrupted}") == logical_dump(f"sqlite:///{clean}")
