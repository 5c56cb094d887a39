"""The outage trial, briefly: Redis and PostgreSQL stopped and started under curl's requests.

It runs ``python -m bench.outages`` as the command line does (a private PostgreSQL cluster and a
private redis-server of its own, 60 posts, phases of three seconds) and reads what it wrote:
every answer a 200 or the documented 503, nothing stale after a write, and each dependency's
return followed by a recovery.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import ROOT
from tests.parts.postgres import available


@pytest.mark.slow
@pytest.mark.postgres
def test_a_short_outage_trial_answers_200_or_the_503_and_recovers(tmp_path: Path) -> None:
    reason = available()
    assert reason is None, reason
    out, work = tmp_path / "results", tmp_path / "work"
    command = [sys.executable, "-m", "bench.outages", "--posts", "60", "--phase", "3", "--clients", "2"]
    command += ["--out", str(out), "--work", str(work)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    found = list(out.glob("*-outages.json"))
    assert len(found) == 1, done.stdout[-3000:] + done.stderr[-3000:]
    result = orjson.loads(found[0].read_bytes())
    assert result["unexpected"] == [], result["unexpected"][:5]
    assert result["stale_reads"] == []
    assert done.returncode == 0, done.stdout[-3000:]
    phases = result["phases"]
    # Redis away: reads answered, uncached, and /healthz says so while staying 200.
    assert phases["redis stopped"]["read"]["cache"].get("unavailable", 0) > 0, phases["redis stopped"]
    assert any(k.startswith("200 ") and k.endswith("/down") for k in phases["redis stopped"]["health"]["answers"])
    # PostgreSQL away: writes and /healthz answer the 503; cached pages still 200.
    assert "503 DATABASE_UNAVAILABLE" in phases["postgres stopped"]["write"]["answers"], phases["postgres stopped"]
    assert any(k.startswith("503 ") for k in phases["postgres stopped"]["health"]["answers"])
    recovery = result["recovery_s"]
    assert all(value is not None and value < 5.0 for value in recovery.values()), recovery
    assert result["writes_saved"] > 0
