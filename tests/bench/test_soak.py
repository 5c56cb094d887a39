"""The soak, briefly: a tiny SQLite store under the open-loop mix for a quarter of a minute.

It runs ``python -m bench.soak`` as the command line does, writing its result into a
temporary folder, and reads what it wrote: no errors, no lost writes, writes and cache
hits happened, samples were taken and the plot exists. Whether latency and memory stay
flat is for the long soak to say: fifteen seconds are too short to tell.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_a_short_soak_on_sqlite_passes_and_writes_its_result(tmp_path: Path) -> None:
    out, work = tmp_path / "results", tmp_path / "work"
    command = [
        sys.executable,
        "-m",
        "bench.soak",
        "--dialect",
        "sqlite",
        "--posts",
        "200",
        "--seconds",
        "15",
        "--peak-seconds",
        "3",
        "--fill-minutes",
        "0.2",
        "--cli-exports",
        "2",
        "--out",
        str(out),
        "--work",
        str(work),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    found = list(out.glob("*-soak-sqlite.json"))
    assert len(found) == 1, done.stdout[-3000:] + done.stderr[-3000:]

    result_file = found[0]
    result = orjson.loads(result_file.read_bytes())
    # Fifteen seconds say nothing of drift (p99 and memory over a third of the run): those
    # checks are the long soak's. Everything else must hold, and the exit status follows the verdict.
    checks = result["verdict"]["checks"]
    for name in ("no_errors", "no_lost_writes", "no_stale_reads", "cli_export_identical"):
        assert checks[name]["passed"], (name, checks[name], result["errors_seen"][:3])
    assert done.returncode == (0 if result["verdict"]["passed"] else 1), done.stderr[-3000:]
    assert result["soak"]["errors"] == 0
    assert result["peak"]["reads"]["errors"] == result["peak"]["mix"]["errors"] == 0
    # The fill ran before the soak for at most its twelve seconds: the reads until the small
    # store's pages stopped adding to the cache, then the mix.
    fill = result["fill"]
    assert fill["requests"] > 0 and fill["errors"] == 0 and fill["seconds"] <= 16, fill
    assert fill["stages"]["reads"]["ended"].startswith("the response cache grew less than"), fill
    assert fill["stages"]["mix"]["seconds"] > 0 and fill["stages"]["mix"]["uss_mib"], fill
    assert fill["response_cache_mib"]["after"] > 0 and fill["response_cache_mib"]["bound"] == 64.0, fill
    assert fill["uss_mib"]["after"] > 0, fill
    assert result["verification"]["lost_writes"] == 0
    assert result["verification"]["stale_reads"] == 0
    assert result["writes"]["saved"] > 0
    assert result["verification"]["imports_checked"] > 0
    # Most imports import an earlier one again, revised: the store stays near its size.
    assert result["verification"]["imports_revised"] > 0
    assert result["verification"]["imports_uncertain"] == 0
    assert result["soak"]["cache"].get("hit", 0) > 0
    assert result["soak"]["cache"].get("miss", 0) > 0
    samples = result["samples"]
    assert len(samples) >= 5
    assert samples[0]["t_s"] == 0 and samples[0]["server"]["uss_mib"] > 0
    assert all(s["server"]["fds"] > 0 and s["database"]["connections"] > 0 for s in samples)
    assert result["generator"]["cpu_seconds"] > 0
    assert result_file.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
